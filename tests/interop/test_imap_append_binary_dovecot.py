"""APPEND with a literal8 (RFC 3516 §4.4) against Debian's Dovecot 2.3.19: binary parts are
stored so that BINARY[] gives back the exact octets (imaptest's `append-binary` script), and the
stored message (BODY[], RFC822.SIZE, BODYSTRUCTURE, BINARY[1], BINARY.SIZE[1]) is byte-identical
to Dovecot's for every probe below.

Deliberate difference (asserted separately): a message that is only a header with
`Content-Transfer-Encoding: binary` and no empty line after it. Dovecot 2.3 drops that header
line and stores the rest; roost stores the message as sent — RFC 3516 §4.4 lets the server
re-encode binary content, not delete header fields, and there is no body to re-encode.
"""

from __future__ import annotations

import pytest

from tests.interop.imap_pair import USERS, both, imap_pair
from tests.interop.test_imap_dovecot_differential import login

HEAD = b"From: u@d.org\r\nMime-Version: 1.0\r\n"
PROBES = [
    # imaptest append-binary: NUL, 8-bit, bare LF and CRLF mixed
    b"From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\nMime-Version: 1.0\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"\x00-\xe4\n\r\n\n",
    HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nab\x00c\xe4\r\n",
    HEAD + b"Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nabc\xe4\r\n",
    HEAD + b"Content-Type: text/plain\r\n\r\nab\x00c\r\n",
    HEAD + b"Content-Type: multipart/mixed; boundary=X\r\n\r\npre\r\n--X\r\nContent-Type: "
    b"text/plain\r\n\r\nplain\r\n--X\r\nContent-Type: application/x\r\nContent-Transfer-"
    b"Encoding: binary\r\n\r\n" + bytes(range(256)) * 2 + b"\r\n--X--\r\nepi\r\n",
    b"From: u@d.org\r\nContent-Transfer-Encoding: binary\r\n\r\nab\x00\r\n",
    HEAD + b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Transfer-Encoding: "
    b"binary\r\n\r\nx\x00y\r\n",
    HEAD + b"Content-type: text/plain\r\ncontent-transfer-encoding:   BINARY  \r\n\r\nabc\r\n",
    HEAD + b"Content-Transfer-Encoding:\r\n binary\r\n\r\nabc\r\n",
    HEAD + b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Transfer-Encoding:"
    b" binary\r\n\r\n\r\n--X--\r\n",
    HEAD + b"Content-Type: multipart/mixed; boundary=X\r\nContent-Transfer-Encoding: binary\r\n"
    b"\r\n--X\r\nContent-Transfer-Encoding: binary\r\n\r\nq\r\n--X--\r\n",
    HEAD + b"Content-Transfer-Encoding: binary\r\n\r\n" + b"x" * 60 + b"\n" + b"y" * 5 + b"\n",
] + [HEAD + b"Content-Transfer-Encoding:" + value + b"\r\n\r\nabc\r\n"
     for value in (b" BINARY", b"binary", b" binary ", b"  binary", b" binary (c)",
                   b" binary\r\nContent-Transfer-Encoding: 7bit")] + [
    HEAD + b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: binary\r\n\r\nabc\r\n",
]
HEADER_ONLY = HEAD + b"Content-Transfer-Encoding: binary\r\n"
STORED = b"FETCH 1 (RFC822.SIZE BODY.PEEK[])"
READ = b"FETCH 1 (BODYSTRUCTURE BINARY.SIZE[1] BINARY.PEEK[1])"
# How the stored message reads back differs for two probes, for reasons that are not APPEND's:
# - FOLDED: Dovecot's BINARY does not unfold a folded Content-Transfer-Encoding and answers
#   NO; RFC 5322 §2.2.3 unfolding makes the value "binary", which roost returns as is.
# - TWO_FIELDS: with two Content-Transfer-Encoding fields Dovecot's BODYSTRUCTURE names the
#   first and its BINARY decodes by the last; RFC 2045 §6 allows one field, roost uses the
#   last for both.
FOLDED, TWO_FIELDS = 8, (17, 18)


@pytest.fixture(scope="module")
def servers():
    with imap_pair("roost-appendbin-") as pair:
        yield pair


def stored(port: int, user: str, number: int, message: bytes) -> tuple:
    """(APPEND status word, the stored form, how it reads back, that FETCH's status word)
    for `message` sent as a literal8."""
    client = login(port, user)
    try:
        box = b"binary%d" % number
        assert client.command(b"CREATE " + box)[1].startswith(b"OK")
        client.counter += 1
        tag = b"c%d" % client.counter
        client.sock.sendall(tag + b" APPEND " + box + b" ~{%d+}\r\n" % len(message) + message
                            + b"\r\n")
        status = client.file.readline()
        assert status.startswith(tag + b" "), status
        client.command(b"EXAMINE " + box)
        data, _status = client.command(STORED)
        read, fetched = client.command(READ)
        return status.split(b" ")[1], data, read, fetched.split(b" ")[0]
    finally:
        client.close()


def test_binary_append_stored_as_dovecot_stores_it(servers):
    for number, message in enumerate(PROBES):
        results = both(servers, lambda kind, port: stored(port, USERS[kind], number, message))
        if number == FOLDED or number in TWO_FIELDS:
            results = {kind: found[:2] for kind, found in results.items()}
        assert results["roost"] == results["dovecot"], (number, message, results)
    # imaptest append-binary: BINARY[1] is the exact octets, BODY[1] is not raw binary
    data = stored(servers.roost.port, USERS["roost"], 100, PROBES[0])[2]
    assert b"BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n\x00-\xe4\n\r\n\n)" in data
    assert b"Content-Transfer-Encoding: base64" in stored(servers.roost.port, USERS["roost"],
                                                          101, PROBES[0])[1]


def test_header_only_message_kept_as_sent(servers):
    results = both(servers, lambda kind, port: stored(port, USERS[kind], 200, HEADER_ONLY))
    assert HEADER_ONLY in results["roost"][1]
    assert b"Content-Transfer-Encoding" not in results["dovecot"][1]  # Dovecot drops it
