"""Python's imaplib against a whole roost server (`roost init` + `roost start`): login
(LOGIN, AUTHENTICATE PLAIN, refusal without TLS), SELECT, FETCH of every kind, STORE, SEARCH,
COPY/MOVE with COPYUID, APPEND with APPENDUID, EXPUNGE, LIST/STATUS/CREATE/RENAME/DELETE,
two sessions seeing each other's changes, IDLE woken by a delivery, STARTTLS and imaps,
and the Dovecot-format log lines.
"""

from __future__ import annotations

import imaplib
import os
import re
import socket
import ssl
import threading
import time

import pytest

from tests.conftest import free_port_base, run_roost
from tests.net.test_pop3_server import Roost, _insecure_context, _port_open

USER = "alice@example.test"
PASSWORD = "Secret-pw1"


def message(number: int) -> bytes:
    return (b"From: Sender <sender@example.test>\nTo: alice@example.test\n"
            b"Subject: message %d\nMessage-ID: <m%d@example.test>\n"
            b"Date: Mon, 23 Nov 2026 10:00:0%d +0000\n\nbody of %d\n" % (number, number,
                                                                         number, number))


class ImapRoost(Roost):
    def __init__(self, base_dir: str, port_base: int):
        super().__init__(base_dir, port_base)
        self.imap = port_base + 143
        self.imaps = port_base + 993

    def start(self) -> None:
        result = self.roost("start")
        assert result.returncode == 0, result.stderr
        assert _wait(lambda: _port_open(self.imap))

    def client(self, source: str = "127.0.0.1") -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.imap, timeout=30)
        typ, _ = imap.login(USER, PASSWORD)
        assert typ == "OK"
        return imap


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def roost(tmp_path_factory):
    inst = ImapRoost(str(tmp_path_factory.mktemp("imap")), free_port_base())
    try:
        init = run_roost("init", inst.dir, "--port-base", str(inst.base), "--user",
                         f"{USER}:{PASSWORD}")
        assert init.returncode == 0, init.stderr
        with open(os.path.join(inst.dir, "dovecot.conf"), "a", encoding="utf-8") as conf:
            conf.write("auth_failure_delay = 0\nlogin_trusted_networks = 127.0.0.3\n")
        inst.start()
        yield inst
    finally:
        inst.stop()


@pytest.fixture
def inbox(roost):
    imap = roost.client()
    imap.select("INBOX")
    imap.store("1:*", "+FLAGS", "(\\Deleted)") if imap.search(None, "ALL")[1][0] else None
    imap.expunge()
    imap.logout()
    for number in (1, 2, 3):
        roost.deliver(f"{1700000000 + number}.M{number}P1.test", message(number))
    return roost


def test_login_select_fetch_store_search(inbox):
    imap = inbox.client()
    typ, data = imap.select("INBOX")
    assert typ == "OK" and data == [b"3"]
    typ, data = imap.fetch("1:3", "(UID FLAGS RFC822.SIZE ENVELOPE)")
    assert typ == "OK"
    text = b" ".join(part if isinstance(part, bytes) else part[0] for part in data)
    assert text.count(b"ENVELOPE") == 3 and b'"message 2"' in text
    size = len(message(1).replace(b"\n", b"\r\n"))
    assert b"RFC822.SIZE %d" % size in text
    typ, data = imap.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
    assert data[0][1] == b"Subject: message 2\r\n\r\n" and data[1][1] == b"body of 2\r\n"
    typ, data = imap.fetch("1", "(BODY[])")
    assert data[0][1] == message(1).replace(b"\n", b"\r\n")
    assert b"\\Seen" in b"".join(p if isinstance(p, bytes) else p[0] for p in data)
    typ, data = imap.search(None, "UNSEEN")
    assert data == [b"2 3"]
    typ, data = imap.store("3", "+FLAGS", "(\\Flagged $Important)")
    assert typ == "OK" and b"\\Flagged" in data[0] and b"$Important" in data[0]
    assert imap.search(None, "FLAGGED")[1] == [b"3"]
    assert imap.search(None, 'SUBJECT "message 3"')[1] == [b"3"]
    assert imap.search(None, 'BODY "body of 2"')[1] == [b"2"]
    typ, data = imap.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    assert len(uids) == 3
    typ, data = imap.fetch("1:*", "(BODYSTRUCTURE)")
    assert data[0].startswith(b'1 (BODYSTRUCTURE ("text" "plain"')
    imap.logout()


