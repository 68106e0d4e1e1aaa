"""ENVELOPE's fast paths give byte-identical output to the general code they bypass.

roost.message.fetch.envelope_of reads only ENVELOPE's fields (header.selected_fields) instead of
the whole MIME walk, address lists of common shapes go through regular expressions
(address._simple_list) instead of the scanner, formatted address lists are remembered by value
and plain strings are quoted inline. The reference below is the code as it was before those
changes (parse_message's header, the scanner, quote.nstring, no memory), run on the
hand-written and random corpora, the benchmark's messages and hypothesis-made headers.
"""

from __future__ import annotations

import random
import time

from hypothesis import given, settings, strategies as st

from roost.message import imapfmt
from roost.message.address import _simple_list, parse_address_list, scan_address_list
from roost.message.fetch import _ENVELOPE_FIELDS, envelope_of
from roost.message.header import (MAX_FIELDS, Header, find_header_end, parse_fields,
                                  selected_fields)
from roost.message.mime import parse_message
from roost.proto.imap.quote import NIL, for_humans, nstring
from tests.message import corpus
from tests.message.test_random_differential import ADDRESSES, CORPUS


def bench_message(number: int) -> bytes:
    """The shape of bench/imap_fetch_bench.py's messages."""
    return (b"Return-Path: <sender%d@example.com>\r\nFrom: Sender %d <sender%d@example.com>\r\n"
            b"To: Alice <alice@example.org>, bob@example.org\r\n"
            b"Cc: \"Carol, C.\" <carol@example.net>\r\nSubject: =?utf-8?q?message_%d_caf=C3=A9?=\r\n"
            b"Date: Mon, 23 Nov 2026 10:00:%02d +0000\r\nMessage-ID: <m%d@example.com>\r\n"
            b"In-Reply-To: <m%d@example.com>\r\nMIME-Version: 1.0\r\n\r\nHello %d.\r\n"
            % (number, number, number, number, number % 60, number, number - 1, number))


def reference_header_end(data: bytes, start: int, end: int) -> tuple[int, int]:
    """find_header_end as it was: line by line."""
    if start >= end:
        return end, end
    if data.startswith(b"\r\n", start) and start + 2 <= end:
        return start, start + 2
    if data.startswith(b"\n", start):
        return start, start + 1
    pos = start
    while True:
        newline = data.find(b"\n", pos, end)
        if newline < 0:
            return end, end
        following = newline + 1
        if data.startswith(b"\r\n", following) and following + 2 <= end:
            return following, following + 2
        if data.startswith(b"\n", following) and following < end:
            return following, following + 1
        pos = following


def reference_envelope(data: bytes) -> bytes:
    header = parse_message(data).header

    def addresses(name: str) -> list:
        out = []
        for field in header.all(name):
            out.extend(scan_address_list(field.value))
        return out

    def address_list(found: list) -> bytes:
        if not found:
            return NIL
        return b"(" + b"".join(b"(" + b" ".join((for_humans(a.name), nstring(a.route),
                                                 nstring(a.mailbox), nstring(a.host))) + b")"
                               for a in found) + b")"

    def last(name: str) -> bytes | None:
        field = header.last(name)
        return None if field is None else field.value

    subject = header.last("Subject")
    sender_from = addresses("From")
    items = [nstring(last("Date")),
             for_humans(None if subject is None else subject.raw.lstrip(b" \t")),
             address_list(sender_from), address_list(addresses("Sender") or sender_from),
             address_list(addresses("Reply-To") or sender_from), address_list(addresses("To")),
             address_list(addresses("Cc")), address_list(addresses("Bcc")),
             nstring(last("In-Reply-To")), nstring(last("Message-ID"))]
    return b"(" + b" ".join(items) + b")"


def _messages() -> list[bytes]:
    out = [data for _, data in corpus.messages()] + list(CORPUS)
    out += [bench_message(n) for n in range(1, 200)]
    for data in list(out):  # encapsulated messages too, and each once more (remembered lists)
        root = parse_message(data)
        stack = [root]
        while stack:
            part = stack.pop()
            if part.message is not None:
                out.append(data[part.message.start:])
                stack.append(part.message)
            stack.extend(part.children)
    return out + out[:50]


