"""roost's POP3 server answers byte for byte like Debian's Dovecot 2.3.19 pop3 on the same Maildir.

One dovecot.conf (tests/net/pop3_harness.py: passwd-file users, Maildirs, PLAIN and LOGIN,
auth_failure_delay 0, pop3_lock_session off so scripts may run side by side) is served by the
real Dovecot (as root: it drops to its own users) and by roost.net.pop3 in this process. Every
script is sent to both, each chunk after the answer to the previous one went quiet, and the
transcripts must be equal. Scripts change nothing durable (no QUIT after DELE), so they can run
at the same time in any order; scripts whose logins fail use their own client address, so
neither server's per-IP penalty delays another script. The login log lines and the session end
lines of both must match too (session ids, pids and seconds masked).
"""

from __future__ import annotations

import base64
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import free_port_base, require_tool
from tests.net.pop3_harness import (RealDovecot, RoostPop3Process, chown_mail, put_message,
                                    talk, talk_stls, traversable_dir, wait_for, write_setup)

# Scripts whose logins fail come from their own address and connect to that same address:
# the connection counts as secured (remote IP == local IP, Dovecot's rule) and neither
# server's per-IP penalty slows another script down.
OWN_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(21, 35))

MESSAGES = {
    "1000000001.M1P1.host": b"From: a@b\nSubject: one\n\nline1\n.dot line\nline3\n",
    "1000000002.M2P1.host": b"From: a@b\nSubject: two\n\nbody\n.\nafter a lone dot\nno end",
    "1000000003.M3P1.host": b"From: a@b\r\nSubject: three\r\n\r\ncrlf body\r\n..two dots\r\n",
    "1000000004.M4P1.host": b"From: a@b\nSubject: headers only\n",
    "1000000005.M5P1.host": b"Subject: five\n\n" + b"".join(b"line %d\n" % n for n in range(40)),
}


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def lines(*commands: bytes) -> list[bytes]:
    return [command + b"\r\n" for command in commands]


LOGIN = lines(b"USER alice", b"PASS pw")

