"""roost's auth socket answers byte for byte like Debian's Dovecot 2.3 auth socket.

One dovecot.conf (passwd-file passdb, PLAIN and LOGIN, auth_failure_delay 0, auth_verbose)
is served by the real Dovecot (as root, private base_dir in tmp) and by roost.net.auth in
this process; every script below is sent to both and the answers must be equal, apart from
SPID, CUID and COOKIE values, which identify the server instance. The Info lines both write
for the scripts must be equal too. Scripts carry `no-penalty` and their own `rip` so that
Dovecot's anvil penalty never delays one script because of another.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.net.auth import build_service
from tests.conftest import RecordingLog, require_tool
from tests.master.helpers import alive, kill_quietly, wait_until
from tests.support.dovecot import auth_only_conf

CONF = auth_only_conf()
USERS = "alice:{PLAIN}pw::::::\nbob:{PLAIN}Secret::::::\n"
IDLE = 1.2  # seconds of silence that end an answer


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def hello(minor: bytes = b"2") -> bytes:
    return b"VERSION\t1\t" + minor + b"\nCPID\t4242\n"


def auth(request_id: bytes, mech: bytes, rip: int, *extra: bytes) -> bytes:
    fields = [b"AUTH", request_id, mech, b"service=smtp", b"no-penalty",
              b"rip=10.9.0.%d" % rip, b"lip=127.0.0.1", *extra]
    return b"\t".join(fields) + b"\n"


# name -> chunks; each chunk is sent after the answer to the previous one went quiet.
SCRIPTS = {
    "plain_ok": [hello() + auth(b"1", b"PLAIN", 1, b"secured", b"resp=" + b64(b"\0alice\0pw"))],
    "plain_wrong": [hello() + auth(b"1", b"PLAIN", 2, b"resp=" + b64(b"\0alice\0px"))],
    "plain_unknown": [hello() + auth(b"1", b"PLAIN", 3, b"resp=" + b64(b"\0carol\0pw"))],
    "plain_upper_user": [hello() + auth(b"2", b"plain", 4, b"resp=" + b64(b"\0ALICE\0pw"))],
    "plain_no_initial": [hello() + auth(b"7", b"PLAIN", 5), b"CONT\t7\t" + b64(b"\0bob\0Secret") + b"\n"],
    "plain_empty_resp": [hello() + auth(b"1", b"PLAIN", 6, b"resp=")],
    "plain_one_nul": [hello() + auth(b"1", b"PLAIN", 7, b"resp=" + b64(b"alice\0pw"))],
    "plain_tab_user": [hello() + auth(b"1", b"PLAIN", 8, b"resp=" + b64(b"\0al\tice\0pw"))],
    "plain_authzid_same": [hello() + auth(b"1", b"PLAIN", 9, b"resp=" + b64(b"alice\0alice\0pw"))],
    "plain_authzid_other": [hello() + auth(b"1", b"PLAIN", 19, b"resp=" + b64(b"bob\0alice\0pw"))],
    "plain_bad_base64": [hello() + auth(b"1", b"PLAIN", 10, b"resp=!!!")],
    "login_steps": [hello() + auth(b"3", b"LOGIN", 11), b"CONT\t3\t" + b64(b"alice") + b"\n",
                    b"CONT\t3\t" + b64(b"pw") + b"\n"],
    "login_initial_user": [hello() + auth(b"3", b"LOGIN", 12, b"resp=" + b64(b"alice")),
                           b"CONT\t3\t" + b64(b"wrong") + b"\n"],
    "login_star": [hello() + auth(b"3", b"LOGIN", 13), b"CONT\t3\t*\n"],
    "login_bad_base64": [hello() + auth(b"3", b"LOGIN", 14), b"CONT\t3\t!!\n"],
    "secured_tls_crlf": [b"VERSION\t1\t2\r\nCPID\t1\r\n"
                         + auth(b"1", b"PLAIN", 15, b"secured=tls",
                                b"resp=" + b64(b"\0alice\0pw")).replace(b"\n", b"\r\n")],
    "minor_version_3": [hello(b"3") + auth(b"1", b"PLAIN", 16, b"resp=" + b64(b"\0alice\0pw"))],
    "unknown_params": [hello() + auth(b"1", b"PLAIN", 17, b"foo=a\x01tb", b"bar",
                                      b"resp=" + b64(b"\0alice\0pw"))],
    "two_requests": [hello() + auth(b"1", b"PLAIN", 18, b"resp=" + b64(b"\0alice\0pw")),
                     auth(b"2", b"PLAIN", 18, b"resp=" + b64(b"\0bob\0Secret"))],
    "cont_unknown_id": [hello() + b"CONT\t9\tYQ==\n"],
    # protocol errors: the server closes the connection
    "unknown_mechanism": [hello() + auth(b"1", b"FOO", 20)],
    "no_service": [hello() + b"AUTH\t1\tPLAIN\n"],
    "unknown_command": [hello() + b"HELLO\tx\n"],
    "empty_line": [hello() + b"\n"],
    "no_version": [b"CPID\t1\n"],
    "major_version_2": [b"VERSION\t2\t0\n"],
    "no_cpid": [b"VERSION\t1\t2\n" + auth(b"1", b"PLAIN", 21)],
    "id_zero": [hello() + auth(b"0", b"PLAIN", 22)],
    "id_not_number": [hello() + auth(b"x", b"PLAIN", 23)],
    "duplicate_id": [hello() + auth(b"5", b"LOGIN", 24) + auth(b"5", b"LOGIN", 24)],
    "cont_broken": [hello() + b"CONT\t9\n"],
    "line_too_long": [hello() + auth(b"1", b"PLAIN", 25, b"resp=" + b"A" * 20000)],
}


def talk(path: str, chunks: list[bytes]) -> tuple[bytes, bytes, bool]:
    """(handshake, the rest, closed by the server)."""
    client = socket.socket(socket.AF_UNIX)
    client.connect(path)
    client.settimeout(IDLE)
    received = b""
    closed = False
    try:
        for chunk in chunks:
            try:
                client.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            while True:
                try:
                    data = client.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed = True
                    break
                received += data
            if closed:
                break
    finally:
        client.close()
    head, done, rest = received.partition(b"DONE\n")
    return head + done, rest, closed


def masked(handshake: bytes) -> bytes:
    return re.sub(rb"(SPID|CUID|COOKIE)\t[^\n]*", rb"\1\t*", handshake)


CapturingLog = RecordingLog  # also imported by test_dovecot_auth_service


class RoostAuthServer:
    """roost.net.auth on a UNIX socket, in an event loop on its own thread."""

    def __init__(self, conf_path: str, path: str):
        diags = Diagnostics()
        config = parse_dovecot_conf(conf_path, diags)
        assert not diags.has_fatal(), [str(d) for d in diags.items]
        self.log = CapturingLog()
        self.service = build_service(config, self.log)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_unix_server(self.on_client, path), self.loop).result(10)

    async def on_client(self, reader, writer):
        try:
            await self.service.serve(reader, writer)
        finally:
            writer.close()

    def close(self):
        async def stop():
            self.server.close()
            await self.server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@contextmanager
def auth_servers(directory, conf_text: str, users_text: str):
    """Debian's Dovecot (root, private base_dir) and roost.net.auth serving one dovecot.conf
    in `directory`: yields (dovecot socket, roost socket, RoostAuthServer, directory)."""
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("the Dovecot differential test runs Dovecot with a private base_dir and "
                    "needs root (CI runs the suite as root)", pytrace=False)
    conf = directory / "dovecot.conf"
    conf.write_text(conf_text.format(dir=directory))
    (directory / "users").write_text(users_text)
    # Output to a file: the daemon inherits the descriptors and would hold a pipe open.
    with open(directory / "start.log", "w") as output:
        started = subprocess.run(["dovecot", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                 stdout=output, stderr=output, timeout=30)
    assert started.returncode == 0, (directory / "start.log").read_text()
    master = wait_until(lambda: _read_pid(directory / "run" / "master.pid"), 10)
    roost = None
    try:
        assert master, "Dovecot wrote no master.pid"
        assert wait_until(lambda: (directory / "auth").exists(), 10)
        roost = RoostAuthServer(str(conf), str(directory / "roost-auth"))
        yield str(directory / "auth"), str(directory / "roost-auth"), roost, directory
    finally:
        if roost is not None:
            roost.close()
        if master:
            kill_quietly(master, signal.SIGTERM)
            if not wait_until(lambda: not alive(master), 10):
                kill_quietly(master, signal.SIGKILL)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with auth_servers(tmp_path_factory.mktemp("dovecot-auth"), CONF, USERS) as started:
        yield started


def _read_pid(path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _dovecot_info_lines(directory) -> list[str]:
    path = directory / "dovecot.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    return [match.group(1) for match in re.finditer(r" auth: Info: (.*)", text)]


def quoted_name_hidden(line: str) -> str:
    """Dovecot shows a control character in a refused login name as `?`, roost as an escape
    (roost.auth.lookup.shown_name): compare the rest of the line."""
    return re.sub(r" \(username: .*\)$", " (username: ...)", line)


def test_roost_answers_like_dovecot(servers):
    dovecot_path, roost_path, roost, directory = servers
    # All at once: each script waits out IDLE after every chunk.
    with ThreadPoolExecutor(2 * len(SCRIPTS)) as pool:
        their_futures = [pool.submit(talk, dovecot_path, chunks) for chunks in SCRIPTS.values()]
        our_futures = [pool.submit(talk, roost_path, chunks) for chunks in SCRIPTS.values()]
        theirs = dict(zip(SCRIPTS, (future.result() for future in their_futures)))
        ours = dict(zip(SCRIPTS, (future.result() for future in our_futures)))
    for name in SCRIPTS:
        their_head, their_rest, their_closed = theirs[name]
        our_head, our_rest, our_closed = ours[name]
        assert masked(our_head) == masked(their_head), name
        assert (our_rest, our_closed) == (their_rest, their_closed), name
    # Sanity: the scripts exercise successes, failures and closes on both.
    assert theirs["plain_ok"][1] == b"OK\t1\tuser=alice\n"
    assert theirs["unknown_command"][2] and not theirs["plain_wrong"][2]

    expected = wait_until(lambda: sorted(map(quoted_name_hidden,
                                             _dovecot_info_lines(directory))) or None, 5)
    ours_info = sorted(quoted_name_hidden(text) for level, text in roost.log.lines
                       if level == "info")
    assert ours_info == expected
    assert any("Password mismatch" in line for line in ours_info)


def test_failure_delay_does_not_hold_other_requests(tmp_path):
    """auth_failure_delay delays each FAIL without blocking the loop (injected sleep)."""
    conf = tmp_path / "dovecot.conf"
    conf.write_text(CONF.format(dir=tmp_path).replace("auth_failure_delay = 0",
                                                      "auth_failure_delay = 5 secs"))
    (tmp_path / "users").write_text(USERS)
    diags = Diagnostics()
    config = parse_dovecot_conf(str(conf), diags)
    release = None
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        await release.wait()

    async def scenario():
        nonlocal release
        release = asyncio.Event()
        service = build_service(config, CapturingLog(), sleep=fake_sleep, clock=lambda: 0.0)
        server = await asyncio.start_unix_server(
            lambda r, w: service.serve(r, w), str(tmp_path / "s"))
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "s"))
        writer.write(hello() + auth(b"1", b"PLAIN", 1, b"resp=" + b64(b"\0alice\0bad"))
                     + auth(b"2", b"PLAIN", 1, b"resp=" + b64(b"\0alice\0pw")))
        await reader.readuntil(b"DONE\n")
        # The good request is answered while the bad one waits out its delay.
        assert await asyncio.wait_for(reader.readline(), 10) == b"OK\t2\tuser=alice\n"
        await asyncio.sleep(0.05)
        assert slept == [5.0]
        release.set()
        assert await asyncio.wait_for(reader.readline(), 10) == b"FAIL\t1\tuser=alice\n"
        writer.close()
        server.close()
        await server.wait_closed()

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 5
