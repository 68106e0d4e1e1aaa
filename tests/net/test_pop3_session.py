"""roost.net.pop3 in this process: timeouts, shutdown, STLS injection, limits, messages that
vanish under a session, storage failures, and the \\Seen flags RETR leaves behind."""

from __future__ import annotations

import os
import re
import socket
import ssl
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import roost.net.pop3 as pop3_module
from tests.net.pop3_harness import PASSWORD, RoostPop3, maildir, put_message, talk, wait_for, \
    write_setup

LOGIN = [b"USER alice\r\n", f"PASS {PASSWORD}\r\n".encode()]


@pytest.fixture
def setup(tmp_path):
    conf = write_setup(tmp_path, lock="no", extra="first_valid_uid = 0")
    put_message(tmp_path, "1000000001.M1P1.host", b"Subject: one\n\nbody one\n")
    put_message(tmp_path, "1000000002.M2P1.host", b"Subject: two\n\nbody two\n")
    return tmp_path, conf


@pytest.fixture
def server(setup):
    directory, conf = setup
    inst = RoostPop3(conf)
    yield inst
    inst.close()


def test_login_timeout(setup, monkeypatch):
    monkeypatch.setattr(pop3_module, "LOGIN_TIMEOUT", 0.3)
    inst = RoostPop3(setup[1])
    try:
        transcript = talk(inst.port, [], idle=1.0)
    finally:
        inst.close()
    assert transcript.endswith(b"-ERR Disconnected for inactivity.\r\n<closed>")
    assert any(line.startswith("Disconnected: Inactivity (no auth attempts in 0 secs): user=<>")
               for line in inst.lines())


def test_autologout(setup, monkeypatch):
    monkeypatch.setattr(pop3_module, "IDLE_TIMEOUT", 0.3)
    inst = RoostPop3(setup[1])
    try:
        transcript = talk(inst.port, LOGIN, idle=1.0)
    finally:
        inst.close()
    assert transcript.endswith(b"+OK Logged in.\r\n-ERR Disconnected for inactivity.\r\n<closed>")
    assert any("Disconnected: Inactivity - no input for 0 secs top=0/0" in line
               for line in inst.lines())


def test_shutdown_says_goodbye(server):
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    logged_in = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    idle.recv(100)
    logged_in.recv(100)
    logged_in.sendall(b"".join(LOGIN))
    assert wait_for(lambda: b"Logged in" in logged_in.recv(100))
    server.stop_gracefully()
    assert idle.recv(200) == b"-ERR [SYS/TEMP] Server shutting down.\r\n"
    assert logged_in.recv(200) == b"-ERR [SYS/TEMP] Server shutting down.\r\n"
    assert idle.recv(10) == b"" and logged_in.recv(10) == b""
    assert wait_for(lambda: any("Disconnected: Server shutting down. top=0/0" in line
                                for line in server.lines()))


def test_stls_drops_commands_sent_in_clear(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                    source_address=("127.0.0.2", 0))
    sock.recv(100)
    # the injected USER must not survive the switch to TLS (RFC 2595 §4)
    sock.sendall(b"STLS\r\nUSER alice\r\n")
    assert sock.recv(100) == b"+OK Begin TLS negotiation now.\r\n"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_socket(sock)
    tls.sendall(f"PASS {PASSWORD}\r\n".encode())
    assert tls.recv(100) == b"-ERR No username given.\r\n"
    tls.sendall(b"".join(LOGIN))
    assert tls.recv(100) == b"+OK\r\n"
    assert wait_for(lambda: b"+OK Logged in.\r\n" == tls.recv(100))
    tls.close()
    assert wait_for(lambda: any(", TLS, session=" in line for line in server.lines()))


def test_sasl_response_too_large(server):
    transcript = talk(server.port, [b"AUTH PLAIN\r\n", b"A" * 9000 + b"\r\n"])
    assert transcript.endswith(b"+ \r\n<closed>")
    assert wait_for(lambda: any(line.startswith("Disconnected: Authentication response too "
                                                "large (client didn't finish SASL auth")
                                for line in server.lines()))