# name -> (client address, chunks)
SCRIPTS = {
    "capa_secured": ("127.0.0.1", lines(b"CAPA", b"capa extra", b"QUIT")),
    "capa_insecure": ("127.0.0.2", lines(b"CAPA", b"AUTH", b"QUIT")),
    "insecure_refusals": ("127.0.0.3", lines(b"USER alice", b"PASS pw", b"AUTH PLAIN",
                                             b"AUTH PLAIN " + b64(b"\0alice\0pw"), b"QUIT")),
    "insecure_unsupported": ("127.0.0.4", lines(b"AUTH FOO", b"QUIT")),
    "auth_list_secured": ("127.0.0.1", lines(b"AUTH", b"QUIT")),
    "bad_commands": ("127.0.0.1", lines(b"NOOP", b"RSET", b"STAT")),
    "bad_reset_by_good": ("127.0.0.1", lines(b"FOO", b"BAR", b"CAPA", b"FOO", b"FOO",
                                             b"QUIT")),
    "pass_without_user": ("127.0.0.1", lines(b"PASS x", b"USER", b"QUIT")),
    "login_empty_line": ("127.0.0.1", lines(b"", b" CAPA", b"QUIT")),
    "stat_list": ("127.0.0.1", LOGIN + lines(b"STAT", b"LIST", b"LIST 2", b"LIST 0",
                                             b"LIST 9", b"LIST x", b"LIST 1 2", b"LIST 1x",
                                             b"LIST  1", b"LIST 1 ", b"LIST 01")),
    "numbers": ("127.0.0.1", LOGIN + lines(b"LIST 4294967295", b"LIST 4294967296",
                                           b"LIST 99999999999999999999999", b"LIST -1",
                                           b"LIST +1", b"RETR", b"DELE", b"UIDL x")),
    "uidl": ("127.0.0.1", LOGIN + lines(b"UIDL", b"UIDL 2", b"UIDL 9", b"uidl 5")),
    "top": ("127.0.0.1", LOGIN + lines(b"TOP 1 0", b"TOP 2 1", b"TOP 2 2", b"TOP 3 10",
                                       b"TOP 4 0", b"TOP 5 3", b"TOP 1", b"TOP 1 x",
                                       b"TOP 1 -1", b"TOP 1 2 3", b"TOP 9 1",
                                       b"TOP 1 99999999999999999999999")),
    "retr": ("127.0.0.1", LOGIN + lines(b"RETR 1", b"RETR 2", b"RETR 3", b"RETR 4",
                                        b"RETR 5", b"RETR 6", b"RETR x")),
    "dele_rset": ("127.0.0.1", LOGIN + lines(b"DELE 1", b"DELE 1", b"RETR 1", b"TOP 1 0",
                                             b"LIST 1", b"UIDL 1", b"STAT", b"LIST", b"UIDL",
                                             b"RSET", b"STAT", b"DELE 9")),
    "session_wrong_state": ("127.0.0.1", LOGIN + lines(b"USER alice", b"PASS pw",
                                                       b"AUTH PLAIN", b"STLS", b"CAPA",
                                                       b"LAST", b"APOP a b", b"NOOP x",
                                                       b"RSET x", b"STAT x")),
    "session_odd_lines": ("127.0.0.1", LOGIN + [b"NOOP\r\r\n", b"\r\n", b" NOOP\r\n",
                                                b"list\tx\r\n", b"NOOP\n", b"NO\x00OP\r\n"]),
    "quit_without_changes": ("127.0.0.1", LOGIN + lines(b"RETR 1", b"QUIT")),
    "pipelined": ("127.0.0.1", [b"USER alice\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL\r\nQUIT\r\n"]),
    "auth_plain_continued": ("127.0.0.1", lines(b"AUTH PLAIN", b64(b"\0alice\0pw"), b"STAT")),
    "auth_plain_initial": ("127.0.0.1", lines(b"AUTH PLAIN " + b64(b"\0alice\0pw"), b"STAT")),
    "auth_login": ("127.0.0.1", lines(b"AUTH LOGIN", b64(b"alice"), b64(b"pw"), b"STAT")),
    "auth_login_lower": ("127.0.0.1", lines(b"auth login " + b64(b"alice"), b64(b"pw"),
                                            b"LIST")),
    "auth_cancel": ("127.0.0.25", lines(b"AUTH PLAIN", b"*", b"AUTH LOGIN", b64(b"alice"),
                                       b"*", b"QUIT")),
    "auth_bad_base64": ("127.0.0.26", lines(b"AUTH PLAIN", b"!!!", b"QUIT")),
    "auth_bad_initial_base64": ("127.0.0.1", lines(b"AUTH PLAIN !!!", b"QUIT")),
    "wrong_password": ("127.0.0.27", lines(b"USER alice", b"PASS wrong", b"PASS x", b"QUIT")),
    "unknown_user": ("127.0.0.28", lines(b"USER nobody", b"PASS pw", b"QUIT")),
    "auth_plain_wrong": ("127.0.0.29", lines(b"AUTH PLAIN " + b64(b"\0alice\0nope"), b"QUIT")),
    "closed_after_failure": ("127.0.0.30", lines(b"USER alice", b"PASS wrong")),
    "closed_in_sasl": ("127.0.0.1", lines(b"AUTH PLAIN")),
    "login_line_too_long": ("127.0.0.1", [b"CAPA " + b"A" * 1100 + b"\r\n"]),
    "login_line_at_limit": ("127.0.0.1", [b"CAPA " + b"A" * 1027 + b"\r\n", b"QUIT\r\n"]),
    "session_line_too_long": ("127.0.0.1", LOGIN + [b"NOOP " + b"A" * 3000 + b"\r\n"]),
    "session_line_at_limit": ("127.0.0.1", LOGIN + [b"NOOP " + b"A" * 2041 + b"\r\n",
                                                    b"NOOP\r\n"]),
    "session_too_many_bad": ("127.0.0.1", LOGIN + lines(*[b"FOO"] * 22)),
}

