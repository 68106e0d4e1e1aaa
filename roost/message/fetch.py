"""One `* n FETCH (...)` response from parsed FETCH items (RFC 3501 §6.4.5, §7.4.2; RFC 9051;
RFC 3516 BINARY; RFC 7162 MODSEQ).

Data items: FLAGS, INTERNALDATE, RFC822.SIZE, UID, MODSEQ, ENVELOPE, BODY, BODYSTRUCTURE,
RFC822 (= BODY[]), RFC822.HEADER (= BODY.PEEK[HEADER]), RFC822.TEXT (= BODY[TEXT]),
BODY[section]<partial>, BINARY[section]<partial>, BINARY.SIZE[section]. Order and forms are
Dovecot 2.3's (observed): UID first for UID FETCH; then the cheap items (INTERNALDATE,
RFC822.SIZE, FLAGS, UID, MODSEQ) in request order, then an implicit MODSEQ (CHANGEDSINCE /
CONDSTORE) and an implicit FLAGS (after \\Seen was set), then the rest in request order.
Section data is always a literal ({0} for a missing part), BINARY data a literal8 `~{n}`
when roost.message.binary says so, BINARY.SIZE of a missing part 0.

`header_only(items)` tells whether the message's header block is all rendering needs (ENVELOPE,
BODY[HEADER...], RFC822.HEADER and the cheap items), so the session can hand over the store's
cached header instead of reading the file. `sets_seen(items)` tells the session whether to set \\Seen first (RFC 3501 §6.4.5: BODY[...],
BINARY[...], RFC822, RFC822.TEXT without .PEEK). Raises FetchFailed for BINARY of an unknown
transfer encoding or of invalid encoded data: the session sends its partial response and
`NO [UNKNOWN-CTE]` (RFC 3516 §4.3) or `NO [PARSE]`, ending the command as Dovecot does.
Invariants: the message is loaded at most once and only when an item needs it.
Security: every value goes out through the quoting helpers or as a counted literal.
"""

from __future__ import annotations

from typing import Callable

from roost.message.analysis import Analysis, analyse
from roost.message.binary import InvalidData, binary_decoded, binary_size
from roost.message.header import Header, field_pattern, find_header_end, selected_fields
from roost.message.imapfmt import ENVELOPE_FIELDS, envelope
from roost.message.mime import Part, find_part, parse_message
from roost.message.sections import UnknownEncoding, extract, partial
from roost.proto.imap.commands import FetchItem, Section
from roost.proto.imap.quote import literal
from roost.proto.imap.response import fetch, internal_date, message_flags

CHEAP = ("INTERNALDATE", "RFC822.SIZE", "FLAGS", "UID", "MODSEQ")
_STREAM_ITEMS = {"RFC822", "RFC822.HEADER", "RFC822.TEXT", "BODY", "BINARY", "BINARY.SIZE"}


class FetchFailed(Exception):
    """An item could not be produced: BINARY of an unknown transfer encoding (`code`
    UNKNOWN-CTE, RFC 3516 §4.3) or of data its decoder rejects (`code` PARSE). Dovecot still
    sends the items before it, or `UID n` when there were none (observed): `response` is that
    `* n FETCH`; `text` is Dovecot's NO text."""

    def __init__(self, response: bytes | None, encoding: str, code: str = "UNKNOWN-CTE",
                 text: str = "Unknown Content-Transfer-Encoding."):
        super().__init__(encoding)
        self.response = response
        self.code = code
        self.text = text


def sets_seen(items: tuple[FetchItem, ...]) -> bool:
    return any((i.name in ("BODY", "BINARY") and i.section is not None and not i.peek)
               or i.name in ("RFC822", "RFC822.TEXT") for i in items)


_CHEAP_ITEMS = {"UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "MODSEQ", "ENVELOPE",
                "RFC822.HEADER"}
_HEADER_TEXTS = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"}


def header_only(items: tuple[FetchItem, ...]) -> bool:
    """Whether the header block (through its empty line) renders every item exactly."""
    return all(i.name in _CHEAP_ITEMS
               or (i.name == "BODY" and i.section is not None and not i.section.part
                   and i.section.text in _HEADER_TEXTS)
               for i in items)


_ENVELOPE_FIELDS = field_pattern(ENVELOPE_FIELDS)


def envelope_of(data: bytes) -> bytes:
    """The ENVELOPE of a message (or of its header block alone): the root header's fields as
    parse_message reads them, only those ENVELOPE uses, without the MIME walk."""
    header_end, _ = find_header_end(data, 0, len(data))
    return envelope(Header(selected_fields(data, 0, header_end, _ENVELOPE_FIELDS)))