def test_copy_move_append_expunge_and_mailboxes(inbox):
    imap = inbox.client()
    assert imap.create("Archive")[0] == "OK"
    names = b" ".join(imap.list()[1])
    assert b"Archive" in names and b"INBOX" in names
    imap.select("INBOX")
    typ, data = imap.copy("1", "Archive")
    assert typ == "OK" and b"COPYUID" in data[0]
    typ, data = imap._simple_command("MOVE", "2", "Archive")
    assert typ == "OK"
    assert imap.select("INBOX")[1] == [b"2"]
    typ, data = imap.status("Archive", "(MESSAGES UIDNEXT UNSEEN)")
    assert re.search(rb"MESSAGES 2", data[0])
    typ, data = imap.append("Archive", "(\\Seen)", None, message(9).replace(b"\n", b"\r\n"))
    assert typ == "OK" and b"APPENDUID" in data[0]
    assert imap.copy("1", "Nowhere")[0] == "NO"
    imap.select("Archive")
    imap.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = imap.expunge()
    assert data == [b"1"]
    assert imap.rename("Archive", "Old")[0] == "OK"
    assert imap.delete("Old")[0] == "OK"
    imap.logout()


def test_two_sessions_and_idle(inbox):
    first, second = inbox.client(), inbox.client()
    first.select("INBOX")
    second.select("INBOX")
    second.store("1", "+FLAGS", "(\\Answered)")
    first.untagged_responses.clear()
    typ, _data = first.noop()
    assert typ == "OK"
    # the first session to select INBOX sees the new messages as \Recent (RFC 3501 §2.3.2)
    assert first.untagged_responses.get("FETCH") == [b"1 (FLAGS (\\Answered \\Recent))"]
    # IDLE: a delivery wakes the idling session within a second or two
    sock = socket.create_connection(("127.0.0.1", inbox.imap), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"a LOGIN " + USER.encode() + b" " + PASSWORD.encode() + b"\r\n")
    assert reader.readline().startswith(b"a OK")
    sock.sendall(b"b SELECT INBOX\r\n")
    while not reader.readline().startswith(b"b OK"):
        pass
    sock.sendall(b"c IDLE\r\n")
    assert reader.readline().startswith(b"+ idling")
    started = time.monotonic()
    inbox.deliver("1700000099.M99P1.test", message(99))
    line = reader.readline()
    assert line == b"* 4 EXISTS\r\n" and time.monotonic() - started < 3
    sock.sendall(b"DONE\r\n")
    rest = [reader.readline() for _ in range(2)]
    assert rest[0] == b"* 1 RECENT\r\n" and rest[1].startswith(b"c OK")
    sock.close()
    first.logout()
    second.logout()


def test_plaintext_refused_without_tls_then_starttls_and_imaps(roost):
    sock = socket.create_connection(("127.0.0.1", roost.imap), timeout=10, source_address=("127.0.0.2", 0))
    reader = sock.makefile("rb")
    greeting = reader.readline()
    assert b"LOGINDISABLED" in greeting and b"STARTTLS" in greeting
    sock.sendall(b"a LOGIN x y\r\n")
    assert reader.readline().startswith(b"a NO [PRIVACYREQUIRED]")
    sock.close()
    client = imaplib.IMAP4("127.0.0.1", roost.imap, timeout=30)
    client.starttls(_insecure_context())
    assert client.login(USER, PASSWORD)[0] == "OK"
    client.logout()
    secure = imaplib.IMAP4_SSL("127.0.0.1", roost.imaps, ssl_context=_insecure_context(), timeout=30)
    assert secure.login(USER, PASSWORD)[0] == "OK"
    secure.logout()


def test_wrong_password_and_log_lines(roost):
    client = imaplib.IMAP4("127.0.0.1", roost.imap, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.login(USER, "wrong")
    # then the right password on the same connection: the lines below are this test's own,
    # whichever tests ran before it on this server
    assert client.login(USER, PASSWORD)[0] == "OK"
    client.logout()
    assert _wait(lambda: "imap-login: Login: user=<alice@example.test>, method=PLAIN" in roost.maillog()
                 and "Disconnected: Logged out" in roost.maillog())
