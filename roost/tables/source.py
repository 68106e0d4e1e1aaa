"""Text source syntax shared by indexed tables: postmap(1) and aliases(5) input files.

Implements the INPUT FILE FORMAT of postmap(1) and the file format of aliases(5):
- a logical line starts with non-whitespace text; a line that starts with whitespace
  continues it (the newline is dropped, the leading whitespace kept, as Postfix does);
- empty, whitespace-only and `#` comment lines are skipped and do not end a logical line;
- postmap entries are `key whitespace value`; a key may be enclosed in double quotes
  (kept verbatim, as Postfix stores it) so that it can contain whitespace;
- alias entries are `name: value`; the name is unquoted and must be local (no `@`);
  the value is re-tokenized as an RFC 822 address list the way postalias stores it.
Logical lines are numbered by their first physical line, as Postfix reports them.

Invariants: text is handled as `str` decoded from UTF-8 with surrogateescape, so arbitrary
bytes round-trip; nothing here raises on bad input, problems go to `Diagnostics`.
Security: diagnostics quote a bounded excerpt of the input, never the whole line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from roost.config.diagnostics import Diagnostics

WHITESPACE = " \t\r\n\v\f"
_FIRST_WHITESPACE = re.compile("[ \t\r\n\v\f]")
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def is_valid_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def split_word(text: str) -> tuple[str, str]:
    """(first word, rest stripped), splitting on Postfix's whitespace only."""
    text = text.strip(WHITESPACE)
    for index, char in enumerate(text):
        if char in WHITESPACE:
            return text[:index], text[index:].strip(WHITESPACE)
    return text, ""


def fold_key(key: str, utf8: bool) -> str:
    """Postfix case folding of a lookup key: full Unicode case folding when
    smtputf8_enable is on, otherwise ASCII letters only."""
    if key.isascii():
        return key.lower()
    if utf8 and is_valid_utf8(key):
        return key.casefold()
    return key.translate(_ASCII_LOWER)


def printable(text: str, limit: int | None = None) -> str:
    """Postfix-style rendering for warnings: non-printable bytes shown as '?'."""
    shown = text if limit is None else text[:limit]
    return "".join(c if c.isprintable() and not 0xDC80 <= ord(c) <= 0xDCFF else "?" for c in shown)


@dataclass(frozen=True)
class LogicalLine:
    line: int  # first physical line number
    text: str


def logical_lines(text: str, path: str, diags: Diagnostics) -> Iterator[LogicalLine]:
    """Yield logical lines; a leading-whitespace line without a start is reported and
    dropped together with its continuations (Postfix prints no line number there)."""
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), 1):
        stripped = raw.lstrip(WHITESPACE)
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in WHITESPACE:
            if current:
                current.append(raw)
            else:
                current, start = [raw], number
            continue
        if len(current) == 1 and current[0][0] not in WHITESPACE:
            yield LogicalLine(start, current[0].rstrip(WHITESPACE))  # the common one-line case
        elif current:
            yield from _finish(current, start, path, diags)
        current, start = [raw], number
    if current:
        yield from _finish(current, start, path, diags)


def _finish(parts: list[str], start: int, path: str, diags: Diagnostics) -> Iterator[LogicalLine]:
    joined = "".join(parts)
    if joined[0] in WHITESPACE:
        more = "..." if len(joined) > 30 else ""
        diags.warning(path, None, f'logical line must not start with whitespace: "{printable(joined, 30)}{more}"')
        return
    yield LogicalLine(start, joined.rstrip(WHITESPACE))


def split_map_entry(line: LogicalLine, path: str, diags: Diagnostics, utf8: bool) -> tuple[str, str] | None:
    """`key whitespace value` of postmap(1); None (with a warning) when malformed."""
    text = line.text
    if utf8 and not is_valid_utf8(text):
        diags.warning(path, line.line, f'non-UTF-8 input "{printable(text, 100)}" -- ignoring this line')
        return None
    end = _quoted_word_end(text)
    if end is None:
        diags.warning(path, line.line, f"unbalanced '\"' in '{printable(text, 100)}' -- ignoring this line")
        return None
    key, value = text[:end], text[end:].strip(WHITESPACE)
    if not value:
        diags.warning(path, line.line, "expected format: key whitespace value")
        return None
    if key.endswith(":"):
        diags.warning(path, line.line, 'record is in "key: value" format; is this an alias file?')
    return key, value