def needs_message(items: tuple[FetchItem, ...]) -> bool:
    """Whether rendering reads the message (cached Analysis covers the structures)."""
    return any(i.name in _STREAM_ITEMS and (i.section is not None or i.name.startswith("RFC822"))
               for i in items)


class _Message:
    def __init__(self, load: Callable[[], bytes], analysis: Analysis | None):
        self._load = load
        self._data: bytes | None = None
        self._root: Part | None = None
        self.analysis = analysis
        self.known_envelope: bytes | None = None

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self._load()
        return self._data

    @property
    def root(self) -> Part:
        if self._root is None:
            self._root = parse_message(self.data)
        return self._root

    def envelope(self) -> bytes:
        if self.known_envelope is not None:
            return self.known_envelope
        if self.analysis is not None:
            return self.analysis.envelope
        return envelope(self.root.header)

    def structures(self) -> Analysis:
        if self.analysis is None:
            self.analysis = analyse(self.data)
        return self.analysis




def _section_value(message: _Message, item: FetchItem) -> bytes:
    section = item.section or Section()
    if item.name == "BINARY.SIZE":
        if section.text is not None:
            return b"%d" % len(extract(message.data, message.root, section) or b"")
        return b"%d" % binary_size(message.data, message.root, section.part)
    literal8 = False
    if item.name == "BINARY" and section.text is None:
        value, literal8 = binary_decoded(message.data, message.root, section.part)
    else:
        value = extract(message.data, message.root, section)
    value = value or b""
    if item.partial is not None:
        value = partial(value, item.partial[0], item.partial[1])
    return b"~" + literal(value) if literal8 else literal(value)


def render(seq: int, info, items: tuple[FetchItem, ...], load: Callable[[], bytes], *,
           analysis: Analysis | None = None, uid_command: bool = False, seen_set: bool = False,
           include_modseq: bool = False, recent: bool = False, keyword_order=None,
           known_envelope: bytes | None = None) -> bytes:
    """The FETCH response for one message; `info` already carries any \\Seen just set;
    `known_envelope`: the ENVELOPE computed earlier (roost.imap.envelopes)."""
    message = _Message(load, analysis)
    message.known_envelope = known_envelope

    def value(name: str, item: FetchItem | None = None) -> bytes:
        if name == "FLAGS":
            return message_flags(info.flags, info.keywords, recent, keyword_order)
        if name == "INTERNALDATE":
            return internal_date(info.internal_date)
        if name == "RFC822.SIZE":
            return b"%d" % info.size
        if name == "UID":
            return b"%d" % info.uid
        if name == "MODSEQ":
            return b"(%d)" % info.modseq
        if name == "ENVELOPE":
            return message.envelope()
        if name == "BODYSTRUCTURE":
            return message.structures().bodystructure
        if name == "BODY" and (item is None or item.section is None):
            return message.structures().body
        if name == "RFC822":
            return literal(extract(message.data, message.root, Section()) or b"")
        if name == "RFC822.HEADER":
            return literal(extract(message.data, message.root, Section((), "HEADER")) or b"")
        if name == "RFC822.TEXT":
            return literal(extract(message.data, message.root, Section((), "TEXT")) or b"")
        return _section_value(message, item)

    out: list[tuple[str, bytes]] = []
    seen_labels: set[str] = set()

    def add(label: str, name: str, item: FetchItem | None = None) -> None:
        if label not in seen_labels:
            seen_labels.add(label)
            out.append((label, value(name, item)))

    if uid_command:
        add("UID", "UID")
    for item in items:
        if item.name in CHEAP:
            add(item.label, item.name, item)
    if include_modseq:
        add("MODSEQ", "MODSEQ")
    if seen_set:
        add("FLAGS", "FLAGS")
    for item in items:
        if item.name not in CHEAP:
            try:
                add(item.label, item.name, item)
            except UnknownEncoding as error:
                raise FetchFailed(fetch(seq, out or [("UID", b"%d" % info.uid)]),
                                  str(error)) from None
            except InvalidData:
                raise FetchFailed(fetch(seq, out or [("UID", b"%d" % info.uid)]), "",
                                  "PARSE", "Invalid data in MIME part.") from None
    return fetch(seq, out)


def part_exists(root: Part, path: tuple[int, ...]) -> bool:
    return find_part(root, list(path)) is not None
