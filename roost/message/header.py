"""RFC 5322 header blocks: find where a header ends, split it into fields, unfold values.

RFC 5322 §2.2 (header fields: name ":" value), §2.2.3 (folding: CRLF followed by WSP),
§2.1 (the header ends at the first empty line). Works on bytes with offsets into one buffer
so a MIME walk never copies bodies; values stay raw bytes (8-bit headers are kept as sent,
as Dovecot does) and are decoded only where a caller needs text (SEARCH, SORT).

Invariants: `parse_header` never raises; a header with no empty line ends at `end` (the body
is then empty); a field name is the text before the first colon with trailing whitespace
removed (`To :` is `To`, as Dovecot reads it); lines without a colon are skipped.
Security: the number of fields kept is bounded by MAX_FIELDS so a hostile header cannot make
every later lookup quadratic.
"""

from __future__ import annotations

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


def parse_fields(data: bytes, start: int, end: int) -> list[HeaderField]:
    """The fields of the header block data[start:end] in order (RFC 5322 §2.2)."""
    fields: list[HeaderField] = []
    block = data[start:end]
    name: str | None = None
    parts: list[bytes] = []
    for line in block.split(b"\n"):
        if line.endswith(b"\r"):
            line = line[:-1]
        if line[:1] in (b" ", b"\t") and name is not None:
            parts.append(line)  # RFC 5322 §2.2.3: continuation of the previous field
            continue
        if name is not None and len(fields) < MAX_FIELDS:
            fields.append(HeaderField(name, b"\r\n".join(parts)))
        name = None
        colon = line.find(b":")
        if colon <= 0:
            continue
        name = line[:colon].rstrip(b" \t").decode("latin-1")
        parts = [line[colon + 1:]]
    if name is not None and len(fields) < MAX_FIELDS:
        fields.append(HeaderField(name, b"\r\n".join(parts)))
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

    def all(self, name: str) -> list[HeaderField]:
        index = self._index if self._index is not None else self._build()
        return index.get(name.lower(), [])

    def first(self, name: str) -> HeaderField | None:
        found = self.all(name)
        return found[0] if found else None

    def last(self, name: str) -> HeaderField | None:
        found = self.all(name)
        return found[-1] if found else None
