"""roost.net.auth with the per-IP auth penalty, on a fake clock and a fake sleep.

The expected waits (4, 8, 15, 15 s) are Dovecot 2.3's auth penalty table
(roost.auth.penalty, itself checked against Dovecot in tests/auth/test_penalty_dovecot.py).
"""

from __future__ import annotations

import asyncio
import base64

from roost.auth.penalty import penalty_to_secs
from tests.proto.test_dovecot_auth_service import HELLO, serve_pair, service_for

FAILURE_DELAY = 2.0


class FakeTime:
    """A clock that only moves when the service sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def plain(request_id: int, user: str, password: str, rip: str | None = "10.0.0.1",
          *flags: str) -> bytes:
    fields = ["AUTH", str(request_id), "PLAIN", "service=smtp", *flags]
    if rip is not None:
        fields.append(f"rip={rip}")
    fields.append("resp=" + base64.b64encode(f"\0{user}\0{password}".encode()).decode())
    return ("\t".join(fields) + "\n").encode()


def penalised_service(tmp_path, fake: FakeTime):
    service, log = service_for(tmp_path, f"auth_failure_delay = {FAILURE_DELAY:g}s\n",
                               sleep=fake.sleep, clock=fake.clock)
    assert service.failure_delay == FAILURE_DELAY
    return service


def run_requests(tmp_path, service, requests: list[bytes]) -> list[bytes]:
    """Send the requests one after another on one connection; the answers in order."""

    async def scenario():
        server, reader, writer = await serve_pair(service, str(tmp_path / "s"))
        await reader.readuntil(b"DONE\n")
        writer.write(HELLO)
        answers = []
        for request in requests:
            writer.write(request)
            await writer.drain()
            answers.append(await asyncio.wait_for(reader.readline(), 10))
        writer.close()
        server.close()
        return answers

    return asyncio.run(scenario())


def test_repeated_failures_from_one_ip_wait_longer_and_longer(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    answers = run_requests(tmp_path, service,
                           [plain(n, "alice", f"wrong{n}") for n in range(1, 5)])
    assert answers == [b"FAIL\t%d\tuser=alice\n" % n for n in range(1, 5)]
    assert [penalty_to_secs(level) for level in (1, 2, 3)] == [4, 8, 15]
    # each request: the penalty wait (none for the first), then auth_failure_delay
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY, 8, FAILURE_DELAY, 15,
                           FAILURE_DELAY]
    # The 15 s wait outlasts the table's 15 s decay: the next attempt starts over at level 1.
    assert service.penalty.delay_for("10.0.0.1") == 4


def test_the_same_wrong_password_again_does_not_raise_the_penalty(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    run_requests(tmp_path, service, [plain(n, "alice", "typo") for n in range(1, 4)])
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY, 4, FAILURE_DELAY]


def test_another_ip_is_not_delayed(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    answers = run_requests(tmp_path, service, [
        plain(1, "alice", "wrong1"), plain(2, "alice", "wrong2"),
        plain(3, "alice", "pw", "10.0.0.2"), plain(4, "bob", "nope", "10.0.0.3"),
        plain(5, "alice", "pw", None)])
    assert answers[2] == b"OK\t3\tuser=alice\n"
    assert answers[4] == b"OK\t5\tuser=alice\n"
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY, FAILURE_DELAY]


def test_an_ipv6_prefix_shares_one_penalty(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    run_requests(tmp_path, service, [plain(1, "alice", "wrong1", "2001:db8:1:2::5"),
                                     plain(2, "alice", "wrong2", "2001:db8:1:ffff::9")])
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY]


def test_no_penalty_flag_neither_waits_nor_counts(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    run_requests(tmp_path, service, [plain(1, "alice", "wrong1"), plain(2, "alice", "wrong2")])
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY]
    fake.sleeps.clear()
    run_requests(tmp_path, service, [plain(n, "alice", f"x{n}", "10.0.0.1", "no-penalty")
                                     for n in (3, 4, 5)])
    assert fake.sleeps == [FAILURE_DELAY] * 3
    fake.sleeps.clear()
    run_requests(tmp_path, service, [plain(6, "alice", "wrong6")])
    assert fake.sleeps == [8, FAILURE_DELAY]  # level 2 as before the no-penalty requests


def test_success_clears_the_penalty(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    answers = run_requests(tmp_path, service, [
        plain(1, "alice", "wrong1"), plain(2, "alice", "wrong2"), plain(3, "alice", "pw"),
        plain(4, "alice", "wrong4")])
    assert answers[2] == b"OK\t3\tuser=alice\n"
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY, 8, FAILURE_DELAY]


def test_login_mechanism_is_penalised_too(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    b64 = base64.b64encode

    async def scenario():
        server, reader, writer = await serve_pair(service, str(tmp_path / "s"))
        await reader.readuntil(b"DONE\n")
        writer.write(HELLO)
        answers = []
        for request_id, password in ((1, b"wrong1"), (2, b"wrong2")):
            writer.write(b"AUTH\t%d\tLOGIN\tservice=smtp\trip=10.0.0.7\n" % request_id)
            answers.append(await asyncio.wait_for(reader.readline(), 10))
            writer.write(b"CONT\t%d\t%s\n" % (request_id, b64(b"alice")))
            answers.append(await asyncio.wait_for(reader.readline(), 10))
            writer.write(b"CONT\t%d\t%s\n" % (request_id, b64(password)))
            answers.append(await asyncio.wait_for(reader.readline(), 10))
        writer.close()
        server.close()
        return answers

    answers = asyncio.run(scenario())
    assert answers[2] == b"FAIL\t1\tuser=alice\n" and answers[5] == b"FAIL\t2\tuser=alice\n"
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY]


def test_unknown_user_and_wrong_password_are_answered_at_the_same_moment(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    real_authenticate = service.lookup.authenticate

    def hashing_authenticate(user, password, *args, **kwargs):
        result = real_authenticate(user, password, *args, **kwargs)
        if result.reason == "password mismatch":
            fake.now += 0.75  # the time a password hash takes; an unknown user costs none
        return result

    service.lookup.authenticate = hashing_authenticate
    started = fake.now
    answers = run_requests(tmp_path, service, [plain(1, "alice", "wrong", None)])
    wrong_password_took = fake.now - started
    started = fake.now
    answers += run_requests(tmp_path, service, [plain(2, "nobody", "wrong", None)])
    unknown_user_took = fake.now - started
    assert answers == [b"FAIL\t1\tuser=alice\n", b"FAIL\t2\tuser=nobody\n"]
    assert wrong_password_took == unknown_user_took == FAILURE_DELAY
    assert fake.sleeps == [FAILURE_DELAY - 0.75, FAILURE_DELAY]


def test_unknown_user_raises_the_penalty_like_a_wrong_password(tmp_path):
    fake = FakeTime()
    service = penalised_service(tmp_path, fake)
    run_requests(tmp_path, service, [plain(1, "nobody", "x"), plain(2, "alice", "wrong")])
    assert fake.sleeps == [FAILURE_DELAY, 4, FAILURE_DELAY]


def test_a_penalty_wait_does_not_hold_up_other_requests(tmp_path):
    async def scenario():
        gate = asyncio.Event()
        sleeps: list[float] = []

        async def gated_sleep(seconds):
            sleeps.append(seconds)
            if seconds > FAILURE_DELAY:
                await gate.wait()  # the penalty wait lasts until released

        service, _log = service_for(tmp_path, "auth_failure_delay = 0\n", sleep=gated_sleep)
        server, reader, writer = await serve_pair(service, str(tmp_path / "s"))
        await reader.readuntil(b"DONE\n")
        writer.write(HELLO + plain(1, "alice", "wrong1"))
        first = await asyncio.wait_for(reader.readline(), 10)
        writer.write(plain(2, "alice", "pw") + plain(3, "bob", "Secret", "10.0.0.2"))
        while 4 not in sleeps:  # request 2 waits its penalty ...
            await asyncio.sleep(0.01)
        second = await asyncio.wait_for(reader.readline(), 10)  # ... request 3 is answered
        gate.set()
        third = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        server.close()
        return [first, second, third]

    assert asyncio.run(scenario()) == [b"FAIL\t1\tuser=alice\n", b"OK\t3\tuser=bob\n",
                                       b"OK\t2\tuser=alice\n"]


def test_continuation_during_the_penalty_wait_is_refused(tmp_path):
    async def scenario():
        gate = asyncio.Event()

        async def gated_sleep(seconds):
            if seconds > FAILURE_DELAY:
                await gate.wait()

        service, _log = service_for(tmp_path, "auth_failure_delay = 0\n", sleep=gated_sleep)
        server, reader, writer = await serve_pair(service, str(tmp_path / "s"))
        await reader.readuntil(b"DONE\n")
        writer.write(HELLO + plain(1, "alice", "wrong1"))
        first = await asyncio.wait_for(reader.readline(), 10)
        writer.write(b"AUTH\t2\tLOGIN\tservice=smtp\trip=10.0.0.1\n"
                     + b"CONT\t2\t" + base64.b64encode(b"alice") + b"\n")
        second = await asyncio.wait_for(reader.readline(), 10)
        gate.set()
        await asyncio.sleep(0.05)
        writer.close()
        server.close()
        return [first, second]

    assert asyncio.run(scenario()) == [b"FAIL\t1\tuser=alice\n", b"FAIL\t2\n"]
