"""mail_max_userip_connections: roost refuses the login over the limit as Debian's Dovecot
2.3.19 does, with the same reply and the same login-process log line.

One dovecot.conf (tests/net/pop3_harness.py, limit 2, no POP3 session lock, POP3 and IMAP)
served by the real Dovecot and by roost (POP3 in a child process running as the mail user,
IMAP in this process): two sessions of alice from one address stay logged in, the third
login gets the same `-ERR [IN-USE] Maximum number ...` / `NO [LIMIT] Maximum number ...` and
is closed; after one session ends, a login succeeds again; another address is counted apart.
"""

from __future__ import annotations

import os
import re
import socket
import time

import pytest

from tests.conftest import free_port_base, require_tool
from tests.net.pop3_harness import (RealDovecot, RoostImap, RoostPop3Process, chown_mail,
                                    talk, traversable_dir, wait_for, write_setup)

LIMIT = 2
LOGIN = [b"USER alice\r\n", b"PASS pw\r\n"]


@pytest.fixture(scope="module")
def servers():
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("the Dovecot differential test needs root (CI runs the suite as root)",
                    pytrace=False)
    with traversable_dir() as directory:
        base = free_port_base()
        conf = write_setup(directory, lock="no", disable_plaintext_auth="no",
                           ports={"pop3": (base + 10, base + 11), "imap": (base + 12, 0)},
                           extra=f"mail_max_userip_connections = {LIMIT}")
        (directory / "mail" / "alice" / "Maildir" / "new").mkdir(parents=True)
        chown_mail(directory)
        dovecot = RealDovecot(conf, base + 10)
        dovecot.imap_port = base + 12
        roost = imap = None
        try:
            roost = RoostPop3Process(conf, addresses=("127.0.0.1", "127.0.0.2"))
            imap = RoostImap(conf)
            yield dovecot, roost, imap
        finally:
            if imap is not None:
                imap.close()
            if roost is not None:
                roost.close()
            dovecot.close()


def _logged_in(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"+OK")
    sock.sendall(b"".join(LOGIN))
    assert reader.readline() == b"+OK\r\n"
    assert reader.readline() == b"+OK Logged in.\r\n"
    return sock


def _masked(line: str) -> str:
    return re.sub(r"session=<[^>]*>", "session=<*>", line)


def _refusals(lines) -> list[str]:
    return [_masked(line) for line in lines if "Maximum number of connections" in line]


def test_third_session_refused_like_dovecot(servers):
    dovecot, roost, _ = servers
    transcripts = {}
    for name, port in (("dovecot", dovecot.port), ("roost", roost.port)):
        held = [_logged_in(port, "127.0.0.1") for _ in range(LIMIT)]
        try:
            transcripts[name] = talk(port, LOGIN, idle=0.3)
            other = _logged_in(port, "127.0.0.2")  # another address has its own count
            other.close()
        finally:
            held.pop().close()
        time.sleep(0.3)  # the session's end reaches the server
        again = talk(port, LOGIN + [b"QUIT\r\n"], idle=0.3)
        assert b"+OK Logged in." in again, (name, again)
        for sock in held:
            sock.close()
    assert transcripts["roost"] == transcripts["dovecot"]
    assert transcripts["dovecot"].endswith(
        b"-ERR [IN-USE] Maximum number of connections from user+IP exceeded "
        b"(mail_max_userip_connections=2)\r\n<closed>")
    expected = wait_for(lambda: [line.split(" pop3-login: Info: ", 1)[1] for line in
                                 _refusals(dovecot.log_text().splitlines())], 5)
    ours = wait_for(lambda: _refusals(roost.lines()), 5)
    assert ours == expected and len(expected) == 1


def _imap_logged_in(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    reader = sock.makefile("rb")
    assert reader.readline().startswith(b"* OK")
    sock.sendall(b"a LOGIN alice pw\r\n")
    assert reader.readline().startswith(b"a OK")
    return sock


def test_third_imap_session_refused_like_dovecot(servers):
    dovecot, _, imap = servers
    transcripts = {}
    for name, port in (("dovecot", dovecot.imap_port), ("roost", imap.port)):
        held = [_imap_logged_in(port, "127.0.0.1") for _ in range(LIMIT)]
        try:
            transcripts[name] = talk(port, [b"a LOGIN alice pw\r\n"], idle=0.3)
            _imap_logged_in(port, "127.0.0.2").close()
        finally:
            held.pop().close()
        time.sleep(0.3)
        again = talk(port, [b"a LOGIN alice pw\r\n", b"b LOGOUT\r\n"], idle=0.3)
        assert b"a OK" in again, (name, again)
        for sock in held:
            sock.close()
    refusal = (b"a NO [LIMIT] Maximum number of connections from user+IP exceeded "
               b"(mail_max_userip_connections=2)\r\n<closed>")
    assert transcripts["dovecot"].endswith(refusal), transcripts["dovecot"]
    assert transcripts["roost"].endswith(refusal), transcripts["roost"]
    expected = wait_for(lambda: [line.split(" imap-login: Info: ", 1)[1] for line in
                                 _refusals(dovecot.log_text().splitlines())
                                 if " imap-login: " in line], 5)
    ours = wait_for(lambda: _refusals(imap.lines()), 5)
    assert ours == expected and len(expected) == 1
