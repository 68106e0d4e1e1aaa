"""imap-login and imap log lines of roost.net.imap against Debian's Dovecot 2.3.19 (issue 4).

The same dovecot.conf (passwd-file users, Maildirs, an imap listener) is served by the real
Dovecot (root: it drops to its own users) and by roost.net.imap in this process, each on its
own directory so neither touches the other's files. The same client scripts run
against both, each from its own client address (auth penalties are per address) to
127.0.0.1: LOGIN then LOGOUT, a wrong password, two failures then LOGOUT, AUTHENTICATE PLAIN
failing and succeeding, LOGOUT before login, a connection closed before any command, a login
from login_trusted_networks (`secured`), one where client and server address are the same
(`secured` too, as Dovecot decides). The imap-login lines (`Login: ...`,
`Disconnected: ... (...)`) and the session's `imap(user)<pid><session>: Disconnected: Logged
out in=... out=...` line must be equal once session ids, pids, seconds and byte counts are masked (byte counts differ because
the servers' untagged replies differ; the shape must not).
"""

from __future__ import annotations

import base64
import os
import re
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import free_port_base, require_tool
from tests.net.pop3_harness import (PASSWORD, USERS, RealDovecot, RoostImap, chown_mail,
                                    maildir, traversable_dir, write_setup)

MASKS = [(re.compile(r"session=<[^>]*>"), "session=<*>"), (re.compile(r"mpid=\d+"), "mpid=*"),
         (re.compile(r"\d+ secs"), "N secs"), (re.compile(r"\)<\d+><[^>]*>"), ")<*><*>"),
         (re.compile(r"\b(in|out)=\d+"), r"\1=*")]


def masked(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line


def plain(user: str, password: str) -> bytes:
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())


# name: (client address, lines sent one at a time, each after the answer). One address per
# script: a failure from an address delays that address's next failures (auth penalty).
SCRIPTS = {
    "login_logout": ("127.0.0.31", [b"a LOGIN alice pw", b"b LOGOUT"]),
    "wrong_password": ("127.0.0.33", [b"a LOGIN alice nope"]),
    "two_failures_then_logout": ("127.0.0.34", [b"a LOGIN alice nope", b"b LOGIN bob nope",
                                                b"c LOGOUT"]),
    "authenticate_fails": ("127.0.0.35", [b"a AUTHENTICATE PLAIN " + plain("carol", "bad")]),
    "authenticate_ok": ("127.0.0.36", [b"a AUTHENTICATE PLAIN " + plain("carol", PASSWORD),
                                       b"b LOGOUT"]),
    "logout_before_login": ("127.0.0.37", [b"a LOGOUT"]),
    "nothing": ("127.0.0.38", []),
    "trusted_login": ("127.0.0.32", [b"a LOGIN bob pw", b"b SELECT INBOX", b"c LOGOUT"]),
    "same_address": ("127.0.0.1", [b"a LOGIN carol nope", b"b LOGOUT"]),
}


def write_conf(directory: Path, port: int) -> Path:
    conf = write_setup(directory, ports={"imap": (port, 0)}, ssl="no", certificate=False,
                       disable_plaintext_auth="no", extra="login_trusted_networks = 127.0.0.32")
    for user in USERS:
        maildir(directory, user)
    chown_mail(directory)
    return conf


def run_script(port: int, source: str, commands: list[bytes]) -> bytes:
    """Each line after the previous answer's tagged reply; then close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    received = b""
    try:
        file = sock.makefile("rb")
        received += file.readline()
        for command in commands:
            sock.sendall(command + b"\r\n")
            tag = command.split(b" ", 1)[0]
            while True:
                line = file.readline()
                received += line
                if not line or line.startswith(tag + b" "):
                    break
            if not line:
                break
        time.sleep(0.05)
    except TimeoutError:
        received += b"<timeout>"
    finally:
        sock.close()
    return received


def wait_for(produce, seconds: float):
    deadline = time.monotonic() + seconds
    while True:
        value = produce()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def interesting(line: str) -> bool:
    return line.startswith(("Login:", "Disconnected:")) or ": Disconnected:" in line


@pytest.fixture(scope="module")
def logs():
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("this test runs Dovecot with a private base_dir and needs root",
                    pytrace=False)
    with traversable_dir("roost-login-lines-") as theirs_dir, \
            traversable_dir("roost-login-lines-") as ours_dir:
        base = free_port_base()
        dovecot = RealDovecot(write_conf(theirs_dir, base + 143), base + 143)
        roost = None
        try:
            roost = RoostImap(write_conf(ours_dir, base + 144))
            for name, (source, commands) in SCRIPTS.items():  # one at a time: in order
                transcripts = (run_script(dovecot.port, source, commands),
                               run_script(roost.port, source, commands))
                assert not any(t.endswith(b"<timeout>") for t in transcripts), name
            count = len(SCRIPTS)  # one login-process line per script, 3 logouts

            def theirs():
                found = [re.sub(r"^\w{3} \d\d \d\d:\d\d:\d\d ", "", line)
                         .replace("imap-login: Info: ", "").replace(": Info: ", ": ")
                         for line in dovecot.log_text().splitlines()
                         if " imap-login: Info: " in line or " imap(" in line]
                found = [line for line in found if interesting(line)]
                return found if len(found) >= count + 3 else None

            def ours():
                found = [line for line in (text for level, text in roost.log.lines
                                           if level == "info") if interesting(line)]
                return found if len(found) >= count + 3 else None

            yield wait_for(theirs, 10) or [], wait_for(ours, 10) or []
        finally:
            if roost is not None:
                roost.close()
            dovecot.close()


def _without_probe(lines: list[str]) -> list[str]:
    # RealDovecot's start-up port probe: a connection from 127.0.0.1 that says nothing.
    probe = [line for line in lines if line.startswith("Disconnected: Connection closed (")
             and "rip=127.0.0.1," in line and "user=<>" in line]
    return [line for line in lines if line not in probe[:1]]


def _compare(theirs: list[str], ours: list[str]) -> tuple[list[str], list[str]]:
    theirs = sorted(masked(line) for line in theirs)
    ours = sorted(masked(line) for line in ours)
    return [line for line in theirs if line not in ours], [line for line in ours
                                                           if line not in theirs]


def test_imap_login_lines_equal(logs):
    """Login:, and Disconnected: (...) of the login part: fail2ban reads these."""
    theirs, ours = logs
    theirs = [line for line in _without_probe(theirs) if not line.startswith("imap(")]
    assert len(theirs) == len(SCRIPTS)  # one line per connection (Login: or Disconnected:)
    assert _compare(theirs, [line for line in ours if not line.startswith("imap(")]) == ([], [])


def test_imap_logout_lines_equal(logs):
    """`imap(user)<pid><session>: Disconnected: Logged out ...` with imap_logout_format."""
    theirs, ours = logs
    theirs = [line for line in theirs if line.startswith("imap(")]
    assert len(theirs) == 3
    assert _compare(theirs, [line for line in ours if line.startswith("imap(")]) == ([], [])


def test_the_scripts_reach_every_line(logs):
    theirs, _ours = logs
    text = "\n".join(theirs)
    for needle in ("Login: user=<alice>, method=PLAIN", "Login: user=<carol>, method=PLAIN",
                   "(auth failed, 1 attempts", "(auth failed, 2 attempts",
                   "Aborted login by logging out (no auth attempts", "secured, session=",
                   "imap(alice)", "Disconnected: Logged out in=",
                   "rip=127.0.0.33, lip=127.0.0.1, session=",
                   "rip=127.0.0.1, lip=127.0.0.1, secured"):
        assert needle in text, needle
