"""IMAP string output: atoms, quoted strings, literals, NIL (RFC 3501 §4.3, §4.5, RFC 9051 §4.3).

Chooses the representation Dovecot 2.3 chooses (observed), so responses compare byte for byte:
a string with CR, LF, NUL or 8-bit bytes is sent as a literal `{n}\r\n...`, anything else as a
quoted string with `"` and `\\` escaped (RFC 3501 §4.3 quoted-specials). `for_humans` is the
ENVELOPE subject/display-name form: CR/LF/TAB become spaces, runs of white space collapse,
leading and trailing white space go, NUL becomes 0x80, and a string that needed any of that
(or holds `"`, `\\` or 8-bit bytes) is sent as a literal.
Invariants: the output always parses back to the input bytes (for_humans: to the cleaned
form). Security: client-controlled bytes can never end a response line early.
"""

from __future__ import annotations

import re

NIL = b"NIL"
_NEEDS_LITERAL = re.compile(rb"[\x00\r\n\x80-\xff]")
_ESCAPE = re.compile(rb'(["\\])')
_ATOM_SPECIALS = re.compile(rb'[\x00-\x20\x7f-\xff(){%*"\\\[\]]')  # "[" too: keep atoms simple
_LWSP_RUN = re.compile(rb"[ \t\r\n]+")
_HUMAN_DIRTY = re.compile(rb'[\x00\t\r\n"\\\x80-\xff]|  |\A |\s\Z')


def literal(value: bytes) -> bytes:
    return b"{%d}\r\n" % len(value) + value


_NEEDS_LITERAL_UTF8 = re.compile(rb"[\x00\r\n]")


def string(value: bytes, utf8: bool = False) -> bytes:
    """A quoted string, or a literal when quoting cannot carry the bytes; with `utf8` (UTF8=
    ACCEPT enabled, RFC 6855 §3 / RFC 9051 quoted-strings) valid UTF-8 may stay quoted."""
    if utf8 and not _NEEDS_LITERAL_UTF8.search(value):
        try:
            value.decode("utf-8")
            return b'"' + _ESCAPE.sub(rb"\\\1", value) + b'"'
        except UnicodeDecodeError:
            pass
    if _NEEDS_LITERAL.search(value):
        return literal(value)
    return b'"' + _ESCAPE.sub(rb"\\\1", value) + b'"'


def nstring(value: bytes | None) -> bytes:
    return NIL if value is None else string(value)


def astring(value: bytes) -> bytes:
    """An atom when the value is a non-empty atom (RFC 3501 §9 ASTRING-CHAR), else a string."""
    if value and not _ATOM_SPECIALS.search(value) and value.upper() != b"NIL":
        return value
    return string(value)


def for_humans(value: bytes | None) -> bytes:
    if value is None:
        return NIL
    if not _HUMAN_DIRTY.search(value):
        return b'"' + value + b'"'
    cleaned = _LWSP_RUN.sub(b" ", value.replace(b"\x00", b"\x80")).strip(b" ")
    if not cleaned:
        return b'""'
    return literal(cleaned)
