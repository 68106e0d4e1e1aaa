"""roost.auth.penalty: Dovecot's per-IP auth penalty with an injected clock, and uniform failures.

The schedule follows Dovecot 2.3's documented constants (auth-penalty.h: AUTH_PENALTY_INIT_SECS
2, AUTH_PENALTY_MAX_SECS 15, AUTH_PENALTY_MAX_PENALTY 4, AUTH_PENALTY_TIMEOUT 29, IPv6 /48);
nothing sleeps: the clock is a counter the tests move.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings, strategies as st

from roost.auth.lookup import AuthLookup, ChainEntry
from roost.auth.passdb import create_passdb
from roost.auth.penalty import (AUTH_PENALTY_MAX_SECS, AUTH_PENALTY_TIMEOUT, PenaltyTable,
                                failure_reply_delay, penalty_ident, public_failure_message)
from roost.config.diagnostics import Diagnostics


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_each_failure_doubles_the_wait_up_to_15_seconds():
    clock = FakeClock()
    table = PenaltyTable(clock)
    ip = "192.0.2.1"
    waits = [table.delay_for(ip)]
    for attempt in range(6):
        table.record_failure(ip, table.attempt_checksum("alice", f"guess{attempt}"))
        waits.append(table.delay_for(ip))
    assert waits == [0.0, 4.0, 8.0, 15.0, 15.0, 15.0, 15.0]
    assert table.delay_for("192.0.2.2") == 0.0


def test_success_resets_the_penalty():
    clock = FakeClock()
    table = PenaltyTable(clock)
    for attempt in range(3):
        table.record_failure("192.0.2.1", table.attempt_checksum("alice", str(attempt)))
    table.record_success("192.0.2.1")
    assert table.delay_for("192.0.2.1") == 0.0
    assert len(table) == 0


def test_retrying_the_same_password_does_not_raise_the_penalty():
    clock = FakeClock()
    table = PenaltyTable(clock)
    same = table.attempt_checksum("alice", "typo")
    for _ in range(5):
        table.record_failure("192.0.2.1", same)
    assert table.delay_for("192.0.2.1") == 4.0
    table.record_failure("192.0.2.1", table.attempt_checksum("bob", "typo"))
    assert table.delay_for("192.0.2.1") == 8.0


def test_penalty_is_forgotten_15_seconds_after_the_last_failure_and_dropped_after_29():
    clock = FakeClock()
    table = PenaltyTable(clock)
    for attempt in range(4):
        table.record_failure("192.0.2.1", table.attempt_checksum("a", str(attempt)))
    clock.now += 14.9
    assert table.delay_for("192.0.2.1") == 15.0
    clock.now += 0.1
    assert table.delay_for("192.0.2.1") == 0.0
    assert len(table) == 1
    clock.now += AUTH_PENALTY_TIMEOUT
    table.delay_for("192.0.2.1")
    assert len(table) == 0
    # a failure after the decay starts again from the first level
    table.record_failure("192.0.2.1", table.attempt_checksum("a", "x"))
    assert table.delay_for("192.0.2.1") == 4.0


def test_ipv6_addresses_share_a_record_per_48_bit_prefix():
    assert penalty_ident("2001:db8:1:2::1") == penalty_ident("2001:db8:1:ffff::5") \
        == "2001:db8:1::"
    assert penalty_ident("2001:db8:2::1") != penalty_ident("2001:db8:1::1")
    assert penalty_ident("::ffff:192.0.2.1") == "192.0.2.1"
    assert penalty_ident("") is None and penalty_ident("unknown") is None
    table = PenaltyTable(FakeClock())
    table.record_failure("2001:db8:1:2::1")
    assert table.delay_for("2001:db8:1:9::9") == 4.0
    assert table.delay_for("2001:db8:2::1") == 0.0
    table.record_failure("")  # no address: no penalty, no record
    assert len(table) == 1


def test_memory_is_bounded_least_recently_updated_first():
    clock = FakeClock()
    table = PenaltyTable(clock, max_entries=3)
    for number in range(5):
        clock.now += 1
        table.record_failure(f"192.0.2.{number}")
    assert len(table) == 3
    assert table.delay_for("192.0.2.0") == 0.0
    assert table.delay_for("192.0.2.4") == 4.0


def test_a_clock_going_backwards_counts_as_now():
    clock = FakeClock()
    table = PenaltyTable(clock)
    table.record_failure("192.0.2.1")
    clock.now -= 500
    assert table.delay_for("192.0.2.1") == 4.0


IPS = ["192.0.2.1", "192.0.2.2", "198.51.100.7", "2001:db8:1::1", "2001:db8:1:5::2",
       "2001:db8:9::1", "::ffff:192.0.2.1", "bogus", ""]
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("fail"), st.sampled_from(IPS), st.integers(0, 3)),
    st.tuples(st.just("ok"), st.sampled_from(IPS), st.just(0)),
    st.tuples(st.just("wait"), st.just(""), st.integers(-5, 40)),
), max_size=60)


@settings(max_examples=250, deadline=None)
@given(OPERATIONS, st.integers(1, 4))
def test_random_sequences_keep_the_invariants(operations, max_entries):
    clock = FakeClock()
    table = PenaltyTable(clock, max_entries=max_entries)
    for kind, ip, number in operations:
        before = table.delay_for(ip) if ip else 0.0
        if kind == "fail":
            checksum = table.attempt_checksum("user", str(number))
            fresh = penalty_ident(ip) is not None and all(
                checksum not in record.checksums for record in table._records.values())
            table.record_failure(ip, checksum)
            if fresh:
                assert table.delay_for(ip) >= before
        elif kind == "ok":
            table.record_success(ip)
            assert table.delay_for(ip) == 0.0
        else:
            clock.now += number
        for other in IPS:
            delay = table.delay_for(other)
            assert 0.0 <= delay <= AUTH_PENALTY_MAX_SECS
            assert delay in (0.0, 4.0, 8.0, 15.0)
        assert len(table) <= max_entries


def passwd_file_lookup(tmp_path: Path) -> AuthLookup:
    users = tmp_path / "users"
    users.write_text("alice:{PLAIN}right:1000:1000::/home/alice::\n")
    diags = Diagnostics()
    passdb = create_passdb("passwd-file", str(users), "dovecot.conf", 1, diags)
    assert passdb is not None, diags.items
    return AuthLookup([ChainEntry(passdb)], [])


def test_unknown_user_and_wrong_password_get_the_same_answer(tmp_path):
    lookup = passwd_file_lookup(tmp_path)
    wrong_password = lookup.authenticate("alice", "wrong", "imap", "192.0.2.1")
    unknown_user = lookup.authenticate("mallory", "wrong", "imap", "192.0.2.1")
    assert not wrong_password.ok and not unknown_user.ok
    # the reasons differ, for the log only
    assert (wrong_password.reason, unknown_user.reason) == ("password mismatch", "unknown user")
    assert public_failure_message(wrong_password) == public_failure_message(unknown_user)
    assert public_failure_message(wrong_password) == "Authentication failed."


def test_failure_answers_leave_at_the_same_moment_whatever_the_check_cost():
    auth_failure_delay = 2.0
    for elapsed in (0.0, 0.001, 0.35, 1.999):  # unknown user (no hash) .. slow hash
        assert elapsed + failure_reply_delay(elapsed, auth_failure_delay) == auth_failure_delay
    assert failure_reply_delay(3.5, auth_failure_delay) == 0.0
    assert failure_reply_delay(-1.0, 0) == 0.0
