"""roost.net.smtpd over loopback sockets, in-process: real cleanup (queue files), stand-in policy.

STARTTLS (and the injection of plaintext behind it), AUTH through the Dovecot auth client,
limits (timeout, error limits, size, connection count), a client vanishing mid-DATA, BDAT
over a raw socket, PIPELINING, the smtps wrapper and submission `encrypt` listeners, and
Postfix's log lines.
"""

from __future__ import annotations

import asyncio
import base64
import os
import smtplib
import socket
import ssl
import time

import pytest

from roost.proto.smtp.reply import Reply
from tests.net.smtpd_harness import PermitPolicy, SmtpdServer
from tests.policy.postfix_oracle import FakeDovecotAuth


def read_reply(stream) -> str:
    lines = []
    while True:
        line = stream.readline()
        if not line:
            return "\n".join(lines + ["(closed)"])
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            return "\n".join(lines)


class Raw:
    def __init__(self, port: int, source: str = "127.0.0.1", wrap: bool = False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        if wrap:
            self.sock = _client_context().wrap_socket(self.sock, server_hostname="mail.example.test")
        self.stream = self.sock.makefile("rb")
        self.greeting = read_reply(self.stream)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        return read_reply(self.stream)

    def ask(self, line: str) -> str:
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self) -> None:
        self.sock = _client_context().wrap_socket(self.sock, server_hostname="mail.example.test")
        self.stream = self.sock.makefile("rb")

    def close(self) -> None:
        self.stream.close()
        self.sock.close()


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_for_line(server, text: str, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in line for line in server.lines()):
            break
        time.sleep(0.02)
    return server.lines()


def test_seed_transcript_and_log_lines(tmp_path):
    with SmtpdServer(tmp_path) as server:
        c = Raw(server.port)
        assert c.greeting == "220 mail.example.test ESMTP Postfix"
        ehlo = c.ask("ehlo localhost")
        assert ehlo.splitlines()[:3] == ["250-mail.example.test", "250-PIPELINING", "250-SIZE 10240000"]
        assert c.ask("mail from:root") == "250 2.1.0 Ok"
        assert c.ask("rcpt to:xxx.qq.com") == "250 2.1.5 Ok"
        assert c.ask("data") == "354 End data with <CR><LF>.<CR><LF>"
        c.send(b"welcome to unixmen mail server\r\n.\r\n")
        queued = c.reply()
        assert queued.startswith("250 2.0.0 Ok: queued as ")
        queue_id = queued.rsplit(" ", 1)[1]
        assert c.ask("quit") == "221 2.0.0 Bye"
        c.close()
        lines = wait_for_line(server, "disconnect from")
    assert "connect from unknown[127.0.0.1]" in lines
    assert f"{queue_id}: client=unknown[127.0.0.1]" in lines
    assert "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5" in lines
    assert [os.path.basename(p) for p in server.queue_files()] == [queue_id]


def test_smtplib_pipelined_messages(tmp_path):
    with SmtpdServer(tmp_path) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            for number in range(3):
                refused = client.sendmail("a@example.test", ["b@example.test", "c@example.test"],
                                          f"Subject: {number}\r\n\r\nbody\r\n".encode())
                assert refused == {}
        assert len(server.queue_files()) == 3


