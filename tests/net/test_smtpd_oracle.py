"""roost's smtpd and Debian's Postfix 3.7 smtpd, same main.cf, same client bytes: same replies.

A private Postfix (tests.policy.postfix_oracle.PostfixOracle, root needed) and an in-process
roost smtpd are started once for the module; every case plays the same byte sequences
against both and compares the reply lines (queue ids masked). The cases are protocol cases
(syntax, sequence, parameters, BDAT, bare newlines, EHLO keyword lists), from a client in
mynetworks, so restrictions do not decide them (tests/policy compares those).
"""

from __future__ import annotations

import re
import socket

import pytest

from tests.conftest import free_port_base, port_free, require_tool
from tests.net.smtpd_harness import SmtpdServer
from tests.policy.postfix_oracle import PostfixOracle, Service

COMMON_MAIN_CF = """\
compatibility_level = 3.6
myhostname = mail.example.test
mydomain = example.test
mydestination = example.test
local_recipient_maps =
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
smtpd_client_connection_count_limit = 0
message_size_limit = 100000
"""

VARIANTS = {
    "default": {},
    "seed003": {"mydestination": "$myhostname, $mydomain, localhost.$mydomain, localhost",
                "myhostname": "mail.xxx.com", "mydomain": "xxx.com", "myorigin": "$myhostname",
                "relay_domains": "$mydestination, qq.com, 126,com",
                "smtputf8_enable": "no"},
    "novrfy": {"disable_vrfy_command": "yes", "smtpd_discard_ehlo_keywords": "dsn, etrn"},
    "reject_lf": {"smtpd_forbid_bare_newline": "reject", "smtpd_forbid_bare_newline_exclusions": ""},
    "normalize": {"smtpd_forbid_bare_newline": "normalize", "smtpd_forbid_bare_newline_exclusions": ""},
    "auth": {"smtpd_sasl_auth_enable": "yes"},
    # Postfix 3.7's smtpd dies (`fatal: no SASL authentication mechanisms`): no greeting
    "noplain": {"smtpd_sasl_auth_enable": "yes", "smtpd_sasl_security_options": "noanonymous, noplaintext"},
    "footer": {"smtpd_reject_footer": "\\c (client $client_address, server ${server_name}, $other)"},
    "nopipe": {"smtpd_forbid_unauth_pipelining": "yes"},
    "strict": {"strict_rfc821_envelopes": "yes", "smtpd_helo_required": "yes", "message_size_limit": "0"},
}

E = "EHLO client.test\r\n"
T = [E, "MAIL FROM:<a@b.test>\r\n", "RCPT TO:<u@example.test>\r\n"]

