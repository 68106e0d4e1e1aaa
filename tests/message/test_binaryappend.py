"""roost.message.binaryappend: binary parts of a literal8 APPEND kept exact (RFC 3516 §4.4).

The property that matters: after conversion and the store's line-end normalisation (saved with
LF, served with CRLF), BINARY[part] gives back exactly the octets the client sent. Which parts
are converted, and the exact bytes, are compared with Dovecot in
tests/interop/test_imap_append_binary_dovecot.py.
"""

from __future__ import annotations

import base64

from hypothesis import given, settings, strategies as st

from roost.message.binaryappend import convert_binary_parts
from roost.message.mime import parse_message
from roost.message.binary import binary

HEAD = b"From: a@example.org\r\nMime-Version: 1.0\r\n"


def as_stored(data: bytes) -> bytes:
    """What the store gives back: CRLF and bare LF both become CRLF (mail_save_crlf=no)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_imaptest_append_binary_message():
    body = b"\x00-\xe4\n\r\n\n"
    sent = (b"From: user@domain.org\r\nMime-Version: 1.0\r\nContent-Type: application/octet-stream"
            b"\r\nContent-Transfer-Encoding: binary\r\n\r\n" + body)
    converted = convert_binary_parts(sent)
    assert converted.endswith(b"Content-Transfer-Encoding: base64\r\n\r\n"
                              + base64.b64encode(body))
    stored = as_stored(converted)
    assert binary(stored, parse_message(stored), (1,)) == body


def test_messages_without_binary_parts_are_untouched():
    for sent in (HEAD + b"\r\nplain\r\n",
                 HEAD + b"Content-Transfer-Encoding: 8bit\r\n\r\n\x00\xff\r\n",
                 HEAD + b"Content-Transfer-Encoding: binary (c)\r\n\r\nx\r\n",
                 HEAD + b"Content-Transfer-Encoding: binary\r\n",  # no empty line, no body
                 b"Subject: talks about\r\n\r\nContent-Transfer-Encoding: binary\r\n"):
        assert convert_binary_parts(sent) is sent


def test_long_bodies_wrap_at_76():
    body = bytes(range(256)) * 3
    converted = convert_binary_parts(HEAD + b"Content-Transfer-Encoding: binary\r\n\r\n" + body)
    lines = converted.split(b"\r\n\r\n", 1)[1].split(b"\r\n")
    assert all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76
    assert base64.b64decode(b"".join(lines)) == body


octets = st.binary(max_size=300)


@settings(max_examples=150, deadline=None)
@given(octets, octets, st.booleans())
def test_binary_parts_come_back_exact(first, second, nested):
    """Any octets (NUL, bare CR/LF, 8-bit, even text that looks like a boundary after
    encoding) in binary leaves of a multipart (or of a message/rfc822 inside one)."""
    leaf = b"Content-Type: application/x\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    parts = [leaf + first, b"Content-Type: text/plain\r\n\r\nplain text"]
    if nested:
        parts.append(b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\n"
                     b"Content-Transfer-Encoding: binary\r\n\r\n" + second)
    boundary = b"=_b0und4ry_"  # base64 output never contains "=_"
    if boundary in first or boundary in second:
        return
    sent = HEAD + b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"\r\n\r\n" + \
        b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts) + \
        b"--" + boundary + b"--\r\n"
    stored = as_stored(convert_binary_parts(sent))
    root = parse_message(stored)
    assert binary(stored, root, (1,)) == first
    assert binary(stored, root, (2,)) == b"plain text"
    if nested:
        assert binary(stored, root, (3, 1)) == second
