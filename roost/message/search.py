"""SEARCH evaluation against one message and its MessageInfo (RFC 3501 §6.4.4, RFC 9051 §6.4.4).

Matching follows Dovecot 2.3 without full-text indexes (observed): strings match as
case-insensitive substrings after Unicode case folding; header values are RFC 2047-decoded
and unfolded; address headers (From To Cc Bcc Sender Reply-To) are matched against the parsed
list written back as `Name <mailbox@host>` (so "MISSING_DOMAIN" and a comment-name match,
as in ENVELOPE); BODY searches the text/* leaves only, transfer encoding removed and
converted from their charset (not other leaves, preambles, epilogues or encapsulated
headers); TEXT adds every header block (message, MIME parts, encapsulated messages). SENT* use the Date header's own
calendar date (its time zone, RFC 3501 "disregarding time and timezone"); a missing or
unparsable Date counts as 1970-01-01. BEFORE/ON/SINCE use the internal date in the server's
local time zone. An empty HEADER value matches when the field exists (RFC 3501 §6.4.4).

Invariants: never raises on any message; the message is parsed at most once per MessageView
and only when a key needs it (searchkeys.needs_message). Security: decoded text is built
once per message and bounded by the message size.
"""

from __future__ import annotations

import datetime
import re
import time
import unicodedata
from dataclasses import dataclass, field

from roost.message.address import parse_address_list
from roost.message.encoded_words import decode_header
from roost.message.header import Header, unfold
from roost.message.mime import Part, parse_message
from roost.message.sections import UnknownEncoding, decode_body
from roost.message.sort import parse_date_header
from roost.proto.imap import searchkeys as k
from roost.proto.imap.seqset import SequenceSet

EPOCH_DATE = datetime.date(1970, 1, 1)


def fold(text: str) -> str:
    """The comparison form: NFKC, case folded (close to i;unicode-casemap, RFC 5051)."""
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass
class SearchContext:
    """What a key needs beyond the message: mailbox-wide numbers and session state."""
    largest_seq: int
    largest_uid: int
    recent_uids: frozenset[int] = frozenset()
    saved: frozenset[int] = frozenset()   # UIDs of the saved result ($, RFC 5182)
    now: float = field(default_factory=time.time)


class MessageView:
    """One message for evaluation: its info, sequence number and lazily parsed content."""

    def __init__(self, info, seq: int, data: bytes | None = None, root: Part | None = None,
                 loader=None):
        self.info = info
        self.seq = seq
        self._data = data
        self._loader = loader      # called at most once, on first access to the content
        self._root = root
        self._headers: dict[tuple[str, str], list[str]] = {}
        self._body: str | None = None
        self._all_headers: str | None = None

    @property
    def data(self) -> bytes | None:
        if self._data is None and self._loader is not None:
            self._data = self._loader()
            self._loader = None
        return self._data

    @property
    def root(self) -> Part:
        if self._root is None:
            self._root = parse_message(self.data or b"")
        return self._root

    @property
    def header(self) -> Header:
        return self.root.header

    def header_texts(self, name: str, kind: str = "raw") -> list[str]:
        """Comparison forms of every `name` field: "raw" (HEADER: one space after the colon
        dropped, unfolded, decoded), "compress" (SUBJECT: white space runs made one space,
        leading white space dropped), "address" (FROM TO CC BCC: the parsed list rewritten)."""
        key = (name.lower(), kind)
        if key not in self._headers:
            fields = self.header.all(name)
            if kind == "address":
                texts = [_addresses_text(f.value) for f in fields]
            else:
                texts = [decode_header(_after_colon(f.raw)) for f in fields]
                if kind == "compress":
                    texts = [_WSP_RUN.sub(" ", t).lstrip(" ") for t in texts]
            self._headers[key] = [fold(t) for t in texts]
        return self._headers[key]

    def body_text(self) -> str:
        if self._body is None:
            data = self.data or b""
            self._body = fold("\n".join(_leaf_texts(data, self.root)))
        return self._body

    def header_block_text(self) -> str:
        if self._all_headers is None:
            self._all_headers = fold("\n".join(_header_texts(self.data or b"", self.root)))
        return self._all_headers


_WSP_RUN = re.compile(r"[ \t\r\n]+")
_ATEXT = re.compile(r"\A[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\x80-\U0010ffff]+\Z")


def _after_colon(raw: bytes) -> bytes:
    """The value as Dovecot's HEADER search sees it: unfolded, one leading blank dropped."""
    value = unfold(raw)
    return value[1:] if value[:1] in (b" ", b"\t") else value


