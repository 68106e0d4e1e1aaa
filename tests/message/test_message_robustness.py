"""roost.message on hostile and huge input: never raises, keeps its invariants, stays fast."""

from __future__ import annotations

import base64
import os
import random
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.message.analysis import Analysis, analyse
from roost.message.binary import InvalidData, binary
from roost.message.fetch import FetchFailed, render
from roost.message.imapfmt import body_structure, envelope
from roost.message.mime import Part, find_part, parse_message
from roost.message.search import MessageView, SearchContext, matches
from roost.message.sections import UnknownEncoding, extract
from roost.message.sort import sort_data
from roost.message.subject import base_subject
from roost.proto.imap import searchkeys as k
from roost.proto.imap.commands import Section
from roost.proto.imap.parser import parse_command
from roost.proto.imap.states import State
from tests.message.corpus import messages
from tests.message.test_dovecot_differential import Info

_PIECES = st.sampled_from([
    b"\r\n", b"\n", b"--b\r\n", b"--b--\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Type: text/plain; charset=utf-8\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"From: =?utf-8?q?x=C3?= <a@b>, (c) d, g:;\r\n", b"Subject: Re: [x] Fwd: y (fwd)\r\n",
    b" folded\r\n", b"Date: 1 Jan 2020 00:00 +0000\r\n", b"=41=\r\n", b"QUJD\r\n", b"\x00\xff", b"((\"",
    b"References: <a@b> <c@d>\r\n", b"Message-ID: <a@b>\r\n", b"Content-Disposition: x; a*0*=''%41\r\n",
    b"Subject: =?\x00?q?x?= =?zlib?b?eA==?=\r\n", b"Content-Type: text/plain; charset=\"base64\"\r\n"])


def _check_tree(part: Part, data: bytes, low: int, high: int) -> None:
    assert low <= part.start <= part.header_end <= part.body_start <= part.body_end <= high
    for child in part.children:
        _check_tree(child, data, part.body_start, part.body_end)
    if part.message is not None:
        _check_tree(part.message, data, part.body_start, part.body_end)


def _paths(part: Part, prefix=()):
    kids = part.message.children if part.message is not None and part.message.is_multipart else part.children
    for index, _ in enumerate(kids[:3], 1):
        yield prefix + (index,)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.binary(max_size=12)), max_size=40))
def test_garbage_messages_never_raise(pieces):
    data = b"".join(pieces)
    root = parse_message(data)
    _check_tree(root, data, 0, len(data))
    assert body_structure(data, root).startswith(b"(")
    assert envelope(root.header).startswith(b"(")
    for path in [(), (1,), (2,), (1, 1), (2, 1, 1)]:
        for text in (None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS"):
            extract(data, root, Section(path, text, ("From",)))
        if find_part(root, list(path)) is not None:
            try:
                binary(data, root, path)
            except Exception as error:  # only the documented UNKNOWN-CTE / PARSE refusals
                assert isinstance(error, (UnknownEncoding, InvalidData)), error
    sort_data(root.header)
    view = MessageView(Info(1, frozenset(), frozenset(), len(data), 0.0), 1, data)
    ctx = SearchContext(1, 1)
    for key in (k.Text("x"), k.Body("ab"), k.Header("From", "a"), k.Header("Subject", ""),
                k.Date("on", True, __import__("datetime").date(2020, 1, 1))):
        matches(key, view, ctx)
    cached = analyse(data)
    assert Analysis.from_bytes(cached.to_bytes()) == cached


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_base_subject_terminates_and_is_idempotent(subject):
    base, _ = base_subject(subject)
    assert base_subject(base)[0] == base
    assert not base.startswith(" ") and not base.endswith(" ")


def test_corpus_analysis_round_trip():
    for _, data in messages():
        cached = analyse(data)
        assert Analysis.from_bytes(cached.to_bytes()) == cached
        assert cached.size == len(data)


def test_ten_megabyte_message_is_fast():
    blob = base64.encodebytes(os.urandom(7_500_000)).replace(b"\n", b"\r\n")
    data = (b"From: a@b\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
            b"--zz\r\nContent-Type: text/plain\r\n\r\nneedle here\r\n--zz\r\n"
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + blob + b"--zz--\r\n")
    assert len(data) > 10_000_000
    started = time.perf_counter()
    root = parse_message(data)
    structure = body_structure(data, root)
    cached = analyse(data)
    view = MessageView(Info(1, frozenset(), frozenset(), len(data), 0.0), 1, data, root)
    assert matches(k.Body("NEEDLE"), view, SearchContext(1, 1))
    elapsed = time.perf_counter() - started
    assert b"\"base64\" %d" % (len(blob) - 2) in structure and cached.bodystructure == structure
    assert elapsed < 1.0, elapsed
    assert len(binary(data, root, (2,))) == 7_500_000


def test_mutated_corpus_messages_never_raise():
    """Seeded byte-level mutations of the corpus (deletions, delimiter and header fragments,
    random bytes) through every analysis entry point, FETCH rendering included."""
    items = parse_command([b"t FETCH 1 (BODY.PEEK[] BODY.PEEK[1.MIME] BINARY.PEEK[1] BINARY.SIZE[2] "
                           b"ENVELOPE BODYSTRUCTURE BODY RFC822.HEADER BODY.PEEK[1.1.TEXT]<1.5>)"], [],
                          State.SELECTED).items
    fragments = [b"\r\n", b"--", b"\n", b":", b"(", b"\x00", b"=?", b"--b0\r\n", b"=?\x00?q?x?=",
                 b"Content-Type: multipart/mixed; boundary=b0\r\n"]
    corpus = [data for _, data in messages()]
    rng = random.Random(20261123)
    for index in range(300):
        data = bytearray(corpus[index % len(corpus)])
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(data) + 1)
            roll = rng.random()
            if roll < 0.4 and data:
                del data[pos:pos + rng.randint(1, 20)]
            elif roll < 0.8:
                data[pos:pos] = rng.choice(fragments)
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(5))
        data = bytes(data)
        analyse(data)
        try:
            render(1, Info(1, frozenset(), frozenset(), len(data), 0.0), items, lambda d=data: d)
        except FetchFailed:
            pass
        view = MessageView(Info(1, frozenset(), frozenset(), len(data), 0.0), 1, data)
        for key in (k.Text("x"), k.Body("y"), k.Header("From", "a", "address")):
            matches(key, view, SearchContext(1, 1))
