"""The MIME tree of a message as offsets into one buffer (RFC 2045/2046, RFC 3501 §6.4.5).

RFC 2046 §5.1.1 (boundary delimiters: "--" boundary at the start of a line; the CRLF before
it belongs to the delimiter; "--" boundary "--" closes; preamble and epilogue are ignored),
§5.1.5 (multipart/digest parts default to message/rfc822), RFC 2045 §5.2 (no Content-Type:
text/plain; charset=us-ascii), RFC 2046 §5.2.1 (message/rfc822 encapsulates a whole message).

The walk is a single forward pass like a streaming parser, so malformed input resolves the
way Dovecot 2.3 resolves it (observed): a boundary line is matched by prefix, innermost
boundary first, and an outer boundary also ends every inner part; a multipart whose boundary
never appears (or that has none) gets one empty text/plain child. Bodies are never copied:
every Part holds offsets, and line counts use bytes.count on the shared buffer.

Invariants: never raises; for every part start <= header_end <= body_start <= body_end <=
len(data); children are in order and inside their parent's body. Security: nesting deeper
than MAX_DEPTH is treated as an opaque leaf and MAX_PARTS bounds the tree, so a crafted
message cannot recurse without limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.message.header import Header, find_header_end, parse_fields
from roost.message.mimeparams import imap_params, parse_disposition, parse_type

MAX_DEPTH = 100
MAX_PARTS = 10_000


@dataclass(slots=True)
class Part:
    start: int                 # first byte of the part's MIME header
    header_end: int            # end of the header block (its last line ending included)
    body_start: int
    body_end: int
    header: Header
    ctype: str                 # as written, e.g. "TEXT" (compare lower-cased)
    subtype: str
    params: list[tuple[str, str]]   # BODYSTRUCTURE view (see mimeparams.imap_params)
    explicit_type: bool        # a usable Content-Type header was present
    children: list["Part"] = field(default_factory=list)
    message: "Part | None" = None   # message/rfc822: the encapsulated message's root part
    boundary_cut: bool = False      # a boundary line ended the header (no empty line, no body)
    mime: bool = True               # Content-* headers apply (see mime_field)
    stand_in: bool = False          # the empty child listed for a multipart that has none

    def mime_field(self, name: str) -> bytes | None:
        """The last `name` (a Content-* header) value, or None when absent or when this is a
        plain RFC 822 message: a message (top level or encapsulated) with neither
        MIME-Version nor Content-Type has its Content-* headers ignored (Dovecot, observed)."""
        if not self.mime:
            return None
        field_ = self.header.last(name)
        return None if field_ is None else field_.value

    @property
    def header_block_end(self) -> int:
        """End of what HEADER / MIME return: through the empty line, or the header proper
        when a boundary cut it off."""
        return self.header_end if self.boundary_cut else self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.ctype.lower() == "multipart"

    @property
    def is_message(self) -> bool:
        return self.message is not None

    @property
    def body_size(self) -> int:
        return self.body_end - self.body_start

    @property
    def header_size(self) -> int:
        return self.body_start - self.start

    def body_lines(self, data: bytes) -> int:
        return data.count(b"\n", self.body_start, self.body_end)


@dataclass(frozen=True, slots=True)
class _Stop:
    line: int       # start of the boundary line (or end of data)
    level: int      # index in the boundary stack, -1 = end of data
    close: bool     # the line was a close delimiter "--b--"


class _Walker:
    def __init__(self, data: bytes):
        self.data = data
        self.end = len(data)
        self.parts = 0
        self.cut_line = -1  # delimiter line whose preceding CRLF a cut-off header kept

    def boundary(self, pos: int, limit: int, stack: list[bytes]) -> _Stop:
        """The first line at or after line start `pos` that is a delimiter of `stack`."""
        if not stack:
            return _Stop(limit, -1, False)
        data = self.data
        candidate = pos if data.startswith(b"--", pos) else -1
        while True:
            if candidate < 0:
                found = data.find(b"\n--", pos, limit)
                if found < 0:
                    return _Stop(limit, -1, False)
                candidate = found + 1
            for level in range(len(stack) - 1, -1, -1):  # innermost boundary first
                marker = stack[level]
                if data.startswith(marker, candidate + 2):
                    close = data.startswith(b"--", candidate + 2 + len(marker))
                    return _Stop(candidate, level, close)
            pos = candidate + 1
            candidate = -1

    def _delimiter_after_empty_line(self, body_start: int, stack: list[bytes], ctype: str,
                                    params: list[tuple[str, str]]) -> _Stop:
        """An outer delimiter right after the empty line takes that line's CRLF (RFC 2046
        §5.1.1): the header then ends without it and the body is empty (Dovecot, observed).
        The part's own boundary, if it is a multipart, is tried first as a streaming parser
        would."""
        own = next((v for n, v in params if n.lower() == "boundary"), None) \
            if ctype.lower() == "multipart" else None
        candidates = [*stack, own.encode("latin-1")] if own else stack
        stop = self.boundary(body_start, body_start + 1, candidates)
        if stop.level < 0 or stop.level >= len(stack) or stop.line != body_start:
            return _Stop(body_start, -1, False)
        return stop

    def content_end(self, line: int, floor: int) -> int:
        """Where content before a delimiter line ends: the CRLF before it is the delimiter's."""
        if line >= self.end:
            return self.end
        end = line
        if end > floor and self.data[end - 1] == 0x0A:
            end -= 1
            if end > floor and self.data[end - 1] == 0x0D:
                end -= 1
        return max(end, floor)

    def line_after(self, pos: int) -> int:
        newline = self.data.find(b"\n", pos)
        return self.end if newline < 0 else newline + 1

    def entity(self, start: int, stack: list[bytes], digest: bool, depth: int,
               message: bool = False) -> tuple[Part, _Stop]:
        self.parts += 1
        header_end, body_start = find_header_end(self.data, start, self.end)
        cut = self.boundary(start, header_end, stack) if stack else _Stop(header_end, -1, False)
        if cut.level >= 0:  # a delimiter inside the header: the part ends there; its size
            # counts the line ending before the delimiter, HEADER/MIME do not (Dovecot)
            header_end, body_start = self.content_end(cut.line, start), cut.line
        header = Header(parse_fields(self.data, start, header_end))
        ctype, subtype, params, explicit = _content_type(header, digest)
        if cut.level < 0 and stack and header_end < body_start < self.end:
            cut = self._delimiter_after_empty_line(body_start, stack, ctype, params)
        part = Part(start, header_end, body_start, body_start, header, ctype, subtype, params, explicit)
        if message and not explicit and header.last("MIME-Version") is None:
            part.mime = False
        if cut.level >= 0:
            part.boundary_cut = True
            self.cut_line = cut.line
            if ctype.lower() == "message" and subtype.lower() == "rfc822":
                part.message = _empty_child(body_start)  # an empty encapsulated message
            return part, cut
        kind = ctype.lower()
        deep = depth >= MAX_DEPTH or self.parts >= MAX_PARTS
        if kind == "multipart" and not deep:
            stop, floor = self.multipart(part, stack, depth)
            # when the last part was a header cut off by this delimiter, the line ending
            # before it stays inside the enclosing parts (Dovecot, observed)
            part.body_end = stop.line if stop.line == self.cut_line and stop.level >= 0 \
                else self.content_end(stop.line, floor)
        elif kind == "message" and subtype.lower() == "rfc822" and not deep:
            inner, stop = self.entity(body_start, stack, False, depth + 1, message=True)
            part.message = inner
            part.body_end = inner.body_end
        else:
            stop = self.boundary(body_start, self.end, stack)
            part.body_end = self.content_end(stop.line, body_start)
        return part, stop

    def multipart(self, part: Part, stack: list[bytes], depth: int) -> tuple[_Stop, int]:
        """Parse the children; returns the stop and the floor of the multipart's end (the
        epilogue start after a close delimiter: the close line keeps its own line ending)."""
        boundary = next((v for n, v in part.params if n.lower() == "boundary"), None)
        digest = part.subtype.lower() == "digest"
        if not boundary:
            stop = self.boundary(part.body_start, self.end, stack)
            part.children.append(_stand_in(self.content_end(stop.line, part.body_start)))
            return stop, part.body_start
        level = len(stack)
        inner = [*stack, boundary.encode("latin-1")]
        stop = self.boundary(part.body_start, self.end, inner)
        while stop.level == level and not stop.close and self.parts < MAX_PARTS:
            child, stop = self.entity(self.line_after(stop.line), inner, digest, depth + 1)
            part.children.append(child)
        if not part.children:
            part.children.append(_stand_in(self.content_end(stop.line, part.body_start)))
        floor = part.body_start
        if stop.level == level:  # closed: the epilogue runs to the next outer delimiter
            floor = self.line_after(stop.line)
            stop = self.boundary(floor, self.end, stack)
        return stop, floor