def _quoted_name(name: str) -> str:
    if _ATEXT.match(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _addresses_text(value: bytes) -> str:
    """The address list rewritten as Dovecot matches FROM/TO/CC/BCC (observed): each address
    as `<mailbox@host>` (route kept: `<@a,@b:mailbox@host>`) after its display name, which is
    quoted unless it is a single atom; groups as `name: ... ;`; `<>` as ENVELOPE's stand-in
    `<MISSING_MAILBOX@MISSING_DOMAIN>` (so FROM MISSING_DOMAIN finds it, Dovecot observed)."""
    out: list[str] = []
    for address in parse_address_list(value):
        if address.is_group_end:
            out.append(";")
            continue
        if address.is_group_start:
            out.append(decode_header(address.mailbox or b"") + ":")
            continue
        if address.empty:
            out.append("<MISSING_MAILBOX@MISSING_DOMAIN>")
            continue
        spec = decode_header(address.addr_spec)
        if address.route:
            spec = decode_header(address.route) + ":" + spec
        text = f"<{spec}>"
        if address.name:
            text = _quoted_name(decode_header(address.name)) + " " + text
        out.append(text)
    return ", ".join(out)


def _header_texts(data: bytes, part: Part):
    """Every header block of the tree: the message's, each part's MIME header, each
    encapsulated message's header (TEXT searches them all, Dovecot observed)."""
    yield decode_header(data[part.start:part.header_end])
    if part.message is not None:
        yield from _header_texts(data, part.message)
    for child in part.children:
        yield from _header_texts(data, child)


def _leaf_texts(data: bytes, part: Part):
    """Decoded text of every text/* leaf; other leaves, preambles and epilogues are not
    searched (Dovecot 2.3 without FTS, observed)."""
    if part.message is not None:
        yield from _leaf_texts(data, part.message)
        return
    if part.is_multipart:
        for child in part.children:
            yield from _leaf_texts(data, child)
        return
    if part.ctype.lower() != "text":
        return
    try:  # the transfer encoding applies even in a non-MIME message here (Dovecot, observed)
        body = decode_body(part, data[part.body_start:part.body_end], honour_mime=False)
    except UnknownEncoding:
        body = data[part.body_start:part.body_end]
    charset = next((v for n, v in part.params if n.lower() == "charset"), "us-ascii")
    yield _to_text(body, charset)


def _to_text(body: bytes, charset: str) -> str:
    charset = charset.strip().lower() or "us-ascii"
    if charset in ("us-ascii", "ascii"):
        charset = "utf-8"  # 8-bit text labelled us-ascii is almost always UTF-8
    try:
        return body.decode(charset, errors="replace")
    except (LookupError, ValueError):  # unknown charset, or a name Python refuses (NUL)
        return body.decode("utf-8", errors="replace")


def sent_date(header: Header) -> datetime.date:
    """The Date header's calendar date in its own zone; 1970-01-01 when absent or invalid."""
    parsed = parse_date_header(header)
    if not parsed:
        return EPOCH_DATE
    try:
        return datetime.date(parsed[0], parsed[1], parsed[2])
    except (ValueError, TypeError):
        return EPOCH_DATE


def internal_day(timestamp: float) -> datetime.date:
    local = time.localtime(timestamp)
    return datetime.date(local.tm_year, local.tm_mon, local.tm_mday)


def _compare_date(op: str, day: datetime.date, target: datetime.date) -> bool:
    if op == "before":
        return day < target
    if op == "on":
        return day == target
    return day >= target  # since: RFC 3501 "within or later than the specified date"


def _in_set(numbers: SequenceSet, value: int, largest: int, saved: frozenset[int], uid: int) -> bool:
    if numbers.saved:
        return uid in saved
    return numbers.contains(value, largest)


def matches(key, view: MessageView, ctx: SearchContext) -> bool:
    """Whether the message satisfies the search key (RFC 3501 §6.4.4)."""
    info = view.info
    if isinstance(key, k.And):  # cheap keys first: a flag can spare reading the message
        ordered = sorted(key.keys, key=k.needs_message)
        return all(matches(sub, view, ctx) for sub in ordered)
    if isinstance(key, k.All):
        return True
    if isinstance(key, k.Or):
        return matches(key.left, view, ctx) or matches(key.right, view, ctx)
    if isinstance(key, k.Not):
        return not matches(key.key, view, ctx)
    if isinstance(key, k.Flag):
        if key.flag.startswith("\\"):
            has = key.flag.lower() in {f.lower() for f in info.flags}
        else:
            has = key.flag.lower() in {w.lower() for w in info.keywords}
        return has == key.present
    if isinstance(key, k.Recent):
        return info.uid in ctx.recent_uids
    if isinstance(key, k.Size):
        return info.size > key.octets if key.larger else info.size < key.octets
    if isinstance(key, k.Sequence):
        if key.numbers.saved:
            return info.uid in ctx.saved
        return key.numbers.contains(view.seq, ctx.largest_seq)
    if isinstance(key, k.Uid):
        return _in_set(key.numbers, info.uid, ctx.largest_uid, ctx.saved, info.uid)
    if isinstance(key, k.ModSeq):
        return info.modseq >= key.value
    if isinstance(key, k.Within):
        age = ctx.now - info.internal_date
        return age > key.seconds if key.older else age <= key.seconds
    if isinstance(key, k.Date):
        day = sent_date(view.header) if key.sent else internal_day(info.internal_date)
        return _compare_date(key.op, day, key.date)
    if isinstance(key, k.Header):
        if not key.value:
            return bool(view.header.all(key.field))
        texts = view.header_texts(key.field, key.kind)
        needle = fold(key.value)
        return any(needle in text for text in texts)
    if isinstance(key, k.Body):
        return fold(key.value) in view.body_text()
    if isinstance(key, k.Text):
        needle = fold(key.value)
        return needle in view.header_block_text() or needle in view.body_text()
    return False


def search_messages(key, infos: list, load, ctx: SearchContext) -> list[int]:
    """Sequence numbers (1-based, in `infos` order) of the messages matching `key`.

    `load(info) -> bytes` returns a message (CRLF form); it is called only when a key that
    reads the content is actually evaluated (flags, sizes and dates are tried first), at most
    once per message, and the bytes are dropped as soon as that message is decided.
    """
    hits = []
    for seq, info in enumerate(infos, 1):
        view = MessageView(info, seq, loader=lambda info=info: load(info))
        if matches(key, view, ctx):
            hits.append(seq)
    return hits
