"""Generic IMAP command arguments: atoms, quoted strings, literals, parenthesised lists.

RFC 3501 §4 (data formats), §9 (atom, quoted, literal), RFC 3516 §4.1 (literal8 `~{n}`),
RFC 7888 (`{n+}` non-synchronising literals). Like Dovecot, a command line is first split
into generic arguments and each command then interprets them (roost.proto.imap.parser); an
atom may contain `[...]` with spaces and parentheses inside (BODY[HEADER.FIELDS (A B)]) and
`\\`, `*`, `%`, `:`, `,` (flags, sequence sets, LIST patterns).

Input is the framed command: text segments, each but the last ending in a literal marker,
interleaved with the literal payloads (roost.proto.imap.connection guarantees this shape).
Like Dovecot (observed), runs of spaces separate arguments (also after "(" and before ")"),
trailing spaces are ignored, and `tokenize_lenient` keeps the arguments before a syntax error
so commands that never read that far are not refused.
Invariants: `tokenize` raises only LexError; bytes are never decoded here except atoms
(ASCII). Security: list nesting is capped at MAX_DEPTH, the argument count at MAX_ARGS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_DEPTH = 32
MAX_ARGS = 100_000
LITERAL_MARKER = re.compile(rb"(~?)\{(\d{1,20})(\+)?\}\Z")


class LexError(Exception):
    """Malformed arguments; str() is the text after `BAD Error in IMAP command X: `."""


@dataclass(frozen=True)
class Atom:
    value: str

    @property
    def upper(self) -> str:
        return self.value.upper()


@dataclass(frozen=True)
class Quoted:
    value: bytes


@dataclass(frozen=True)
class Literal:
    value: bytes
    binary: bool = False   # literal8 (RFC 3516)


@dataclass(frozen=True)
class ListArg:
    items: tuple


Arg = Atom | Quoted | Literal | ListArg
_ATOM_STOP = b' ()"{\r\n'


class _Cursor:
    def __init__(self, segments: list[bytes], literals: list[Literal]):
        self.segments = segments
        self.literals = literals
        self.index = 0
        self.text = segments[0]
        self.pos = 0
        self.count = 0

    def next_segment(self) -> bool:
        if self.index + 1 >= len(self.segments):
            return False
        self.index += 1
        self.text = self.segments[self.index]
        self.pos = 0
        return True


def _quoted(cur: _Cursor) -> Quoted:
    text = cur.text
    out = bytearray()
    pos = cur.pos + 1
    while pos < len(text):
        char = text[pos]
        if char == 0x22:
            cur.pos = pos + 1
            return Quoted(bytes(out))
        if char == 0x5C:  # RFC 3501 §9 quoted-specials only
            pos += 1
            if pos >= len(text) or text[pos] not in b'"\\':
                raise LexError("Invalid escape in quoted string")
            char = text[pos]
        elif char in (0x0D, 0x0A, 0x00):
            raise LexError("CR/LF/NUL in quoted string")
        out.append(char)
        pos += 1
    raise LexError("Missing '\"'")


def _atom(cur: _Cursor) -> Atom:
    text = cur.text
    start = pos = cur.pos
    while pos < len(text):
        char = text[pos]
        if char == 0x5B:  # "[": take everything up to the matching "]"
            depth = 0
            scan = pos
            while scan < len(text):
                if text[scan] == 0x5B:
                    depth += 1
                elif text[scan] == 0x5D:
                    depth -= 1
                    if depth == 0:
                        break
                scan += 1
            if scan < len(text):
                pos = scan + 1
                continue
            # An unmatched "[" is an ordinary atom character (RFC 3501 §9 ATOM-CHAR does not
            # exclude it): `SELECT a[b` names a mailbox, as Dovecot reads it.
            pos += 1
            continue
        if char in _ATOM_STOP or char == 0x29:
            break
        if char >= 0x80:
            raise LexError("8bit data in atom")
        if char < 0x20 or char == 0x7F:
            raise LexError("Control characters in atom")
        pos += 1
    if pos == start:
        raise LexError("Unexpected character")
    cur.pos = pos
    raw = text[start:pos]
    if not raw.isascii():  # 8-bit inside BODY[...] brackets
        raise LexError("8bit data in atom")
    return Atom(raw.decode("ascii"))


def _literal(cur: _Cursor) -> Literal:
    match = LITERAL_MARKER.match(cur.text, cur.pos)
    if match is None or match.end() != len(cur.text):
        raise LexError("Invalid literal")
    if cur.index >= len(cur.literals):
        # a marker the line's trailing spaces hid from the framing: no literal follows
        # (Dovecot 2.3's text, observed: `APPEND INBOX {3} `)
        raise LexError("Missing LF after literal size")
    literal = cur.literals[cur.index]
    cur.pos = len(cur.text)
    if not cur.next_segment():
        raise LexError("Missing literal data")
    return Literal(literal.value, bool(match.group(1)))


# The common cases in one regular expression each (the per-byte readers above decide
# everything else, errors included): an atom of plain characters that ends at a separator
# or the end of the segment, and a quoted string without escapes or forbidden bytes.
_PLAIN_ATOM = re.compile(rb'[^ ()"{\x00-\x1f\x7f-\xff\[]+')
_PLAIN_QUOTED = re.compile(rb'"([^"\\\r\n\x00]*)"')


def _items(cur: _Cursor, depth: int, closing: bool, out: list[Arg] | None = None) -> list[Arg]:
    items: list[Arg] = out if out is not None else []
    append = items.append
    first = True
    text, pos = cur.text, cur.pos
    end = len(text)
    while True:
        gap = pos
        while pos < end and text[pos] == 0x20:  # runs of spaces are one separator, also
            pos += 1  # after "(" and before ")" (Dovecot, observed)
        spaces = pos - gap
        if pos >= end:
            cur.pos = pos
            if closing:
                raise LexError("Missing ')'")
            return items
        char = text[pos]
        if char == 0x29:  # ")"
            if not closing:
                cur.pos = pos
                raise LexError("Unexpected ')'")
            cur.pos = pos + 1
            return items
        if not first and not spaces:
            cur.pos = pos
            raise LexError("Missing space between arguments")
        first = False
        cur.count += 1
        if cur.count > MAX_ARGS:
            raise LexError("Too many arguments")
        if char == 0x22:
            plain = _PLAIN_QUOTED.match(text, pos)
            if plain is not None:
                append(Quoted(plain.group(1)))
                pos = plain.end()
                continue
        elif char != 0x28 and char != 0x7B and char != 0x7E:
            plain = _PLAIN_ATOM.match(text, pos)
            if plain is not None:
                stop = plain.end()
                if stop >= end or text[stop] in _ATOM_STOP:
                    append(Atom(plain.group().decode("ascii")))
                    pos = stop
                    continue
        cur.pos = pos
        if char == 0x28:
            if depth >= MAX_DEPTH:
                raise LexError("Too deep list nesting")
            cur.pos += 1
            append(ListArg(tuple(_items(cur, depth + 1, True))))
        elif char == 0x22:
            append(_quoted(cur))
        elif char == 0x7B or (char == 0x7E and cur.text[cur.pos + 1:cur.pos + 2] == b"{"):
            append(_literal(cur))
        else:
            append(_atom(cur))
        text, pos = cur.text, cur.pos
        end = len(text)


def tokenize(segments: list[bytes], literals: list[bytes | Literal]) -> list[Arg]:
    """Arguments of a framed command (the tag and command name included as atoms)."""
    lits = [lit if isinstance(lit, Literal) else Literal(lit) for lit in literals]
    return _items(_Cursor(segments, lits), 0, False)


def tokenize_lenient(segments: list[bytes], literals: list[bytes | Literal]) -> tuple[list[Arg], LexError | None]:
    """Like tokenize, but returns the complete top-level arguments before a syntax error
    together with that error: Dovecot reads only the arguments a command needs, so garbage
    after them is never looked at (observed: `EXPUNGE (`, `CREATE a b (` are OK). Trailing
    spaces at the end of the command are ignored as Dovecot ignores them."""
    lits = [lit if isinstance(lit, Literal) else Literal(lit) for lit in literals]
    segments = [*segments[:-1], segments[-1].rstrip(b" ")] if segments else segments
    items: list[Arg] = []
    try:
        _items(_Cursor(segments, lits), 0, False, items)
    except LexError as error:
        return items, error
    return items, None
