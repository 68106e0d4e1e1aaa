"""mail_max_userip_connections slots (roost.login.userip): counted per (protocol, user, IP)
across descriptors and processes, freed on release and when the holding process dies."""

from __future__ import annotations

import os
import signal

from roost.login import userip


def test_limit_counts_sessions_of_one_user_ip_and_protocol(tmp_path):
    held = [userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 2) for _ in range(2)]
    assert all(slot is not None for slot in held)
    assert userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 2) is None
    # another protocol, user or address has its own count (as Dovecot's anvil keys it)
    others = [userip.acquire(str(tmp_path), "pop3", "alice", "127.0.0.2", 2),
              userip.acquire(str(tmp_path), "imap", "bob", "127.0.0.2", 2),
              userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.3", 2)]
    assert all(slot is not None for slot in others)
    held[0].release()
    held[0].release()  # idempotent
    again = userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 2)
    assert again is not None
    assert userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 2) is None
    for slot in [held[1], again, *others]:
        slot.release()


def test_no_limit_without_limit_or_address(tmp_path):
    assert userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 0) is userip.UNLIMITED
    assert userip.acquire(str(tmp_path), "imap", "alice", None, 1) is userip.UNLIMITED
    assert not (tmp_path / userip.LOCK_FILE).exists()


def test_slots_are_shared_between_processes_and_freed_when_a_holder_dies(tmp_path):
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # holds one slot until killed
        try:
            slot = userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 1)
            os.write(write_end, b"y" if slot is not None else b"n")
            signal.pause()
        finally:
            os._exit(0)
    try:
        assert os.read(read_end, 1) == b"y"
        assert userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 1) is None
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        child = 0
        slot = userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 1)
        assert slot is not None
        slot.release()
    finally:
        if child:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
        os.close(read_end)
        os.close(write_end)


def test_reason_is_dovecots_text():
    assert userip.limit_reason(10) == ("Maximum number of connections from user+IP exceeded "
                                       "(mail_max_userip_connections=10)")


def test_prepare_creates_the_lock_file_for_the_workers_account(tmp_path):
    base_dir = tmp_path / "run" / "dovecot"
    userip.prepare(str(base_dir), os.getuid(), os.getgid())
    info = (base_dir / userip.LOCK_FILE).stat()
    assert (info.st_mode & 0o777, info.st_uid) == (0o600, os.getuid())


def test_many_sessions_find_a_free_slot_in_a_few_tries(tmp_path, monkeypatch):
    """10,000 sessions under a limit of 25,000 (bench/imap_idle_bench.py's setting): each
    login must not try every held slot first (that was n^2/2 lock calls)."""
    from roost.master import anvil

    calls = []
    real = anvil._try_lock
    monkeypatch.setattr(anvil, "_try_lock", lambda fd, byte: calls.append(byte) or real(fd, byte))
    held = [userip.acquire(str(tmp_path), "imap", "alice", "127.0.0.2", 25000)
            for _ in range(2000)]
    assert all(slot is not None for slot in held)
    assert len(calls) < 3 * len(held)
    for slot in held:
        slot.release()