def _empty_child(at: int) -> Part:
    return Part(at, at, at, at, Header([]), "text", "plain", [("charset", "us-ascii")], False)


def _stand_in(at: int) -> Part:
    """The empty text/plain child BODYSTRUCTURE shows for a multipart without parts
    (Dovecot, observed); BINARY treats that multipart as the leaf it really is."""
    part = _empty_child(at)
    part.stand_in = True
    return part


def _content_type(header: Header, digest: bool) -> tuple[str, str, list[tuple[str, str]], bool]:
    field_ = header.last("Content-Type")
    if field_ is None:
        if digest:  # RFC 2046 §5.1.5
            return "message", "rfc822", [], False
        return "text", "plain", [("charset", "us-ascii")], False  # RFC 2045 §5.2
    ctype, subtype, raw = parse_type(field_.value)
    params = imap_params(raw)
    if ctype.lower() == "text" and not any(n.lower() == "charset" for n, _ in params):
        params.append(("charset", "us-ascii"))  # RFC 2045 §5.2 default, as Dovecot lists it
    return ctype, subtype, params, True


def parse_message(data: bytes) -> Part:
    """The root Part of a whole message (header at offset 0)."""
    root, _ = _Walker(data).entity(0, [], False, 0, message=True)
    return root


def content_disposition(part: Part) -> tuple[str, list[tuple[str, str]]] | None:
    value = part.mime_field("Content-Disposition")
    if value is None:
        return None
    parsed = parse_disposition(value)
    if parsed is None:
        return None
    kind, raw = parsed
    return kind, imap_params(raw)


def find_part(root: Part, path: list[int]) -> Part | None:
    """The part for an IMAP section part number (RFC 3501 §6.4.5): [] is the whole message.

    Part 1 of a non-multipart is the part itself, once per message level (Dovecot, observed:
    BODY[1.1] of a text part in a multipart is that part, BODY[1.1.1] and BODY[1.1] of a
    single-part message are empty); N.M inside a message/rfc822 numbers the parts of the
    encapsulated message.
    """
    part = root
    message_level = True  # `part` is a message whose body the next number indexes
    self_used = False     # "1" naming a non-multipart itself: once per message level
    for number in path:
        if not message_level and part.message is not None:
            part = part.message
            self_used = False
        message_level = False
        if part.is_multipart:
            if not 1 <= number <= len(part.children):
                return None
            part = part.children[number - 1]
        elif number != 1 or self_used:
            return None
        else:
            self_used = True
    return part
