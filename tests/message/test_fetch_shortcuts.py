"""roost.message.fetch's shortcuts give the bytes the full path gives: sections of the
top-level message without the MIME walk (_Message.root_for), BODY and BODYSTRUCTURE computed
one at a time, and values handed in through `known` (roost.imap.envelopes) used without
loading the message, the computed ones handed back."""

from __future__ import annotations

import pytest

from roost.message import fetch as fetching
from roost.message.fetch import _Message, header_only, remembered_items, render
from roost.message.imapfmt import body_structure, envelope
from roost.message.mime import parse_message
from roost.message.sections import extract
from roost.proto.imap.commands import Section
from roost.proto.imap.parser import parse_command
from roost.proto.imap.states import State
from tests.message.corpus import messages
from tests.message.test_dovecot_differential import Info
from tests.message.test_random_differential import CORPUS

SECTIONS = [Section(), Section((), "TEXT"), Section((), "HEADER"),
            Section((), "HEADER.FIELDS", ("Subject", "From", "X-Missing")),
            Section((), "HEADER.FIELDS.NOT", ("Subject", "Content-Type"))]
ODD = [b"", b"\r\n", b"\r\nbody only\r\n", b"Subject: no body", b"Subject: x\r\n",
       b"Subject: x\n\nbare LF\n", b"Subject: x\r\n\r\n", b"Subject: a\r\n folded\r\n\r\nb\r\n",
       b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nSubject: in\r\n\r\nx\r\n--b--\r\n"]


def _all_messages() -> list[bytes]:
    return list(CORPUS) + [data for _name, data in messages()] + ODD


def _fetch(items: str):
    return parse_command([b"t FETCH 1 " + items.encode()], [], State.SELECTED).items


def test_top_level_sections_match_the_mime_walk():
    for data in _all_messages():
        root = parse_message(data)
        for section in SECTIONS:
            shortcut = _Message(lambda data=data: data, None).root_for(section)
            assert extract(data, shortcut, section) == extract(data, root, section), (data, section)


def test_structures_and_envelope_match_the_full_computation():
    info = Info(7, frozenset({"\\Seen"}), frozenset(), 0, 1700000000.0)
    items = _fetch("(ENVELOPE BODY BODYSTRUCTURE BODY.PEEK[TEXT] RFC822.HEADER)")
    for data in _all_messages():
        root = parse_message(data)
        expected = render(1, info, items, lambda data=data: data, known={
            "ENVELOPE": envelope(root.header), "BODY": body_structure(data, root, False),
            "BODYSTRUCTURE": body_structure(data, root)})
        assert render(1, info, items, lambda data=data: data) == expected


def test_known_values_spare_the_message_and_computed_ones_come_back():
    data = CORPUS[3]
    info = Info(9, frozenset(), frozenset(), len(data), 1700000000.0)

    def refuse() -> bytes:
        raise AssertionError("the message was loaded")

    known = {"BODYSTRUCTURE": b"(KNOWN)", "BODY": b"(B)", "ENVELOPE": b"(E)"}
    out = render(1, info, _fetch("(UID BODYSTRUCTURE BODY ENVELOPE RFC822.SIZE)"), refuse,
                 known=known)
    assert out == (b"* 1 FETCH (UID 9 RFC822.SIZE %d BODYSTRUCTURE (KNOWN) BODY (B) "
                   b"ENVELOPE (E))\r\n" % len(data))
    fresh: dict = {}
    render(1, info, _fetch("(BODYSTRUCTURE)"), lambda: data, known=fresh)
    assert fresh == {"BODYSTRUCTURE": body_structure(data, parse_message(data))}


@pytest.mark.parametrize("items, names, header", [
    ("(ENVELOPE BODYSTRUCTURE)", ("ENVELOPE", "BODYSTRUCTURE"), False),
    ("(BODY BODY.PEEK[HEADER])", ("BODY",), False),
    ("(BODY.PEEK[1] FLAGS)", (), False),
    ("(UID BODY.PEEK[HEADER.FIELDS (Subject)])", (), True),
])
def test_remembered_items_and_header_only(items, names, header):
    parsed = _fetch(items)
    assert remembered_items(parsed) == names
    assert header_only(parsed) is header
    # with those values known, the header block is enough unless a body part is wanted
    assert header_only(parsed, set(names)) is ("[1]" not in items)


def test_envelope_of_header_block_equals_full_envelope():
    for data in _all_messages():
        assert fetching.envelope_of(data) == envelope(parse_message(data).header)
