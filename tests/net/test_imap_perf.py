"""roost.net.imap's waits and batching, against roost.net.imap in this process: IDLE woken
by a delivery through the change feed's callback (Mailbox.watch) and through the
wait_changed fallback, with no task of its own per idling client on the watch path; IDLE's
"Still here" notices and the autologout, the pre-login timeout (one deadline timer per
worker, roost.net.imap._Deadlines); DONE pipelined with IDLE; a FETCH's header-cache records
appended in one write at the end of the command (MaildirUserStore.deferred_cache_writes)."""

from __future__ import annotations

import asyncio
import io
import socket
import time

import pytest

from roost.net import imap as net_imap
from roost.store.location import MailLocation
from roost.store.maildir import MaildirUserStore
from roost.store.maildir import cache as header_cache
from roost.store.maildir.mailbox import MaildirMailbox
from tests.interop.test_imap_dovecot_differential import bob_roost, login


@pytest.fixture
def roost(tmp_path, monkeypatch):
    monkeypatch.setattr(net_imap._Deadlines, "TICK", 0.05)
    server = bob_roost(tmp_path)
    try:
        yield server
    finally:
        server.close()


def deliver(maildir, subject: str) -> None:
    store = MaildirUserStore("bob", MailLocation("maildir", str(maildir)))
    store.deliver("INBOX", io.BytesIO(b"From: a@example.test\r\nSubject: %s\r\n\r\nhi\r\n"
                                      % subject.encode()))


def server_tasks(roost) -> int:
    async def count():
        return len(asyncio.all_tasks()) - 1  # not this one
    return asyncio.run_coroutine_threadsafe(count(), roost.loop).result(10)


def idling(roost):
    client = login(roost.port, "bob")
    client.command(b"SELECT INBOX")
    client.sock.sendall(b"i IDLE\r\n")
    assert client.file.readline() == b"+ idling\r\n"
    return client


@pytest.mark.parametrize("with_watch", [True, False])
def test_idle_woken_by_a_delivery(roost, monkeypatch, with_watch):
    if not with_watch:  # the wait_changed fallback of a store without watch()
        monkeypatch.delattr(MaildirMailbox, "watch")
    deliver(roost.maildir, "first")
    client = idling(roost)
    try:
        time.sleep(0.2)
        # the watch path waits in the connection's own task; the fallback has one more
        assert server_tasks(roost) == (1 if with_watch else 2)
        started = time.monotonic()
        deliver(roost.maildir, "second")
        assert client.file.readline() == b"* 2 EXISTS\r\n"
        assert time.monotonic() - started < 2
        assert client.file.readline() == b"* 2 RECENT\r\n"
        deliver(roost.maildir, "third")  # and again, after the first wake-up
        assert client.file.readline() == b"* 3 EXISTS\r\n"
        assert client.file.readline() == b"* 3 RECENT\r\n"
        client.sock.sendall(b"DONE\r\n")
        assert client.file.readline() == b"i OK Idle completed.\r\n"
        assert client.command(b"NOOP")[1] == b"OK NOOP completed.\r\n"
        assert server_tasks(roost) == 1
    finally:
        client.close()


def test_idle_done_pipelined_and_expected_done(roost):
    client = login(roost.port, "bob")
    try:
        client.sock.sendall(b"i IDLE\r\nDONE\r\n")
        assert client.file.readline() == b"+ idling\r\n"
        assert client.file.readline() == b"i OK Idle completed.\r\n"
        client.sock.sendall(b"j IDLE\r\nnot done\r\n")
        assert client.file.readline() == b"+ idling\r\n"
        assert client.file.readline() == b"j BAD Expected DONE.\r\n"
    finally:
        client.close()


def test_idle_notices_then_autologout(roost, monkeypatch):
    monkeypatch.setattr(roost.service, "idle_notify", 0.3)  # (imap_idle_notify_interval)
    monkeypatch.setattr(net_imap, "AUTOLOGOUT", 1.2)
    client = idling(roost)
    try:
        started = time.monotonic()
        assert client.file.readline() == b"* OK Still here\r\n"
        assert client.file.readline() == b"* OK Still here\r\n"
        while (line := client.file.readline()) == b"* OK Still here\r\n":
            pass
        assert line == b""  # closed by the server
        assert 1.1 < time.monotonic() - started < 5
    finally:
        client.close()
    deadline = time.monotonic() + 5
    while not any("Disconnected for inactivity" in line for line in roost.lines()):
        assert time.monotonic() < deadline, roost.lines()
        time.sleep(0.05)


def test_prelogin_timeout(roost, monkeypatch):
    monkeypatch.setattr(net_imap, "LOGIN_TIMEOUT", 0.3)
    sock = socket.create_connection(("127.0.0.1", roost.port), timeout=10)
    try:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"* OK ")
        started = time.monotonic()
        assert reader.readline() == b""
        assert 0.25 < time.monotonic() - started < 3
    finally:
        sock.close()
    deadline = time.monotonic() + 5
    while not any(line.startswith("Disconnected: Disconnected for inactivity")
                  or "Disconnected for inactivity" in line for line in roost.lines()):
        assert time.monotonic() < deadline, roost.lines()
        time.sleep(0.05)


def test_fetch_appends_the_header_cache_once(roost, monkeypatch):
    for number in range(30):
        deliver(roost.maildir, f"message {number}")
    appends = []
    flush = header_cache.HeaderCache.flush

    def counting_flush(self):
        if self._pending:
            appends.append(len(self._pending))
        flush(self)
    monkeypatch.setattr(header_cache.HeaderCache, "flush", counting_flush)
    client = login(roost.port, "bob")
    try:
        client.command(b"SELECT INBOX")
        data, status = client.command(b"FETCH 1:* (ENVELOPE)")
        assert status == b"OK Fetch completed.\r\n" and data.count(b" FETCH (ENVELOPE ") == 30
        # written at the end of the command, before the client's next one
        assert appends == [30]
        records, damaged = header_cache.parse((roost.maildir / "roost.cache").read_bytes())
        assert not damaged and sorted(records) == list(range(1, 31))
        assert client.command(b"FETCH 1:* (ENVELOPE)")[0] == data  # from the cache now
        assert appends == [30]
    finally:
        client.close()


def test_cheap_commands_run_on_the_loop_and_the_rest_in_a_thread(roost, monkeypatch):
    deliver(roost.maildir, "one")
    threaded = []
    to_thread = asyncio.to_thread

    async def counting(function, *args, **kwargs):
        if function is net_imap._execute:
            threaded.append(args[1].name)
        return await to_thread(function, *args, **kwargs)
    monkeypatch.setattr(asyncio, "to_thread", counting)
    client = login(roost.port, "bob")
    try:
        for line in (b"NOOP", b"LIST \"\" *", b"SELECT INBOX", b"FETCH 1 (FLAGS ENVELOPE)",
                     b"FETCH 1 BODY.PEEK[]", b"FETCH 1 BODY[]", b"STORE 1 +FLAGS (\\Flagged)",
                     b"EXAMINE INBOX", b"FETCH 1 BODY[]", b"NOOP"):
            assert client.command(line)[1].startswith(b"OK"), line
        # \Seen set by a FETCH, STORE and SELECT/EXAMINE may wait on the disk or a lock;
        # a read-only FETCH of a body sets nothing
        assert threaded == ["SELECT", "FETCH", "STORE", "EXAMINE"]
        monkeypatch.setattr(net_imap, "INLINE_MAX_MESSAGES", 0)  # a "large" mailbox
        client.command(b"FETCH 1 (FLAGS)")
        assert threaded[-1] == "FETCH"
    finally:
        client.close()
