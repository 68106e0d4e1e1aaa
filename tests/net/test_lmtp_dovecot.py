"""Differential: roost's LMTP answers and trace headers against Debian's Dovecot 2.3 lmtp.

One dovecot.conf (passwd-file users, Maildir, `quota_rule = *:storage=10K`) serves a real
Dovecot started by the test and roost's LMTP session built from the same file
(roost.net.lmtp.build_config). The same pipelined LMTP conversation goes to both; every reply
must match (session ids, dates and LHLO capability order normalised; roost also offers SIZE),
as must the trace headers of the delivered messages and the `msgid=...: saved mail to INBOX`
log texts. It also covers quota_grace (a delivery may end inside the 10% grace) and
lmtp_rcpt_check_quota (RCPT of a user already over quota gets 552). Dovecot runs as root with mail_uid nobody, so the test's directory is 0777.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from types import SimpleNamespace

import pytest

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.net.lmtp import build_config
from roost.net.server import ServiceContext
from tests.conftest import RecordingLog, free_port_base, require_tool
from tests.support.dovecot import PASSWD_FILE_DBS, PrivateDovecot, quota_plugin
from tests.net.test_lmtp import LogSetup, run_session

CONF = """\
protocols = lmtp
hostname = mx.dc.test
lmtp_rcpt_check_quota = yes
lmtp_save_to_detail_mailbox = yes
mail_location = maildir:{base}/{side}/%u
mail_uid = 65534
mail_gid = 65534
mail_plugins = $mail_plugins quota
""" + PASSWD_FILE_DBS + quota_plugin("*:storage=10K") + """\
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""

SMALL = b"Subject: small\r\nMessage-ID: <small@example.org>\r\n\r\nhello\r\n..dot\r\n"
# brings carol from ~0.3 KB to ~10.6 KB: over the 10K limit, inside the 10% grace
MID = b"Subject: mid\r\nMessage-ID: <mid@example.org>\r\n\r\n" + (b"m" * 98 + b"\r\n") * 102
BIG = b"Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n" + b"z" * 78 * 300 + b"\r\n"
CONVERSATION = (
    b"LHLO client.test\r\n"
    b"RCPT TO:<alice>\r\nDATA\r\nFROB\r\nMAIL FROM:<a@example.org> FROB=1\r\n"
    b"MAIL FROM:<x@example.org>\r\nMAIL FROM:<y@example.org>\r\nRCPT TO:<nosuch>\r\n"
    b"DATA\r\nRSET\r\n"
    b"MAIL FROM:<sender@example.org>\r\n"
    b"RCPT TO:<alice>\r\nRCPT TO:<nosuch@example.org>\r\nRCPT TO:<bob+tag>\r\n"
    b"RCPT TO:<carol+x@example.org>\r\nRCPT TO:<alice+../../etc>\r\nDATA\r\n" + SMALL + b".\r\n"
    b"MAIL FROM:<>\r\nRCPT TO:<bob>\r\nDATA\r\n" + SMALL + b".\r\n"
    b"MAIL FROM:<s@example.org>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n" + BIG + b".\r\n"
    b"MAIL FROM:<s@example.org>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n" + MID + b".\r\n"
    b"MAIL FROM:<s@example.org>\r\nRCPT TO:<carol@example.org>\r\n"
    b"RSET\r\nNOOP\r\nVRFY alice\r\nQUIT\r\n")


def normalise(text: str) -> str:
    text = re.sub(r"[A-Za-z0-9+/]{22}", "ID", text)
    text = re.sub(r"\w{3}, \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", "DATE", text)
    return re.sub(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]", "[STAMP]", text)


def reply_lines(data: bytes) -> tuple[list[str], set[str]]:
    """(non-LHLO reply lines normalised, LHLO capability words)."""
    lines = data.decode().split("\r\n")[:-1]
    capabilities = {line[4:] for line in lines if line.startswith("250-")}
    capabilities |= {lines[i][4:] for i in range(1, len(lines)) if lines[i - 1].startswith("250-")
                     and lines[i].startswith("250 ")}
    last_cap = max(i for i in range(len(lines)) if lines[i].startswith("250-")) + 1
    kept = [line for i, line in enumerate(lines) if not line.startswith("250-") and i != last_cap]
    return [normalise(line) for line in kept], capabilities


def headers_of(directory: str) -> list[str]:
    found = []
    for sub in ("new", "cur"):
        path = os.path.join(directory, sub)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else ():
            with open(os.path.join(path, name), "rb") as handle:
                data = handle.read()
            found.append(normalise(data[:data.index(b"Subject: ")].decode()))
    return sorted(found)


def ask_dovecot(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(CONVERSATION)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


@pytest.fixture
def setup():
    for tool in ("dovecot", "doveadm"):
        require_tool(tool)
    port = free_port_base() + 24
    dovecot = PrivateDovecot(CONF, prefix="roost-lmtp-dovecot-", side="dovecot", port=port)
    try:
        dovecot.write_users(("alice", "bob", "carol@example.org"))
        dovecot.make_dirs("dovecot", "roost")
        confs = {"dovecot": dovecot.conf, "roost": dovecot.write_conf("roost.conf", side="roost")}
        dovecot.start(port)
        yield dovecot.base, confs, port
    finally:
        dovecot.stop()


def test_roost_answers_like_dovecot_lmtp(setup):
    base, confs, port = setup
    dovecot_out = ask_dovecot(port)

    diags = Diagnostics()
    parsed = parse_dovecot_conf(confs["roost"], diags)
    logs = LogSetup()
    context = ServiceContext("lmtp", "lmtp", (), SimpleNamespace(dovecot=parsed), RecordingLog(),
                             logs)
    config = build_config(context)
    roost_out = asyncio.run(run_session(config, CONVERSATION))

    dovecot_lines, dovecot_caps = reply_lines(dovecot_out)
    roost_lines, roost_caps = reply_lines(roost_out)
    assert "552 5.2.2 <carol@example.org> Quota exceeded (mailbox for user is full)" in roost_lines
    assert roost_lines == dovecot_lines, "\n".join(f"{a!r:60} {b!r}" for a, b in zip(roost_lines, dovecot_lines))
    assert roost_caps - {"SIZE"} == dovecot_caps
    for user in ("alice", "bob", "carol@example.org"):
        assert headers_of(os.path.join(base, "roost", user)) == \
            headers_of(os.path.join(base, "dovecot", user)), user

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = open(os.path.join(base, "dovecot.log"), encoding="utf-8").read()
        if log.count("msgid=") >= 11:
            break
        time.sleep(0.1)
    def cut(text: str) -> str:  # the store's own wording of why a detail mailbox failed
        return re.sub(r"(save failed to open mailbox [^:]*): .*", r"\1", text)

    dovecot_texts = sorted((user, cut(text)) for user, text in re.findall(
        r"lmtp\(([^)]*)\)<\d+><[^>]+>: Info: (msgid=.*)", log))
    roost_texts = sorted((re.match(r"lmtp\((.*)\)<", service).group(1), cut(text))
                         for service, _level, text in logs.lines if text.startswith("msgid="))
    assert ("alice", "msgid=<small@example.org>: save failed to open mailbox ../../etc") \
        in roost_texts
    assert roost_texts == dovecot_texts
