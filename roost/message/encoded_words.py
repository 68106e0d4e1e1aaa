"""RFC 2047 encoded-word decoding of header text, for SEARCH, SORT and display names.

RFC 2047 §2 (`=?charset?encoding?text?=`), §4.1 (B = base64), §4.2 (Q: `_` is space, `=XX`),
§6.2 (white space between adjacent encoded words is dropped), RFC 2231 §5 (`charset*lang`).
Undecodable words stay as written; unknown charsets fall back to UTF-8 with replacement;
bytes outside encoded words are read as UTF-8, invalid sequences becoming U+FFFD (so a raw
Latin-1 "café" does not match a UTF-8 search for it, as in Dovecot).
Invariants: never raises. Security: work is linear in the input length.
"""

from __future__ import annotations

import base64
import binascii
import re

_WORD = re.compile(rb"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")
_BETWEEN = re.compile(rb"\A[ \t\r\n]+\Z")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _bytes_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")  # raw 8-bit: UTF-8 or nothing (Dovecot)


def _decode_word(charset: bytes, encoding: bytes, text: bytes) -> str | None:
    if encoding in (b"B", b"b"):
        try:
            raw = base64.b64decode(text + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            return None
    else:
        raw = _Q_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), text.replace(b"_", b" "))
    name = charset.split(b"*", 1)[0].decode("ascii", "replace")
    try:
        return raw.decode(name, errors="replace")
    except (LookupError, ValueError):  # unknown charset, or a name Python refuses (NUL)
        return raw.decode("utf-8", errors="replace")


def decode_header(value: bytes) -> str:
    """Header text with encoded words decoded (RFC 2047 §6.2)."""
    if b"=?" not in value:
        return _bytes_text(value)
    out: list[str] = []
    pos = 0
    last_was_word = False
    for match in _WORD.finditer(value):
        between = value[pos:match.start()]
        decoded = _decode_word(match.group(1), match.group(2), match.group(3))
        if decoded is None:
            out.append(_bytes_text(value[pos:match.end()]))
            last_was_word = False
        else:
            if between and not (last_was_word and _BETWEEN.match(between)):
                out.append(_bytes_text(between))
            out.append(decoded)
            last_was_word = True
        pos = match.end()
    out.append(_bytes_text(value[pos:]))
    return "".join(out)
