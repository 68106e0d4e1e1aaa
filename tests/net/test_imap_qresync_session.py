"""QRESYNC in roost.net.imap sessions, where no Dovecot comparison is needed (the differential
is tests/interop/test_imap_qresync_dovecot.py): IDLE hears `* VANISHED`, ENABLE QRESYNC while
selected switches the selected mailbox over, STORE reports each message once (with its UID
once QRESYNC is on, RFC 7162 §3.2.4), and an mbox INBOX answers QRESYNC correctly although its
MODSEQs live in memory only.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest

from tests.interop.test_imap_dovecot_differential import CONF, MAIL_UID, PASSWORD, Client
from tests.net.pop3_harness import RoostImap, make_certificate


@pytest.fixture
def roost(tmp_path):
    yield from _server(tmp_path, "")


@pytest.fixture
def roost_mbox(tmp_path):
    (tmp_path / "spool").mkdir()
    yield from _server(tmp_path, f"mbox:{tmp_path}/mail/%u/mbox:INBOX={tmp_path}/spool/%u")


def _server(directory, location):
    for name in ("run", "state", "mail"):
        (directory / name).mkdir()
    make_certificate(directory)
    (directory / "users").write_text(f"bob:{{PLAIN}}{PASSWORD}::::::\n")
    conf = CONF.format(dir=directory, uid=MAIL_UID, port=0)
    if location:
        conf = re.sub(r"(?m)^mail_location = .*$", f"mail_location = {location}", conf)
    (directory / "dovecot.conf").write_text(conf)
    server = RoostImap(directory / "dovecot.conf")
    try:
        yield server
    finally:
        server.close()


@contextmanager
def session(port: int):
    client = Client(port)
    try:
        assert client.command(b"LOGIN bob " + PASSWORD.encode())[1].startswith(b"OK")
        yield client
    finally:
        client.close()


def fill(client: Client, mailbox: bytes, count: int) -> None:
    if mailbox != b"INBOX":
        client.command(b"CREATE " + mailbox)
    for number in range(count):
        status = client.command(b"APPEND " + mailbox, b"Subject: %d\r\n\r\nbody\r\n" % number)[1]
        assert status.startswith(b"OK"), status


def test_idle_hears_vanished(roost):
    with session(roost.port) as watcher, session(roost.port) as other:
        fill(other, b"box", 3)
        watcher.command(b"ENABLE QRESYNC")
        watcher.command(b"SELECT box")
        watcher.sock.sendall(b"i1 IDLE\r\n")
        assert watcher.file.readline().startswith(b"+ ")
        other.command(b"SELECT box")
        other.command(b"UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        other.command(b"EXPUNGE")
        watcher.sock.settimeout(10)
        lines = []
        while not any(line.startswith(b"* VANISHED") for line in lines):
            lines.append(watcher.file.readline())
        assert b"* VANISHED 2\r\n" in lines
        assert not any(b"EXPUNGE" in line for line in lines)
        watcher.sock.sendall(b"DONE\r\n")
        while not (line := watcher.file.readline()).startswith(b"i1 "):
            pass
        assert line.startswith(b"i1 OK")


def test_store_reports_each_message_once(roost):
    with session(roost.port) as client:
        fill(client, b"INBOX", 2)
        client.command(b"SELECT INBOX")
        data, _ = client.command(b"STORE 1:2 +FLAGS (\\Flagged)")
        assert data.count(b" FETCH ") == 2 and b"UID" not in data
        client.command(b"ENABLE CONDSTORE")
        data, _ = client.command(b"STORE 1 +FLAGS (\\Seen)")
        assert data.count(b" FETCH ") == 1 and b"MODSEQ" in data
        client.command(b"ENABLE QRESYNC")
        data, _ = client.command(b"STORE 2 -FLAGS (\\Flagged)")
        assert re.fullmatch(rb"\* 2 FETCH \(UID 2 FLAGS \(\\Recent\) MODSEQ \(\d+\)\)\r\n", data)
        data, _ = client.command(b"STORE 2 +FLAGS.SILENT (\\Answered)")
        assert re.fullmatch(rb"\* 2 FETCH \(UID 2 MODSEQ \(\d+\)\)\r\n", data)


def test_enable_qresync_while_selected(roost):
    with session(roost.port) as client:
        fill(client, b"INBOX", 3)
        client.command(b"SELECT INBOX")
        client.command(b"STORE 1,3 +FLAGS.SILENT (\\Deleted)")
        assert client.command(b"ENABLE QRESYNC")[0] == b"* ENABLED QRESYNC\r\n"
        data, status = client.command(b"EXPUNGE")
        assert data == b"* VANISHED 1,3\r\n"
        assert re.match(rb"OK \[HIGHESTMODSEQ \d+\] Expunge completed", status)
        data, status = client.command(b"CLOSE")  # RFC 7162 §3.2.8: nothing, not even VANISHED
        assert (data, status) == (b"", b"OK Close completed.\r\n")


def test_mbox_inbox_resyncs(roost_mbox):
    with session(roost_mbox.port) as client:
        fill(client, b"INBOX", 4)
        client.command(b"ENABLE QRESYNC")
        data, _ = client.command(b"SELECT INBOX")
        validity = int(re.search(rb"UIDVALIDITY (\d+)", data).group(1))
        modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", data).group(1))
        client.command(b"UNSELECT")
    with session(roost_mbox.port) as other:
        other.command(b"SELECT INBOX")
        other.command(b"UID STORE 2 +FLAGS.SILENT (\\Deleted)")
        other.command(b"UID STORE 3 +FLAGS.SILENT (\\Flagged)")
        other.command(b"EXPUNGE")
    with session(roost_mbox.port) as client:
        client.command(b"ENABLE QRESYNC")
        data, status = client.command(b"SELECT INBOX (QRESYNC (%d %d))" % (validity, modseq))
        assert status.startswith(b"OK")
        # MODSEQs of an earlier open are unknown to mbox: every absent UID is VANISHED and
        # every message reported changed, which is what the client needs to catch up
        assert b"* VANISHED (EARLIER) 2\r\n" in data
        flags = dict(re.findall(rb"UID (\d+) FLAGS \(([^)]*)\)", data))
        assert flags == {b"1": b"", b"3": b"\\Flagged", b"4": b""}
