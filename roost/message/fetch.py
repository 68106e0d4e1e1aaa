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

`header_only(items, known)` tells whether the message's header block is all rendering needs
(ENVELOPE, BODY[HEADER...], RFC822.HEADER, the cheap items, and whatever `known` already
holds), so the session can hand over the store's cached header instead of reading the file.
`sets_seen(items)` tells the session whether to set \\Seen first (RFC 3501 §6.4.5: BODY[...],
BINARY[...], RFC822, RFC822.TEXT without .PEEK). Raises FetchFailed for BINARY of an unknown
transfer encoding or of invalid encoded data: the session sends its partial response and
`NO [UNKNOWN-CTE]` (RFC 3516 §4.3) or `NO [PARSE]`, ending the command as Dovecot does.
Invariants: the message is loaded at most once and only when an item needs it.
Security: every value goes out through the quoting helpers or as a counted literal.
"""

from __future__ import annotations

from typing import Callable

from roost.message.analysis import Analysis
from roost.message.binary import InvalidData, binary_decoded, binary_size
from roost.message.header import Header, field_pattern, find_header_end, selected_fields
from roost.message.imapfmt import ENVELOPE_FIELDS, body_structure, envelope
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


def header_only(items: tuple[FetchItem, ...], known=()) -> bool:
    """Whether the header block (through its empty line) renders every item exactly, the
    items named in `known` (render's `known` values) aside."""
    return all(i.name in _CHEAP_ITEMS or i.name in known and i.section is None
               or (i.name == "BODY" and i.section is not None and not i.section.part
                   and i.section.text in _HEADER_TEXTS)
               for i in items)


_ENVELOPE_FIELDS = field_pattern(ENVELOPE_FIELDS)


def envelope_of(data: bytes) -> bytes:
    """The ENVELOPE of a message (or of its header block alone): the root header's fields as
    parse_message reads them, only those ENVELOPE uses, without the MIME walk."""
    header_end, _ = find_header_end(data, 0, len(data))
    return envelope(Header(selected_fields(data, 0, header_end, _ENVELOPE_FIELDS)))


def remembered_items(items: tuple[FetchItem, ...]) -> tuple[str, ...]:
    """Which of ENVELOPE, BODY and BODYSTRUCTURE `items` ask for: the renderings that depend
    only on the message's content, so a caller may keep them per (mailbox, UIDVALIDITY, UID)
    (RFC 3501 §2.3.1.1) and hand them back through render's `known`."""
    names = {i.name for i in items if i.name != "BODY" or i.section is None}
    return tuple(name for name in ("ENVELOPE", "BODY", "BODYSTRUCTURE") if name in names)


def needs_message(items: tuple[FetchItem, ...]) -> bool:
    """Whether rendering reads the message (cached Analysis covers the structures)."""
    return any(i.name in _STREAM_ITEMS and (i.section is not None or i.name.startswith("RFC822"))
               for i in items)


class _Message:
    def __init__(self, load: Callable[[], bytes], analysis: Analysis | None,
                 known: dict | None = None):
        self._load = load
        self._data: bytes | None = None
        self._root: Part | None = None
        self._top: Part | None = None
        self.analysis = analysis
        # ENVELOPE / BODY / BODYSTRUCTURE bytes computed earlier (roost.imap.envelopes);
        # what this message computes is added for the caller to keep
        self.known = known if known is not None else {}

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

    def root_for(self, section: Section) -> Part:
        """The root Part, or for a section of the top-level message other than a part
        (BODY[], [HEADER], [HEADER.FIELDS...], [TEXT]) the root's offsets alone: a top-level
        header has no enclosing boundary, so find_header_end gives exactly the offsets the
        MIME walk would (roost.message.mime.entity with an empty stack), without the walk."""
        if self._root is not None or section.part or section.text == "MIME":
            return self.root
        if self._top is None:
            data = self.data
            header_end, body_start = find_header_end(data, 0, len(data))
            self._top = Part(0, header_end, body_start, len(data), _NO_FIELDS, "", "", [],
                             False)
        return self._top

    def _remember(self, name: str, compute: Callable[[], bytes]) -> bytes:
        value = self.known.get(name)
        if value is None:
            value = self.known[name] = compute()
        return value

    def envelope(self) -> bytes:
        if self.analysis is not None and "ENVELOPE" not in self.known:
            return self.analysis.envelope
        return self._remember("ENVELOPE", lambda: envelope(self.root.header))

    def body(self, extended: bool) -> bytes:
        """BODYSTRUCTURE (extended) or BODY, each computed only when asked for."""
        name = "BODYSTRUCTURE" if extended else "BODY"
        if self.analysis is not None and name not in self.known:
            return self.analysis.bodystructure if extended else self.analysis.body
        return self._remember(name, lambda: body_structure(self.data, self.root, extended))


_NO_FIELDS = Header([])  # root_for's stand-in has no fields (the sections it serves read none)
_WHOLE, _HEADER, _TEXT = Section(), Section((), "HEADER"), Section((), "TEXT")


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
        value = extract(message.data, message.root_for(section), section)
    value = value or b""
    if item.partial is not None:
        value = partial(value, item.partial[0], item.partial[1])
    return b"~" + literal(value) if literal8 else literal(value)


def render(seq: int, info, items: tuple[FetchItem, ...], load: Callable[[], bytes], *,
           analysis: Analysis | None = None, uid_command: bool = False, seen_set: bool = False,
           include_modseq: bool = False, recent: bool = False, keyword_order=None,
           known_envelope: bytes | None = None, known: dict | None = None) -> bytes:
    """The FETCH response for one message; `info` already carries any \\Seen just set;
    `known`: item name (ENVELOPE, BODY, BODYSTRUCTURE) -> its bytes computed earlier
    (roost.imap.envelopes); render adds the ones it computes (`known_envelope`: the same
    for ENVELOPE alone)."""
    if known_envelope is not None:
        known = {**(known or {}), "ENVELOPE": known_envelope}
    message = _Message(load, analysis, known)

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
            return message.body(True)
        if name == "BODY" and (item is None or item.section is None):
            return message.body(False)
        if name == "RFC822":
            return literal(extract(message.data, message.root_for(_WHOLE), _WHOLE) or b"")
        if name == "RFC822.HEADER":
            return literal(extract(message.data, message.root_for(_HEADER), _HEADER) or b"")
        if name == "RFC822.TEXT":
            return literal(extract(message.data, message.root_for(_TEXT), _TEXT) or b"")
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