MASKS = [(re.compile(r"session=<[^>]*>"), "session=<*>"), (re.compile(r"mpid=\d+"), "mpid=*"),
         (re.compile(r"\d+ secs"), "N secs"), (re.compile(r"\)<\d+><[^>]*>"), ")<*><*>")]


def masked(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line


@pytest.fixture(scope="module")
def servers():
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("the Dovecot POP3 differential test runs Dovecot with a private base_dir "
                    "and needs root (CI runs the suite as root)", pytrace=False)
    with traversable_dir() as directory:
        base = free_port_base()
        conf = write_setup(directory, pop3_port=base + 110, pop3s_port=base + 995, lock="no",
                           listen=("127.0.0.1", *OWN_ADDRESSES),
                           extra="mail_max_userip_connections = 100")
        for name, text in MESSAGES.items():
            put_message(directory, name, text)
        chown_mail(directory)
        dovecot = RealDovecot(conf, base + 110)
        roost = None
        try:
            roost = RoostPop3Process(conf, addresses=("127.0.0.1", *OWN_ADDRESSES))
            yield dovecot, roost
        finally:
            if roost is not None:
                roost.close()
            dovecot.close()


def _host(source: str) -> str:
    return source if source in OWN_ADDRESSES else "127.0.0.1"


def test_transcripts_equal(servers):
    dovecot, roost = servers
    with ThreadPoolExecutor(2 * len(SCRIPTS)) as pool:
        theirs = {name: pool.submit(talk, dovecot.port, chunks, source=source, idle=0.3,
                                    host=_host(source))
                  for name, (source, chunks) in SCRIPTS.items()}
        ours = {name: pool.submit(talk, roost.port, chunks, source=source, idle=0.3,
                                  host=_host(source))
                for name, (source, chunks) in SCRIPTS.items()}
        theirs = {name: future.result() for name, future in theirs.items()}
        ours = {name: future.result() for name, future in ours.items()}
    different = [name for name in SCRIPTS if ours[name] != theirs[name]]
    for name in different:
        print(f"--- {name}\nDovecot: {theirs[name]!r}\nroost:   {ours[name]!r}")
    assert different == [], dovecot.log_text()[-3000:]
    # The scripts reach every state: logged-in sessions, refusals and disconnects.
    assert b"+OK Logged in." in theirs["auth_login"]
    assert theirs["bad_commands"].endswith(b"<closed>")
    assert b"-ERR [AUTH] Authentication failed." in theirs["wrong_password"]

    def login_lines(lines):
        return sorted(masked(line) for line in lines
                      if line.startswith(("Login:", "Disconnected:")) or "Disconnected:" in line)

    expected = wait_for(lambda: login_lines(
        re.sub(r"^\w{3} \d\d \d\d:\d\d:\d\d (pop3-login|pop3)", r"\1", line)
        .replace("pop3-login: Info: ", "").replace(": Info: ", ": ")
        for line in dovecot.log_text().splitlines()
        if " pop3-login: Info: " in line or " pop3(" in line), 5)
    # Dovecot also logs the harness's port probe; roost saw no such connection.
    expected = [line for line in expected if "rip=127.0.0.1" not in line
                or "no auth attempts" not in line or "Connection closed" not in line]
    ours_log = [line for line in login_lines(roost.lines())
                if "rip=127.0.0.1" not in line or "no auth attempts" not in line
                or "Connection closed" not in line]
    missing = [line for line in expected if line not in ours_log]
    extra = [line for line in ours_log if line not in expected]
    assert (missing, extra) == ([], [])


def test_tls_transcripts_equal(servers):
    """STLS from an insecure address, and implicit TLS (pop3s): the same answers, and the
    login lines say TLS on both."""
    dovecot, roost = servers
    stls_before = [b"CAPA\r\n", b"USER alice\r\n"]
    after = lines(b"CAPA", b"STLS", b"USER alice", b"PASS pw", b"STAT", b"UIDL 1", b"QUIT")
    theirs = talk_stls(dovecot.port, stls_before, after, source="127.0.0.40", idle=0.2)
    ours = talk_stls(roost.port, stls_before, after, source="127.0.0.40", idle=0.2)
    assert ours == theirs
    assert b"<tls>" in theirs and b"+OK Logged in." in theirs
    implicit = lines(b"CAPA", b"STLS", b"AUTH PLAIN " + b64(b"\0alice\0pw"), b"LIST 2", b"QUIT")
    theirs = talk(dovecot_pop3s(dovecot), implicit, tls_port=True, source="127.0.0.41", idle=0.2)
    ours = talk(roost.tls_port, implicit, tls_port=True, source="127.0.0.41", idle=0.2)
    assert ours == theirs and b"+OK Logged in." in theirs

    def tls_logins(text_lines):
        return sorted(masked(line) for line in text_lines if line.startswith("Login:")
                      and "rip=127.0.0.4" in line)

    expected = wait_for(lambda: tls_logins(
        line.split(" pop3-login: Info: ", 1)[1] for line in dovecot.log_text().splitlines()
        if " pop3-login: Info: Login:" in line), 5)
    assert len(expected) == 2 and all(", TLS, " in line for line in expected)
    assert tls_logins(roost.lines()) == expected


def dovecot_pop3s(dovecot) -> int:
    return dovecot.port - 110 + 995


def test_other_uidl_formats_equal():
    """pop3_uidl_format with the file name, GUID, UID and UIDVALIDITY variables: the same
    UIDLs from both servers (Dovecot's Maildir GUID is the file's base name, as roost's)."""
    require_tool("dovecot")
    with traversable_dir() as directory:
        base = free_port_base()
        conf = write_setup(directory, pop3_port=base + 110, pop3s_port=base + 995, lock="no",
                           extra="pop3_uidl_format = %f|%g|%u|%v|%08Xv|%Lf")
        for name, text in list(MESSAGES.items())[:3]:
            put_message(directory, name, text)
        chown_mail(directory)
        dovecot = RealDovecot(conf, base + 110)
        roost = None
        try:
            script = LOGIN + lines(b"UIDL", b"UIDL 2", b"QUIT")
            theirs = talk(dovecot.port, script, idle=0.2)
            roost = RoostPop3Process(conf)
            ours = talk(roost.port, script, idle=0.2)
        finally:
            if roost is not None:
                roost.close()
            dovecot.close()
    assert b"1000000002.M2P1.host|1000000002.M2P1.host|2|" in theirs
    assert ours == theirs


def test_ssl_required_equal():
    """`ssl = required`: the refusals before TLS and their log line, as Dovecot."""
    require_tool("dovecot")
    with traversable_dir() as directory:
        base = free_port_base()
        conf = write_setup(directory, pop3_port=base + 110, pop3s_port=base + 995, lock="no",
                           extra="ssl = required")
        chown_mail(directory)
        dovecot = RealDovecot(conf, base + 110)
        roost = None
        try:
            script = lines(b"CAPA", b"USER alice", b"PASS pw", b"AUTH", b"AUTH PLAIN",
                           b"AUTH FOO", b"QUIT")
            theirs = talk(dovecot.port, script, idle=0.2, source="127.0.0.2")
            roost = RoostPop3Process(conf)
            ours = talk(roost.port, script, idle=0.2, source="127.0.0.2")
            expected = wait_for(lambda: [masked(line.split("pop3-login: Info: ", 1)[1])
                                         for line in dovecot.log_text().splitlines()
                                         if "rip=127.0.0.2" in line], 5)
            logged = wait_for(lambda: [masked(line) for line in roost.lines()
                                       if "rip=127.0.0.2" in line], 5)
        finally:
            if roost is not None:
                roost.close()
            dovecot.close()
    assert b"Authentication not allowed until SSL/TLS is enabled." in theirs
    assert ours == theirs
    assert logged == expected
