"""roost.message.binary against Dovecot 2.3.19: BINARY[n] / BINARY.SIZE of malformed encodings.

Each message below goes to Dovecot's imap (tests.message.dovecot_oracle) and through
roost.message.fetch.render; the `* n FETCH` data and the NO texts must be identical, except
where Dovecot drops the connection (`* BYE FETCH failed`, an encoding cut short by the end of
the part): roost then answers with its lenient decoding (the deliberate difference of
tests/interop/test_imap_dovecot_differential.py). Hypothesis checks that well-formed base64
and quoted-printable come back exact and that garbage never raises.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings, strategies as st

from roost.message.binary import InvalidData, binary_decoded, decode_base64_strict, decode_qp_strict
from roost.message.fetch import FetchFailed, render
from roost.message.mime import parse_message
from roost.message.sections import UnknownEncoding
from roost.proto.imap.parser import parse_command
from roost.proto.imap.states import State
from tests.message.dovecot_oracle import DovecotOracle, split_responses
from tests.message.test_dovecot_differential import Info

BASE64_BODIES = [b"", b"\r\n", b"line", b"line\r\n", b"onetwo\r\n", b"one\r\ntwo\r\n", b"QUJD",
                 b"QUI=", b"QUI=\r\n", b"QQ==", b"QQ==QUJD", b"QQ==\r\nQUJD\r\n", b"QUJ", b"Q",
                 b"QU=I", b"QUJD\r\n=\r\n", b"Q U J D", b"QU\tJD", b"QUJD!", b"QQ=", b"QQ=\r\n",
                 b"QUJD====", b"QQ== x", b"QUI=QUI=", b"Q=", b"Q===", b"QQ=x", b"QQ= =",
                 b"QUJD\x00", b"QU\x80JD", b"QUJD\rQUJD", b"--notaboundary\r\nx", b"=41=42\r\nend="]
QP_BODIES = [b"", b"\r\n", b"line", b"=41=42\r\nend=", b"=41=42\r\nend=\r\n", b"=4", b"=4\r\n",
             b"=ZZ", b"a=\r\nb", b"a= \r\nb", b"a =\r\nb", b"trail  \r\nx", b"trail\t\r\n",
             b"=3d=3D", b"a=", b"a= ", b"==41", b"=\r", b"x=0\r\n", b"a\rb", b"a=4g",
             b"a=\t\r\nb", b"a=  x\r\n", b"a  ", b"caf\xe9\r\n", b"a\x00b\r\n", b"= \r\n",
             b"=41 \r\n", b"a=\r\n\r\n"]


def _single(encoding: bytes, body: bytes) -> bytes:
    return b"Subject: s\r\nContent-Transfer-Encoding: " + encoding + b"\r\n\r\n" + body


def _multipart(*parts: bytes, head: bytes = b"") -> bytes:
    return (b"Content-Type: multipart/mixed; boundary=b\r\n" + head + b"\r\n"
            + b"".join(b"--b\r\n" + p + b"\r\n" for p in parts) + b"--b--\r\n")


STRUCTURED = [
    # a multipart with no part is a leaf: its base64 "body" is decoded and rejected
    _multipart(b"Content-Type: multipart/digest; boundary=x\r\nContent-Transfer-Encoding: "
               b"base64\r\n\r\n--x--\r\nepilogue", b"\r\nplain"),
    # a qp multipart whose parts decode: its header is relabelled
    _multipart(b"Content-Transfer-Encoding: base64\r\n\r\nQUJD", b"\r\nx",
               head=b"Content-Transfer-Encoding: quoted-printable\r\n"),
    # the same with nothing decoded: the stored bytes (Dovecot cuts them 10 octets short
    # for BINARY[], so only the parts are asked below)
    _multipart(b"\r\nQUJD", b"\r\nx", head=b"Content-Transfer-Encoding: quoted-printable\r\n"),
    # the first fault in reading order decides: cut short, then invalid / invalid, then cut
    _multipart(b"Content-Transfer-Encoding: base64\r\n\r\nQUJ", b"Content-Transfer-Encoding: "
               b"base64\r\n\r\nQUJD!"),
    _multipart(b"Content-Transfer-Encoding: base64\r\n\r\nQUJD!", b"Content-Transfer-Encoding: "
               b"base64\r\n\r\nQUJ"),
    # an unknown encoding anywhere wins over invalid data before it
    _multipart(b"Content-Transfer-Encoding: base64\r\n\r\nQUJD!", b"Content-Transfer-Encoding: "
               b"x-uue\r\n\r\nabc"),
    # NUL in a header or in an unencoded part makes the answer a literal8
    _multipart(b"X-Nul: a\x00b\r\n\r\nplain", b"\r\nother"),
    _multipart(b"Content-Transfer-Encoding: binary\r\n\r\na\x00b", b"\r\nother"),
    # message/rfc822 holding a base64 message; an empty base64 body
    _multipart(b"Content-Type: message/rfc822\r\n\r\nSubject: in\r\nContent-Transfer-Encoding: "
               b"base64\r\n\r\nQUJD", b"Content-Transfer-Encoding: base64\r\n\r\n"),
]
MESSAGES = ([_single(b"base64", body) for body in BASE64_BODIES]
            + [_single(b"quoted-printable", body) for body in QP_BODIES] + STRUCTURED)
_TIMING = re.compile(rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.")
WHOLE_MESSAGE_ITEMS = {len(BASE64_BODIES) + len(QP_BODIES) + index + 1
                       for index in (0, 1, 3, 4, 5, 6, 7, 8)}


def _commands() -> list[tuple[int, bytes]]:
    out = []
    for seq, data in enumerate(MESSAGES, 1):
        root = parse_message(data)
        count = len(root.children) if root.is_multipart else 1
        for number in range(1, count + 1):
            out.append((seq, b"BINARY.PEEK[%d]" % number))
        if root.is_multipart:
            out.append((seq, b"BINARY.PEEK[1.1]"))
            out.append((seq, b"BINARY.SIZE[2]"))
        if seq in WHOLE_MESSAGE_ITEMS:
            out += [(seq, b"BINARY.PEEK[]"), (seq, b"BINARY.SIZE[]")]
    return out


def _dovecot_answers(commands: list[tuple[int, bytes]]) -> list[tuple[bytes, bytes]]:
    """(untagged FETCH data, tagged status or b"BYE") per command, one session each: Dovecot
    runs pipelined FETCHes side by side, and a BYE ends the session."""
    root = Path(tempfile.mkdtemp(prefix="roost-binary-"))
    try:
        oracle = DovecotOracle(root, MESSAGES, [1700000000.0] * len(MESSAGES))
        answers = []
        for seq, item in commands:
            untagged, status = b"", None
            for response in split_responses(oracle.session([b"s SELECT INBOX",
                                                            b"c FETCH %d (%s)" % (seq, item)])):
                if response.startswith(b"* BYE FETCH failed"):
                    status = b"BYE"
                elif response.startswith(b"c "):
                    status = _TIMING.sub(b".", response[2:])
                elif re.match(rb"\* \d+ FETCH ", response):
                    untagged += response
            answers.append((untagged, status))
        return answers
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _roost_answer(seq: int, item: bytes) -> tuple[bytes, bytes]:
    data = MESSAGES[seq - 1]
    items = parse_command([b"t FETCH %d (%s)" % (seq, item)], [], State.SELECTED).items
    info = Info(seq, frozenset(), frozenset(), len(data), 0.0)
    try:
        return render(seq, info, items, lambda: data), b"OK Fetch completed.\r\n"
    except FetchFailed as failure:
        return failure.response or b"", b"NO [%s] %s\r\n" % (failure.code.encode(), failure.text.encode())


# BINARY.SIZE where Dovecot's figure is not the length of its own BINARY answer: a
# relabelled multipart header makes it drop that multipart's body from the sum. RFC 3516
# §4.2: BINARY.SIZE "Requests the decoded size of the section (i.e., the size to expect in
# response to the corresponding FETCH BINARY request)"; roost's is that size.
SIZE_DIFFERENCES = {(len(BASE64_BODIES) + len(QP_BODIES) + 2, b"BINARY.SIZE[]")}


def _size(data: bytes) -> int:
    return int(re.search(rb"BINARY\.SIZE\[[0-9.]*\] (\d+)\)", data).group(1))


def _literal_length(data: bytes) -> int:
    return int(re.search(rb"~?\{(\d+)\}\r\n", data).group(1))


def test_binary_answers_match_dovecot():
    commands = _commands()
    theirs = dict(zip(commands, _dovecot_answers(commands)))
    different, dropped = [], 0
    for (seq, item), (their_data, their_status) in theirs.items():
        our_data, our_status = _roost_answer(seq, item)
        if their_status == b"BYE":  # roost decodes what stops early leniently
            dropped += 1
            assert our_status.startswith(b"OK"), (seq, item, our_data, our_status)
        elif (seq, item) in SIZE_DIFFERENCES:
            whole = _literal_length(theirs[(seq, b"BINARY.PEEK[]")][0])
            assert _size(their_data) != whole == _size(our_data), (seq, their_data, our_data)
        elif (our_data, our_status) != (their_data, their_status):
            different.append((seq, item, their_data, their_status, our_data, our_status))
    assert different == []
    statuses = [status.split(b" ")[:2] for _, status in theirs.values()]
    assert dropped >= 10 and statuses.count([b"NO", b"[PARSE]"]) >= 15
    assert statuses.count([b"NO", b"[UNKNOWN-CTE]"]) >= 2 and statuses.count([b"OK", b"Fetch"]) >= 40


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 3))
def test_wellformed_encodings_come_back_exact(octets, line_end):
    newline = (b"\r\n", b"\n", b"\r\n", b"")[line_end]
    encoded = base64.encodebytes(octets).replace(b"\n", b"\r\n") + newline
    assert decode_base64_strict(encoded) == (octets, None)
    text = octets.replace(b"\r", b"").replace(b"\n", b"\r\n")
    qp = quopri.encodestring(text.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    assert decode_qp_strict(qp) == (text, None)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60))
def test_strict_decoders_never_raise(garbage):
    for decoder in (decode_base64_strict, decode_qp_strict):
        decoded, fault = decoder(garbage)
        assert fault in (None, "invalid", "truncated") and len(decoded) <= len(garbage)
    for encoding in (b"base64", b"quoted-printable", b"7bit", b"x-unknown"):
        data = _single(encoding, garbage)
        try:
            value, _ = binary_decoded(data, parse_message(data), (1,))
        except (InvalidData, UnknownEncoding):
            continue
        assert value is not None


def test_base64_fault_kinds():
    """The kinds the interop test relies on, independent of the oracle."""
    assert decode_base64_strict(b"QUJD!")[1] == "invalid"
    assert decode_base64_strict(b"QUJ")[1] == "truncated"
    assert decode_qp_strict(b"=ZZ")[1] == "invalid"
    assert decode_qp_strict(b"a=")[1] == "truncated"
    assert binascii.a2b_base64(b"QUJD") == decode_base64_strict(b"Q U\r\nJD")[0]