def test_envelope_matches_reference_on_corpora():
    messages = _messages()
    assert len(messages) > 400
    for data in messages:
        assert envelope_of(data) == reference_envelope(data), data[:300]
        assert find_header_end(data, 0, len(data)) == reference_header_end(data, 0, len(data))


def test_remembered_lists_stay_bounded():
    before = dict(imapfmt._FORMATTED)
    try:
        for number in range(imapfmt._FORMATTED_ENTRIES + 10):
            envelope_of(b"To: u%d@example.com\r\n\r\n" % number)
        assert len(imapfmt._FORMATTED) <= imapfmt._FORMATTED_ENTRIES
        long_value = b"To: " + b", ".join(b"a%d@b" % n for n in range(200)) + b"\r\n\r\n"
        envelope_of(long_value)
        assert not any(len(key if isinstance(key, bytes) else b"".join(key))
                       > imapfmt._FORMATTED_VALUE_BYTES for key in imapfmt._FORMATTED)
    finally:
        imapfmt._FORMATTED.clear()
        imapfmt._FORMATTED.update(before)


_ADDRESS_PIECES = [a.encode() for a in ADDRESSES] + [
    b"a@b", b"x.y@z.w", b'"q, r" <s@t>', b"Name <n@m>", b" ", b",", b"<", b">", b"@", b".",
    b'"', b"\\", b"(c)", b":", b";", b"\t", b"\xc3\xa9", b"\x00", b"a", b'""', b"J. Smith"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_ADDRESS_PIECES), max_size=12))
def test_simple_address_lists_equal_scanner(pieces):
    value = b"".join(pieces)
    assert parse_address_list(value) == scan_address_list(value)


def test_simple_address_shapes_take_the_fast_path():
    for value in (b"a@b.c", b"Bob <bob@example.org>", b'"Last, First" <lf@example.net>, x@y',
                  b"Alice <alice@example.org>, bob@example.org", b'a "b"c <d@e>'):
        assert _simple_list(value) is not None and _simple_list(value) == scan_address_list(value)
    for value in (b"J. Smith <a@b>", b"a@b,", b"group: a@b;", b"(c) a@b", b"<@r:a@b>", b""):
        assert _simple_list(value) is None


def test_fast_address_path_is_linear_on_hostile_input():
    for value in (b"a" * 50_000, b"a " * 25_000, b'"a"' * 15_000, (b"a@b," * 12_000) + b"("):
        started = time.perf_counter()
        assert parse_address_list(value) == scan_address_list(value)
        assert time.perf_counter() - started < 1.0


_HEADER_PIECES = [b"To", b"to", b"From", b"CC", b"Subject", b"Date", b"Message-ID", b":", b" ",
                  b"\t", b"\r", b"\n", b"\r\n", b"x", b"\r\n ", b"\n\t", b"a@b", b"Date :",
                  b"\x00", b"\xc4", b"bcc", b"Reply-To", b"In-Reply-To", b"Sender"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_HEADER_PIECES), max_size=40))
def test_selected_fields_equal_parse_fields(pieces):
    data = b"".join(pieces)
    wanted = {name.lower() for name in imapfmt.ENVELOPE_FIELDS}
    assert selected_fields(data, 0, len(data), _ENVELOPE_FIELDS) == \
        [f for f in parse_fields(data, 0, len(data)) if f.name.lower() in wanted]
    assert find_header_end(data, 0, len(data)) == reference_header_end(data, 0, len(data))
    assert envelope_of(data) == reference_envelope(data)


def test_selected_fields_past_the_field_limit():
    data = b"".join(b"To: a%d@b\r\nX: y\r\n" % n for n in range(MAX_FIELDS // 2 + 5))
    assert selected_fields(data, 0, len(data), _ENVELOPE_FIELDS) == \
        [f for f in parse_fields(data, 0, len(data)) if f.name == "To"]


def test_random_headers_match_reference():
    rng = random.Random(20261124)
    for _ in range(300):
        data = b"".join(rng.choice(_HEADER_PIECES + _ADDRESS_PIECES) for _ in range(rng.randint(0, 60)))
        assert envelope_of(data) == reference_envelope(data), data
        assert Header(selected_fields(data, 0, len(data), _ENVELOPE_FIELDS)).all("to") == \
            Header(parse_fields(data, 0, len(data))).all("to")
