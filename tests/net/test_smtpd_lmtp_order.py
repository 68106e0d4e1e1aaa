"""LMTP without LHLO: roost's LMTP machine answers as Debian's Dovecot 2.3 lmtp does.

RFC 2033 §4.1 says the client sends LHLO first, but Dovecot's lmtp (whose place roost's LMTP
server takes) accepts MAIL, RCPT and DATA without it and delivers; HELO and EHLO are unknown
commands there. The conversations go to a private Dovecot (tests.support.dovecot) and to
roost's LMTP session built from the same dovecot.conf (roost.net.lmtp.build_config); the
replies (session ids normalised) and the trace headers of the delivered messages must match.
"""

from __future__ import annotations

import asyncio
import os
import socket
from types import SimpleNamespace

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.net.lmtp import build_config
from roost.net.server import ServiceContext
from tests.conftest import RecordingLog
from tests.net.test_lmtp import LogSetup, run_session
from tests.net.test_lmtp_dovecot import headers_of, normalise, setup  # noqa: F401  (fixture)

CONVERSATIONS = (
    b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
    b"RCPT TO:<alice>\r\nDATA\r\nNOOP\r\nRSET\r\nVRFY alice\r\nHELO x\r\nEHLO x\r\nQUIT\r\n",
    b"MAIL FROM:<b@example.org>\r\nMAIL FROM:<c@example.org>\r\nRSET\r\nMAIL FROM:<>\r\n"
    b"RCPT TO:<bob>\r\nDATA\r\nSubject: y\r\n\r\nho\r\n.\r\nQUIT\r\n",
)


def ask_dovecot(port: int, conversation: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(conversation)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def replies(data: bytes) -> list[str]:
    return [normalise(line) for line in data.decode().split("\r\n")[1:-1]]  # greeting differs


def test_lmtp_without_lhlo_like_dovecot(setup):  # noqa: F811
    base, confs, port = setup
    dovecot = parse_dovecot_conf(confs["roost"], Diagnostics())
    context = ServiceContext("lmtp", "lmtp", (), SimpleNamespace(dovecot=dovecot), RecordingLog(), LogSetup())
    config = build_config(context)
    for conversation in CONVERSATIONS:
        expected = replies(ask_dovecot(port, conversation))
        got = replies(asyncio.run(run_session(config, conversation)))
        assert got == expected, (conversation, got, expected)
    assert expected[-2].startswith("250 2.0.0 <bob> ") and expected[-2].endswith(" Saved"), expected
    for user in ("alice", "bob"):
        assert headers_of(os.path.join(base, "roost", user)) == headers_of(os.path.join(base, "dovecot", user)), user