def test_message_expunged_under_the_session(setup, server):
    directory, _conf = setup
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"".join(LOGIN) + b"STAT\r\n")
    assert [reader.readline() for _ in range(3)][2] == b"+OK 2 52\r\n"
    box = maildir(directory)
    for sub in ("new", "cur"):
        for name in os.listdir(box / sub):
            if name.startswith("1000000001."):
                os.unlink(box / sub / name)  # another program deletes message 1
    sock.sendall(b"RETR 1\r\nRETR 2\r\nQUIT\r\n")
    assert reader.readline() == b"-ERR Message 1 expunged.\r\n"
    assert reader.readline() == b"+OK 26 octets\r\n"
    sock.close()
    reader.close()


def test_storage_failure_is_sys_temp(tmp_path):
    # the userdb gives uid 5000, and mail access is allowed from uid 6000 on only
    conf = write_setup(tmp_path, lock="no", extra="first_valid_uid = 6000")
    inst = RoostPop3(conf)
    try:
        transcript = talk(inst.port, LOGIN)
    finally:
        inst.close()
    assert b"\r\n-ERR [SYS/TEMP] " in transcript and b"Logged in" not in transcript


def test_retr_marks_seen_at_quit_and_on_a_dropped_connection(setup, server):
    directory, _conf = setup
    talk(server.port, LOGIN + [b"RETR 1\r\n", b"QUIT\r\n"], idle=0.2)
    talk(server.port, LOGIN + [b"RETR 2\r\n"], idle=0.2)  # no QUIT

    def flags():
        names = os.listdir(maildir(directory) / "cur")
        return sorted(name.split(":2,")[1] for name in names if ":2," in name)

    assert wait_for(lambda: flags() == ["S", "S"]), os.listdir(maildir(directory) / "cur")


def test_internal_error_ends_only_that_session(server, monkeypatch):
    def broken(self, tx, mailbox, uids, event):
        raise RuntimeError("bug in the update")

    monkeypatch.setattr(pop3_module._Session, "_update", broken)
    transcript = talk(server.port, LOGIN + [b"QUIT\r\n"], idle=0.2)
    assert re.search(rb"\r\n-ERR \[SYS/TEMP\] Internal error occurred\. Refer to server log for "
                     rb"more information\. \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]\r\n<closed>$",
                     transcript), transcript
    assert any("unexpected RuntimeError: bug in the update" in line
               for line in server.lines("error"))
    monkeypatch.undo()
    assert b"+OK Logging out." in talk(server.port, LOGIN + [b"QUIT\r\n"], idle=0.2)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """Its client 127.0.0.77 is a trusted network: garbage logins raise no penalty."""
    directory = tmp_path_factory.mktemp("pop3-fuzz")
    conf = write_setup(directory, lock="no",
                       extra="first_valid_uid = 0\nlogin_trusted_networks = 127.0.0.77")
    put_message(directory, "1000000001.M1P1.host", b"Subject: one\n\nbody one\n")
    inst = RoostPop3(conf)
    yield inst
    inst.close()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(st.binary(max_size=200), st.sampled_from(
    [b"USER alice", b"PASS pw", b"RETR 1", b"TOP 1 1", b"LIST", b"UIDL", b"DELE 1", b"RSET",
     b"AUTH PLAIN", b"AUTH LOGIN", b"*", b"CAPA", b"NOOP", b"QUIT"])), min_size=1, max_size=12))
def test_garbage_never_breaks_the_server(fuzz_server, lines):
    data = b"".join(line.replace(b"STLS", b"STL") + b"\r\n" for line in lines)
    transcript = talk(fuzz_server.port, [data], idle=0.05, first_wait=1.0, source="127.0.0.77")
    assert transcript.startswith(b"+OK Dovecot (Debian) ready.\r\n")
    assert not fuzz_server.lines("error")
    # the server still serves, and nothing was deleted without a QUIT in a session
    after = talk(fuzz_server.port, LOGIN + [b"STAT\r\n", b"QUIT\r\n"], idle=0.05,
                 source="127.0.0.77")
    assert b"+OK Logged in.\r\n" in after


def _read_all(sock: socket.socket) -> bytes:
    received = bytearray()
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return bytes(received)
        received += data