def test_pipelined_commands_in_one_packet(tmp_path):
    with SmtpdServer(tmp_path) as server:
        c = Raw(server.port)
        c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@example.test>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n")
        replies = [c.reply() for _ in range(5)]
        assert replies[1:] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
        c.send(b"x\r\n.\r\nQUIT\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
        assert c.reply() == "221 2.0.0 Bye"
        c.close()
        lines = wait_for_line(server, "disconnect from")
    # RFC 2920 §3.1: EHLO must end a group; Postfix logs what came after it, once per session
    assert ("improper command pipelining after EHLO from unknown[127.0.0.1]: MAIL FROM:<a@b>\\r\\n"
            "RCPT TO:<c@example.test>\\r\\nRCPT TO:<d@example.test>\\r\\nDATA\\r\\n") in lines
    assert sum("improper command pipelining" in line for line in lines) == 1


def test_client_vanishing_mid_data_leaves_no_queue_file(tmp_path):
    with SmtpdServer(tmp_path) as server:
        c = Raw(server.port)
        c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n")
        for _ in range(4):
            c.reply()
        c.send(b"Subject: partial\r\n\r\n" + b"x" * 200000)
        time.sleep(0.2)
        c.close()
        lines = wait_for_line(server, "disconnect from")
        # Postfix's wording: whole lines received so far ("Subject: partial" + the empty line)
        assert "lost connection after DATA (20 bytes) from unknown[127.0.0.1]" in lines
        assert "disconnect from unknown[127.0.0.1] ehlo=1 mail=1 rcpt=1 data=0/1 commands=3/4" in lines
        assert server.queue_files() == []


def test_bdat_over_raw_socket(tmp_path):
    with SmtpdServer(tmp_path) as server:
        c = Raw(server.port)
        assert "250 CHUNKING" in c.ask("EHLO x")
        c.send(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@example.test>\r\nBDAT 22\r\nSubject: chunk\r\n\r\nab\r\n")
        assert [c.reply() for _ in range(3)] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok: 22 bytes"]
        c.send(b"BDAT 5 LAST\r\nQUI\r\n")
        last = c.reply()
        assert last.startswith("250 2.0.0 Ok: 27 bytes queued as ")
        assert c.ask("NOOP") == "250 2.0.0 Ok"  # the chunk "QUI\r\n" was content, not a command
        c.close()
        assert len(server.queue_files()) == 1


def test_smuggling_over_the_socket_queues_one_message(tmp_path):
    with SmtpdServer(tmp_path) as server:
        c = Raw(server.port)
        c.send(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n")
        for _ in range(4):
            c.reply()
        c.send(b"Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n"
               b"forged\r\n.\r\n")
        assert c.reply().startswith("250 2.0.0 Ok: queued as")
        assert c.ask("QUIT") == "221 2.0.0 Bye"
        c.close()
        assert len(server.queue_files()) == 1


def test_timeout(tmp_path):
    with SmtpdServer(tmp_path, main_cf="smtpd_timeout = 1s\n") as server:
        c = Raw(server.port)
        c.ask("EHLO x")
        assert c.reply() == "421 4.4.2 mail.example.test Error: timeout exceeded"
        c.close()
        assert "timeout after EHLO from unknown[127.0.0.1]" in wait_for_line(server, "timeout after")


def test_error_limits(tmp_path):
    main_cf = "smtpd_hard_error_limit = 3\nsmtpd_soft_error_limit = 2\nsmtpd_error_sleep_time = 0.3s\n"
    with SmtpdServer(tmp_path, main_cf=main_cf) as server:
        c = Raw(server.port)
        started = time.monotonic()
        replies = [c.ask("FOO") for _ in range(3)]
        assert replies == ["500 5.5.2 Error: command not recognized"] * 3
        assert time.monotonic() - started >= 0.25  # the third error waited smtpd_error_sleep_time
        assert c.ask("NOOP") == "421 4.7.0 mail.example.test Error: too many errors"
        assert c.reply() == "(closed)"
        c.close()
        lines = wait_for_line(server, "disconnect from")
        assert "too many errors after UNKNOWN from unknown[127.0.0.1]" in lines
        assert "disconnect from unknown[127.0.0.1] unknown=0/3 commands=0/3" in lines


def test_message_size_limit(tmp_path):
    with SmtpdServer(tmp_path, main_cf="message_size_limit = 2000\n") as server:
        c = Raw(server.port)
        assert "250-SIZE 2000" in c.ask("EHLO x")
        assert c.ask("MAIL FROM:<a@b> SIZE=3000") == "552 5.3.4 Message size exceeds fixed limit"
        c.ask("MAIL FROM:<a@b>")
        c.ask("RCPT TO:<c@example.test>")
        c.ask("DATA")
        c.send(b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 100 + b".\r\n")
        assert c.reply() == "552 5.3.4 Message size exceeds fixed limit"
        assert c.ask("NOOP") == "250 2.0.0 Ok"
        c.close()
        assert server.queue_files() == []


def test_recipient_limit(tmp_path):
    with SmtpdServer(tmp_path, main_cf="smtpd_recipient_limit = 2\n") as server:
        c = Raw(server.port)
        c.ask("EHLO x")
        c.ask("MAIL FROM:<a@b>")
        replies = [c.ask(f"RCPT TO:<r{i}@example.test>") for i in range(3)]
        assert replies == ["250 2.1.5 Ok", "250 2.1.5 Ok", "452 4.5.3 Error: too many recipients"]
        c.close()


def test_connection_count_limit(tmp_path):
    main_cf = "smtpd_client_connection_count_limit = 1\nsmtpd_client_event_limit_exceptions =\n"
    with SmtpdServer(tmp_path, main_cf=main_cf) as server:
        first = Raw(server.port)
        assert first.greeting.startswith("220 ")
        second = Raw(server.port)
        assert second.greeting == "421 4.7.0 mail.example.test Error: too many connections from 127.0.0.1"
        second.close()
        first.close()


def test_policy_reject_is_the_reply(tmp_path):
    reject = Reply(554, "5.7.1", "<x@elsewhere.test>: Relay access denied")
    policy = PermitPolicy(rejects={"rcpt": reject})
    with SmtpdServer(tmp_path, policy_factory=lambda settings, log: policy) as server:
        c = Raw(server.port)
        c.ask("EHLO x")
        c.ask("MAIL FROM:<a@b>")
        assert c.ask("RCPT TO:<x@elsewhere.test>") == "554 5.7.1 <x@elsewhere.test>: Relay access denied"
        assert c.ask("DATA") == "554 5.5.1 Error: no valid recipients"
        c.close()
    stages = [stage for stage, _state in policy.states]
    assert stages[:3] == ["connect", "helo", "mail"]
    rcpt_state = dict(policy.states)["rcpt"]
    assert (rcpt_state.recipient, rcpt_state.sender, rcpt_state.helo_name, rcpt_state.protocol) == (
        "x@elsewhere.test", "a@b", "x", "ESMTP")


# --- STARTTLS ------------------------------------------------------------------------------

def test_starttls_and_smtplib(tmp_path):
    with SmtpdServer(tmp_path, tls=True) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            client.ehlo("client.test")
            assert client.has_extn("starttls")
            client.starttls(context=_client_context())
            client.ehlo("client.test")
            assert not client.has_extn("starttls")
            assert client.sendmail("a@b", ["c@example.test"], b"Subject: tls\r\n\r\nsecret\r\n") == {}
        files = server.queue_files()
        assert len(files) == 1


def test_starttls_injection_is_discarded(tmp_path):
    """CVE-2011-0411: commands sent with STARTTLS in the same packet must not run after the
    handshake. A naive server answers the injected MAIL after TLS starts."""
    with SmtpdServer(tmp_path, tls=True) as server:
        c = Raw(server.port)
        c.ask("EHLO x")
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<victim@example.test>\r\n")
        assert c.reply() == "220 2.0.0 Ready to start TLS"
        c.starttls()
        assert c.ask("RCPT TO:<c@example.test>") == "503 5.5.1 Error: need MAIL command"
        assert c.ask("EHLO x").startswith("250-mail.example.test")
        c.close()


def test_encrypt_level_requires_starttls(tmp_path):
    master_cf = ("127.0.0.1:{submission} inet n - n - - smtpd\n"
                 "  -o smtpd_tls_security_level=encrypt\n")
    with SmtpdServer(tmp_path, tls=True, master_cf=master_cf) as server:
        c = Raw(server.port)
        c.ask("EHLO x")
        assert c.ask("MAIL FROM:<a@b>") == "530 5.7.0 Must issue a STARTTLS command first"
        assert c.ask("STARTTLS") == "220 2.0.0 Ready to start TLS"
        c.starttls()
        c.ask("EHLO x")
        assert c.ask("MAIL FROM:<a@b>") == "250 2.1.0 Ok"
        c.close()


def test_smtps_wrapper_mode(tmp_path):
    master_cf = ("127.0.0.1:{smtps} inet n - n - - smtpd\n"
                 "  -o smtpd_tls_wrappermode=yes\n")
    with SmtpdServer(tmp_path, tls=True, master_cf=master_cf) as server:
        with smtplib.SMTP_SSL("127.0.0.1", server.port, timeout=10, context=_client_context()) as client:
            client.ehlo("x")
            assert not client.has_extn("starttls")
            assert client.sendmail("a@b", ["c@example.test"], b"Subject: smtps\r\n\r\nhi\r\n") == {}
        assert len(server.queue_files()) == 1


# --- AUTH ------------------------------------------------------------------------------------

def auth_config(tmp_path, extra: str = "") -> str:
    return (f"smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
            f"smtpd_sasl_path = {tmp_path}/auth\n" + extra)


def test_auth_plain_login_and_log(tmp_path):
    auth = FakeDovecotAuth(str(tmp_path / "auth"))
    try:
        with SmtpdServer(tmp_path, main_cf=auth_config(tmp_path)) as server:
            with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
                client.ehlo("x")
                assert client.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
                code, text = client.login("alice", "pw")
                assert (code, text) == (235, b"2.7.0 Authentication successful")
                client.sendmail("alice@example.test", ["c@example.test"], b"Subject: a\r\n\r\nb\r\n")
            c = Raw(server.port)
            c.ask("EHLO x")
            assert c.ask("AUTH LOGIN") == "334 VXNlcm5hbWU6"
            assert c.ask(base64.b64encode(b"bob").decode()).startswith("334 ")
            assert c.ask(base64.b64encode(b"wrong").decode()).startswith("535 5.7.8 Error: authentication failed:")
            assert c.ask("AUTH PLAIN") == "334 "
            assert c.ask("*") == "501 5.7.0 Authentication aborted"
            c.close()
            lines = wait_for_line(server, "SASL LOGIN authentication failed")
        assert any(line.endswith("client=unknown[127.0.0.1], sasl_method=PLAIN, sasl_username=alice")
                   for line in lines)
        assert any("unknown[127.0.0.1]: SASL LOGIN authentication failed" in line for line in lines)
    finally:
        auth.close()


def test_auth_only_after_tls_and_noplaintext(tmp_path):
    auth = FakeDovecotAuth(str(tmp_path / "auth"))
    try:
        extra = "smtpd_tls_auth_only = yes\n"
        with SmtpdServer(tmp_path, tls=True, main_cf=auth_config(tmp_path, extra)) as server:
            c = Raw(server.port)
            assert "AUTH" not in c.ask("EHLO x")
            assert c.ask("AUTH PLAIN AGFsaWNlAHB3") == "503 5.5.1 Error: authentication not enabled"
            c.ask("STARTTLS")
            c.starttls()
            assert "250-AUTH PLAIN LOGIN" in c.ask("EHLO x")
            assert c.ask("AUTH PLAIN AGFsaWNlAHB3") == "235 2.7.0 Authentication successful"
            c.close()
        extra = "smtpd_sasl_security_options = noanonymous, noplaintext\n"
        with SmtpdServer(tmp_path / "b", main_cf=auth_config(tmp_path, extra)) as server:
            c = Raw(server.port)
            assert "AUTH" not in c.ask("EHLO x")  # both mechanisms are plaintext
            c.close()
    finally:
        auth.close()


def test_auth_server_down_is_a_tempfail_not_a_crash(tmp_path):
    with SmtpdServer(tmp_path, main_cf=auth_config(tmp_path)) as server:
        c = Raw(server.port)
        assert "AUTH" not in c.ask("EHLO x")
        assert c.ask("AUTH PLAIN AGFsaWNlAHB3") == "503 5.5.1 Error: authentication not enabled"
        c.close()
        assert any("SASL: Connect to" in line for line in server.lines())


def test_garbage_never_kills_the_server(tmp_path):
    """Random bytes (and random command soup) on many connections: every reply is a
    well-formed SMTP reply, and the server still serves a normal session afterwards."""
    import random
    rng = random.Random(5321)
    words = [b"EHLO x", b"MAIL FROM:<a@b>", b"RCPT TO:<c@example.test>", b"DATA", b".", b"BDAT 3", b"BDAT x",
             b"AUTH PLAIN", b"*", b"STARTTLS", b"RSET", b"\xff\xfe", b"VRFY", b"QUIT", b"x" * 3000]
    with SmtpdServer(tmp_path, main_cf="smtpd_hard_error_limit = 1000\n") as server:
        for _ in range(30):
            c = Raw(server.port)
            if rng.random() < 0.5:
                blob = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400)))
            else:
                blob = b"\r\n".join(rng.choice(words) for _ in range(rng.randrange(1, 12))) + b"\r\n"
            c.send(blob)
            c.sock.shutdown(socket.SHUT_WR)
            while True:
                reply = c.reply()
                if reply.endswith("(closed)"):
                    break
                assert all(line[:3].isdigit() and line[3:4] in (" ", "-", "") for line in reply.splitlines())
            c.close()
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.sendmail("a@b", ["c@example.test"], b"Subject: after\r\n\r\nok\r\n") == {}
        assert not [line for level, line in server.log.lines if level == "error"]