CASES = [
    ("default", [E, "HELP\r\n", "FOO\r\n", "\r\n", "NO\0OP\r\n", "HELO\r\n", "EHLO\r\n", "NOOP x\r\n"]),
    ("default", [E, "MAIL\r\n", "MAIL FROM:\r\n", "MAIL FROM:<a\"b@c>\r\n", "MAIL FROM:<a@b\r\n",
                 "MAIL FROM:<a b@c>\r\n", "MAIL FROM:<a@b>SIZE=1\r\n", "MAIL FROM:<a@b> SIZE=x\r\n",
                 "MAIL FROM:<a@b> SIZE=999999\r\n", "MAIL FROM:<a@b> BOGUS=1\r\n", "MAIL FROM:<a@b> BODY=X\r\n",
                 "MAIL FROM:<a@b> RET=X\r\n", "MAIL FROM:<a@b> ENVID=a+2\r\n", "MAIL FROM:<a@b> SMTPUTF8=x\r\n",
                 "MAIL FROM:<a@b> RET=HDRS RET=FULL\r\n", "RCPT TO:<u@example.test>\r\n", "DATA\r\n", "RSET x\r\n",
                 "VRFY\r\n", "ETRN\r\n", "ETRN example.test\r\n", "STARTTLS\r\n", "AUTH PLAIN\r\n", "QUIT x\r\n"]),
    ("default", [E, "MAIL FROM: <a@b> BODY=8bitmime SIZE=10 RET=hdrs ENVID=x+2By AUTH=<>\r\n",
                 "MAIL FROM:<a@b>\r\n", "RCPT\r\n", "RCPT TO:\r\n", "RCPT TO:<u@example.test> NOTIFY=FOO\r\n",
                 "RCPT TO:<u@example.test> NOTIFY=NEVER,SUCCESS\r\n", "RCPT TO:<u@example.test> ORCPT=bad\r\n",
                 "RCPT TO:<u@example.test> FOO=1\r\n", "DATA x\r\n", "DATA\r\n", "ETRN x\r\n",
                 "RCPT TO:<u@example.test> NOTIFY=success,delay ORCPT=rfc822;u+2Bx@example.test\r\n",
                 "DATA x\r\n", "DATA\r\n", "hello\r\n..dots\r\n.\r\n", "EHLO again\r\n", "RSET\r\n", "QUIT\r\n"]),
    ("default", [E, "MAIL FROM:<a@b>\r\n", "EHLO again\r\n", "RCPT TO:<u@example.test>\r\n", "hello\r\n",
                 "..dots\r\n", "NOOP\r\n"]),
    ("default", ["GET / HTTP/1.0\r\n", "NOOP\r\n"]),
    ("default", [E, "mail from:root\r\n", "rcpt to:u@example.test\r\n", "rcpt to:<@r1,@r2:u@example.test>\r\n",
                 "VRFY <u@example.test>\r\n", "QUIT\r\n"]),
    ("default", [*T, "BDAT 5\r\nab\r\nc", "BDAT 0 LAST\r\n", "BDAT 3 LAST\r\nxyz", "NOOP\r\n"]),
    ("default", [*T, "BDAT 3 LAST\r\nxyz", "MAIL FROM:<a@b>\r\n", "BDAT x\r\n"]),
    ("normalize", [*T, "DATA\r\n", "a\n.\nMAIL FROM:<e@f>\r\n.\r\n", "NOOP\n", "NOOP\rx\r\n", "QUIT\r\n"]),
    ("seed003", ["ehlo localhost\r\n", "mail from:root\r\n", "rcpt to:xxx.qq.com\r\n", "data\r\n",
                 "welcome to unixmen mail server\r\n.\r\n", "quit\r\n"]),
    ("novrfy", [E, "VRFY x\r\n", "MAIL FROM:<a@b> RET=FULL\r\n", "QUIT\r\n"]),
    ("reject_lf", [*T, "DATA\r\n", "a\nb\r\n.\r\n", "NOOP\r\n", "NOOP\n"]),
    ("auth", [E, "AUTH\r\n", "AUTH FOO\r\n", "AUTH PLAIN AGFsaWNlAHdyb25n\r\n", "AUTH PLAIN\r\n", "*\r\n",
              "AUTH LOGIN\r\n", "YWxpY2U=\r\n", "*\r\n", "MAIL FROM:<a@b>\r\n", "AUTH PLAIN AGFsaWNlAHB3\r\n",
              "RSET\r\n", "AUTH PLAIN AGFsaWNlAHB3\r\n", "AUTH PLAIN AGFsaWNlAHB3\r\n", "QUIT\r\n"]),
    ("footer", [E, "BOGUS\r\n", "RCPT TO:<a@b>\r\n", "MAIL FROM:<a@b>\r\n", "MAIL FROM:<a@b>\r\n", "QUIT\r\n"]),
    ("nopipe", ["EHLO x\r\nNOOP\r\n", "QUIT\r\n"]),
    ("nopipe", [E, "MAIL FROM:<a@b>\r\nRCPT TO:<u@example.test>\r\nDATA\r\nSubject: x\r\n", "QUIT\r\n"]),
    ("nopipe", ["HELO x\r\n", "MAIL FROM:<a@b>\r\nRCPT TO:<u@example.test>\r\n", "QUIT\r\n"]),
    ("nopipe", [E, "MAIL FROM:<a@b>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n", "hi\r\n.\r\n", "QUIT\r\n"]),
    ("default", ["HELO x\r\n", "MAIL FROM:<a@b>\r\nRCPT TO:<u@example.test>\r\n", "QUIT\r\n"]),
    ("noplain", [E, "AUTH PLAIN AGFsaWNlAHB3\r\n", "QUIT\r\n"]),
    ("auth", ["AUTH PLAIN AGFsaWNlAHB3\r\n", "HELO x\r\n", "AUTH LOGIN YWxpY2U=\r\n", "cHc=\r\n", "QUIT\r\n"]),
    ("strict", ["MAIL FROM:<a@b>\r\n", E, "MAIL FROM:a@b\r\n", "MAIL FROM:<a@b> SIZE=99999999\r\n", "QUIT\r\n"]),
]