def _expected_retr(text: bytes) -> bytes:
    stuffed = text.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
    return b"+OK %d octets\r\n" % len(text.replace(b"\n", b"\r\n")) + stuffed + b".\r\n"


def test_pipelined_commands_then_half_close_are_all_answered(tmp_path):
    """The TRANSACTION state answers from the transport's protocol (_CommandPump): every
    pipelined command is answered in order, the client's half-close ends the session only
    after them, and QUIT's UPDATE completes (the DELE is applied)."""
    conf = write_setup(tmp_path, lock="no", extra="first_valid_uid = 0")
    small = b"Subject: small\n\n.dot line\nbody\n"
    big = b"Subject: big\n\n" + b"".join(b"%s line %d of a long message\n"
                                        % (b"." if n % 7 == 0 else b"", n) for n in range(20000))
    put_message(tmp_path, "1000000001.M1P1.host", small)
    put_message(tmp_path, "1000000002.M2P1.host", big)
    inst = RoostPop3(conf)
    try:
        sock = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
        sock.recv(100)
        sock.sendall(b"".join(LOGIN))
        assert wait_for(lambda: b"Logged in" in sock.recv(200))
        sock.sendall(b"RETR 1\r\nRETR 2\r\n" * 20 + b"DELE 1\r\nQUIT\r\n")
        sock.shutdown(socket.SHUT_WR)
        received = _read_all(sock)
        sock.close()
    finally:
        inst.close()
    expected = (_expected_retr(small) + _expected_retr(big)) * 20 + \
        b"+OK Marked to be deleted.\r\n+OK Logging out, messages deleted.\r\n"
    assert received == expected
    left = os.listdir(maildir(tmp_path) / "cur") + os.listdir(maildir(tmp_path) / "new")
    assert len(left) == 1
    assert any("Disconnected: Logged out top=0/0, retr=40/" in line for line in inst.lines())


def test_a_client_that_reads_slowly_gets_everything(tmp_path, monkeypatch):
    """Output flow control: 1,500 pipelined RETRs (14 MB) while the client reads nothing for a while
    (the server stops answering above the transport's high-water mark, then resumes)."""
    pauses = []
    original = pop3_module._CommandPump.pause_writing

    def counted(self):
        pauses.append(1)
        original(self)

    monkeypatch.setattr(pop3_module._CommandPump, "pause_writing", counted)
    conf = write_setup(tmp_path, lock="no", extra="first_valid_uid = 0")
    text = b"Subject: x\n\n" + b"some text for the message body\n" * 300
    put_message(tmp_path, "1000000001.M1P1.host", text)
    inst = RoostPop3(conf)
    try:
        sock = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
        sock.recv(100)
        sock.sendall(b"".join(LOGIN))
        assert wait_for(lambda: b"Logged in" in sock.recv(200))
        sock.sendall(b"RETR 1\r\n" * 1500 + b"QUIT\r\n")
        time.sleep(0.5)  # the server's buffers fill up meanwhile
        received = _read_all(sock)
        sock.close()
    finally:
        inst.close()
    assert received == _expected_retr(text) * 1500 + b"+OK Logging out.\r\n"
    assert pauses  # the transport did push back


def test_a_connection_dropped_in_the_middle_of_a_long_retr(tmp_path):
    conf = write_setup(tmp_path, lock="no", extra="first_valid_uid = 0")
    put_message(tmp_path, "1000000001.M1P1.host",
                b"Subject: big\n\n" + b"".join(b"line %d\n" % n for n in range(200000)))
    inst = RoostPop3(conf)
    try:
        sock = socket.create_connection(("127.0.0.1", inst.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.recv(100)
        sock.sendall(b"".join(LOGIN))
        assert wait_for(lambda: b"Logged in" in sock.recv(200))
        sock.sendall(b"DELE 1\r\nRETR 1\r\n")
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST while the server is blocked on output
        assert wait_for(lambda: any("Disconnected: Connection closed" in line
                                    for line in inst.lines()))
        after = talk(inst.port, LOGIN + [b"STAT\r\n", b"QUIT\r\n"], idle=0.2)
    finally:
        inst.close()
    assert b"+OK 1 " in after  # nothing deleted without QUIT
    assert not inst.lines("error")