def test_reject_footer_session_attributes(tmp_path):
    """smtpd_reject_footer's $client_port and $localtime (the oracle compares the rest with
    Postfix; these two differ between any two sessions)."""
    import re
    import time

    footer = "smtpd_reject_footer = port $client_port at $localtime\n"
    with SmtpdServer(tmp_path, main_cf=footer) as server:
        c = Raw(server.port)
        port = c.sock.getsockname()[1]
        before = time.time()
        answer = c.ask("BOGUS")
        c.close()
    first, second = answer.split("\n")
    assert first == "500-5.5.2 Error: command not recognized"
    match = re.fullmatch(rf"500 5\.5\.2 port {port} at (\w{{3}} [ \d]\d \d\d:\d\d:\d\d)", second)
    assert match, answer
    stamps = {time.strftime("%b %e %H:%M:%S", time.localtime(t)) for t in (before, before + 1, before + 2)}
    assert match.group(1) in stamps, answer


class SlowConnectPolicy(PermitPolicy):
    """Gives a client that talks at once the time for its bytes to arrive before the greeting."""

    async def check_connect(self, state):
        await asyncio.sleep(0.3)
        return self._result("connect", state)


@pytest.mark.parametrize("forbid", [False, True])
def test_talking_before_the_greeting(tmp_path, forbid):
    """Postfix 3.7 (observed; racy there, as it only peeks once before its greeting): `improper
    command pipelining after CONNECT from unknown[127.0.0.1]: EHLO x\\r\\n`; with
    smtpd_forbid_unauth_pipelining = yes `554 5.5.0 Error: SMTP protocol synchronization`
    instead of the greeting, then `disconnect from ... commands=0/0`."""
    main_cf = "smtpd_forbid_unauth_pipelining = yes\n" if forbid else ""
    with SmtpdServer(tmp_path, main_cf=main_cf, policy_factory=lambda settings, log: SlowConnectPolicy()) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
            conn.sendall(b"EHLO x\r\n")
            stream = conn.makefile("rb")
            first = read_reply(stream)
            second = read_reply(stream)
            if not forbid:
                conn.sendall(b"QUIT\r\n")
                read_reply(stream)
            stream.close()  # else the descriptor outlives the socket object
        lines = wait_for_line(server, "disconnect from")
    assert "improper command pipelining after CONNECT from unknown[127.0.0.1]: EHLO x\\r\\n" in lines, lines
    if forbid:
        assert (first, second) == ("554 5.5.0 Error: SMTP protocol synchronization", "(closed)")
        assert "disconnect from unknown[127.0.0.1] commands=0/0" in lines, lines
    else:
        assert first.startswith("220 ") and second.startswith("250-"), (first, second)