def _quoted_word_end(text: str) -> int | None:
    """Index of the first whitespace outside double quotes; None if a quote is unbalanced."""
    if '"' not in text:
        found = _FIRST_WHITESPACE.search(text)
        return found.start() if found else len(text)
    in_quote = False
    index = 0
    while index < len(text):
        char = text[index]
        if in_quote and char == "\\":
            index += 2
            continue
        if char == '"':
            in_quote = not in_quote
        elif not in_quote and char in WHITESPACE:
            return index
        index += 1
    return None if in_quote else len(text)


def split_alias_entry(line: LogicalLine, path: str, diags: Diagnostics, utf8: bool) -> tuple[str, str] | None:
    """`name: value` of aliases(5); the name unquoted, the value normalized like postalias."""
    text = line.text
    if utf8 and not is_valid_utf8(text):
        diags.warning(path, line.line, f'non-UTF-8 input "{printable(text, 100)}" -- ignoring this line')
        return None
    name_chars: list[str] = []
    index, in_quote = 0, False
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            name_chars.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            in_quote = not in_quote
        elif char == ":" and not in_quote:
            break
        else:
            name_chars.append(char)
        index += 1
    name = "".join(name_chars).strip(WHITESPACE)
    value = normalize_address_list(text[index + 1:]) if index < len(text) else ""
    if not name or not value:
        diags.warning(path, line.line, "need name:value pair")
        return None
    if "@" in name:
        diags.warning(path, line.line, "name must be local")
        return None
    return name, value


# RFC 822 specials, as tokens of their own.
_SPECIALS = '()<>@,;:\\".[]'
_NEEDS_QUOTES = set(_SPECIALS) | set(WHITESPACE)


def tokenize_address_list(text: str) -> list[tuple[str, str]]:
    """RFC 822 tokens as (kind, text); kind is atom, qstring, comment, literal or the special."""
    tokens: list[tuple[str, str]] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char in WHITESPACE:
            index += 1
        elif char == "(":
            depth, end = 0, index
            while end < length:
                if text[end] == "\\":
                    end += 2
                    continue
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
                if depth == 0:
                    break
            tokens.append(("comment", text[index:end]))
            index = end
        elif char == "[":
            end = text.find("]", index)
            end = length if end < 0 else end + 1
            tokens.append(("literal", text[index:end]))
            index = end
        elif char == '"':
            chars, end = [], index + 1
            while end < length and text[end] != '"':
                if text[end] == "\\" and end + 1 < length:
                    end += 1
                chars.append(text[end])
                end += 1
            tokens.append(("qstring", "".join(chars)))
            index = end + 1
        elif char in _SPECIALS and char != "\\":
            tokens.append((char, char))
            index += 1
        else:
            chars = []
            while index < length and (text[index] == "\\" or text[index] not in _SPECIALS + WHITESPACE):
                if text[index] == "\\":
                    if index + 1 < length:
                        chars.append(text[index + 1])
                    index += 2
                    continue
                chars.append(text[index])
                index += 1
            if chars:
                tokens.append(("atom", "".join(chars)))
    return tokens


def _quote(content: str) -> str:
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalize_address_list(text: str) -> str:
    """The address list as postalias stores it: tokens rejoined with one space between
    words, before '<', and after each comma."""
    out: list[str] = []
    previous = ""
    for kind, token in tokenize_address_list(text):
        wordlike = kind in ("atom", "qstring", "comment", "literal")
        if previous in ("atom", "qstring", "comment", "literal") and (wordlike or kind == "<"):
            out.append(" ")
        if kind == "qstring":
            out.append(_quote(token))
        elif kind == "atom" and any(c in _NEEDS_QUOTES for c in token):
            out.append(_quote(token))
        else:
            out.append(token)
        if kind == ",":
            out.append(" ")
        previous = kind
    return "".join(out)


def parse_entries(text: str, path: str, diags: Diagnostics, *, aliases: bool,
                  utf8: bool) -> Iterable[tuple[int, str, str]]:
    """(line, key, value) for every well-formed entry of a postmap or postalias source."""
    split = split_alias_entry if aliases else split_map_entry
    for line in logical_lines(text, path, diags):
        entry = split(line, path, diags, utf8)
        if entry is not None:
            yield line.line, entry[0], entry[1]
