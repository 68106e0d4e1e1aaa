"""RFC 5322 header blocks: find where a header ends, split it into fields, unfold values.

RFC 5322 §2.2 (header fields: name ":" value), §2.2.3 (folding: CRLF followed by WSP),
§2.1 (the header ends at the first empty line). Works on bytes with offsets into one buffer
so a MIME walk never copies bodies; values stay raw bytes (8-bit headers are kept as sent,
as Dovecot does) and are decoded only where a caller needs text (SEARCH, SORT).

`selected_fields` gives the fields of a few names (ENVELOPE's) as parse_fields would, by one
regular expression instead of splitting every line.

Invariants: `parse_header` never raises; a header with no empty line ends at `end` (the body
is then empty); a field name is the text before the first colon with trailing whitespace
removed (`To :` is `To`, as Dovecot reads it); lines without a colon are skipped.
Security: the number of fields kept is bounded by MAX_FIELDS so a hostile header cannot make
every later lookup quadratic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_FIELDS = 10_000


@dataclass(frozen=True, slots=True)
class HeaderField:
    name: str        # as written (case preserved); compare with .lower()
    raw: bytes       # value after the colon, folding kept, final line ending removed

    @property
    def value(self) -> bytes:
        """The value unfolded (CR and LF removed, RFC 5322 §2.2.3), leading whitespace dropped."""
        return unfold(self.raw).lstrip(b" \t")


def unfold(raw: bytes) -> bytes:
    """RFC 5322 §2.2.3: unfolding removes the CRLF pairs, keeping the whitespace after them."""
    if b"\n" not in raw and b"\r" not in raw:
        return raw
    return raw.replace(b"\r\n", b"").replace(b"\n", b"").replace(b"\r", b"")


def find_header_end(data: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header block, start of the body) for the header beginning at `start`.

    The header block includes its last line ending; the empty separator line belongs to
    neither (RFC 5322 §2.1). No empty line: the header runs to `end` and the body is empty.
    """
    if start >= end:
        return end, end
    if data.startswith(b"\r\n", start) and start + 2 <= end:
        return start, start + 2
    if data.startswith(b"\n", start):
        return start, start + 1
    # the first line ending followed by an empty line (CRLF or bare LF)
    crlf = data.find(b"\n\r\n", start, end)
    bare = data.find(b"\n\n", start, crlf + 2 if crlf >= 0 else end)
    if bare >= 0:
        return bare + 1, bare + 2
    if crlf >= 0:
        return crlf + 1, crlf + 3
    return end, end


def parse_fields(data: bytes, start: int, end: int) -> list[HeaderField]:
    """The fields of the header block data[start:end] in order (RFC 5322 §2.2)."""
    fields: list[HeaderField] = []
    append = fields.append
    name: str | None = None
    parts: list[bytes] = []
    for line in data[start:end].split(b"\n"):
        if line[-1:] == b"\r":
            line = line[:-1]
        first = line[:1]
        if (first == b" " or first == b"\t") and name is not None:
            parts.append(line)  # RFC 5322 §2.2.3: continuation of the previous field
            continue
        if name is not None and len(fields) < MAX_FIELDS:
            append(HeaderField(name, parts[0] if len(parts) == 1 else b"\r\n".join(parts)))
        colon = line.find(b":")
        if colon <= 0:
            name = None
            continue
        name = line[:colon].rstrip(b" \t").decode("latin-1")
        parts = [line[colon + 1:]]
    if name is not None and len(fields) < MAX_FIELDS:
        append(HeaderField(name, parts[0] if len(parts) == 1 else b"\r\n".join(parts)))
    return fields


def field_pattern(names: tuple[str, ...]) -> re.Pattern[bytes]:
    """What `selected_fields` looks for after a line end: one of `names` (any case), white
    space, the colon, and the value through its continuation lines (RFC 5322 §2.2.3)."""
    alternatives = b"|".join(re.escape(name.encode("latin-1")) for name in names)
    return re.compile(rb"\n(" + alternatives + rb")[ \t]*:([^\n]*(?:\n[ \t][^\n]*)*)", re.I)


def selected_fields(data: bytes, start: int, end: int,
                    pattern: re.Pattern[bytes]) -> list[HeaderField]:
    """The fields of parse_fields(data, start, end) whose names `pattern` (field_pattern)
    matches, in order, without splitting the others: a line that starts with a name is a
    field start (never a continuation) and its value runs through the lines that start
    with white space after it."""
    if data.count(b"\n", start, end) >= MAX_FIELDS:  # parse_fields drops fields: let it
        return [field for field in parse_fields(data, start, end)
                if pattern.fullmatch(b"\n" + field.name.encode("latin-1") + b":")]
    fields = []
    for name, value in pattern.findall(b"\n" + data[start:end]):
        if b"\n" in value:
            raw = b"\r\n".join(line[:-1] if line[-1:] == b"\r" else line
                                for line in value.split(b"\n"))
        else:
            raw = value[:-1] if value[-1:] == b"\r" else value
        fields.append(HeaderField(name.decode("latin-1"), raw))
    return fields


class Header:
    """The fields of one header block with case-insensitive lookup."""

    __slots__ = ("fields", "_index")

    def __init__(self, fields: list[HeaderField]):
        self.fields = fields
        self._index: dict[str, list[HeaderField]] | None = None

    def _build(self) -> dict[str, list[HeaderField]]:
        index: dict[str, list[HeaderField]] = {}
        for field in self.fields:
            index.setdefault(field.name.lower(), []).append(field)
        self._index = index
        return index

    def by_name(self) -> dict[str, list[HeaderField]]:
        """Lower-cased name -> its fields in order (do not modify)."""
        return self._index if self._index is not None else self._build()

    def all(self, name: str) -> list[HeaderField]:
        index = self._index if self._index is not None else self._build()
        return index.get(name.lower(), [])

    def first(self, name: str) -> HeaderField | None:
        found = self.all(name)
        return found[0] if found else None

    def last(self, name: str) -> HeaderField | None:
        found = self.all(name)
        return found[-1] if found else None