def _read_reply(stream) -> str:
    lines = []
    while True:
        try:
            line = stream.readline()
        except ConnectionResetError:
            line = b""
        except TimeoutError:
            return "\n".join(lines + ["(timeout)"])
        if not line:
            return "\n".join(lines + ["(closed)"])
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            return "\n".join(lines)


def play(port: int, sends: list[str]) -> list[str]:
    replies = []
    with socket.create_connection(("127.0.0.1", port), timeout=8) as conn:
        stream = conn.makefile("rb")
        replies.append(_read_reply(stream).split(" ", 1)[0])
        for send in sends:
            data = send.encode("utf-8")
            try:
                conn.sendall(data)
            except OSError:
                replies.append("(closed)")
                continue
            reply = _read_reply(stream)  # every send is one command (or one chunk / message)
            replies.append(re.sub(r"queued as [0-9A-Za-z]+", "queued as ID", reply))
            if reply.endswith(("(closed)", "(timeout)")):
                break
    return replies


LIVE: dict = {}  # the running oracle and roost servers, for the log comparison


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    require_tool("postfix")
    base = free_port_base()
    ports = [port for port in range(base + 30, base + 100) if port_free(port)]
    services = [Service(name, ports[index], overrides) for index, (name, overrides) in enumerate(VARIANTS.items())]
    oracle = PostfixOracle(services, COMMON_MAIN_CF)
    oracle.start()
    roost_servers = {}
    try:
        for service in services:
            overrides = "".join(f"  -o {{ {k} = {v} }}\n" if v else f"  -o {k}=\n"
                                for k, v in service.overrides.items())
            escaped = overrides.replace("{", "{{").replace("}", "}}")  # the harness formats {smtp}
            master_cf = "127.0.0.1:{smtp} inet n - n - - smtpd\n" + escaped
            # roost's smtpd talks to the oracle's Dovecot-protocol auth stand-in too
            main_cf = COMMON_MAIN_CF + f"smtpd_sasl_type = dovecot\nsmtpd_sasl_path = {oracle.base}/auth\n"
            server = SmtpdServer(tmp_path_factory.mktemp(service.name), main_cf=main_cf, master_cf=master_cf)
            roost_servers[service.name] = server.__enter__()
        LIVE.update(oracle=oracle, roost=roost_servers)
        yield {s.name: (s.port, roost_servers[s.name].port) for s in services}
    finally:
        for server in roost_servers.values():
            server.__exit__(None, None, None)
        oracle.stop()


@pytest.mark.parametrize("variant, sends", CASES, ids=[f"{v}-{i}" for i, (v, _s) in enumerate(CASES)])
def test_same_replies_as_postfix(peers, variant, sends):
    postfix_port, roost_port = peers[variant]
    expected = play(postfix_port, sends)
    got = play(roost_port, sends)
    differences = [(sends[i - 1] if i else "(greeting)", e, g)
                   for i, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert differences == [] and len(got) == len(expected)


def test_forbid_unauth_pipelining_log_lines_like_postfix(peers):
    """smtpd_forbid_unauth_pipelining = yes: same `improper command pipelining` and
    `disconnect` lines as Postfix (the refused command counts as failed)."""
    import time

    postfix_port, roost_port = peers["nopipe"]
    sends = ["HELO x\r\n", "MAIL FROM:<a@b>\r\nRCPT TO:<pipelog@example.test>\r\n"]  # unique in the log
    server = LIVE["roost"]["nopipe"]
    before = len(server.lines())
    wanted = ("improper command pipelining", "disconnect from")

    def postfix_lines():
        return [re.sub(r"^.*? pf/nopipe/smtpd\[\d+\]: ", "", line) for line in LIVE["oracle"].read_log().splitlines()
                if " pf/nopipe/smtpd[" in line and any(w in line for w in wanted)]
    play(postfix_port, sends)
    play(roost_port, sends)
    deadline = time.monotonic() + 5
    def ours(lines):
        marks = [i for i, line in enumerate(lines) if "pipelog@" in line]
        return lines[marks[0]:marks[0] + 2] if marks else []
    while len(expected := ours(postfix_lines())) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    while time.monotonic() < deadline and not any("disconnect from" in t for t in server.lines()[before:]):
        time.sleep(0.05)
    got = [t for t in server.lines()[before:] if any(w in t for w in wanted)]
    assert len(expected) == 2 and got == expected, (got, expected)

