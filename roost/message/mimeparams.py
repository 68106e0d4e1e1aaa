"""MIME header values: Content-Type / Content-Disposition with parameters, RFC 2231, and the
Content-Transfer-Encoding mechanism (RFC 2045 §6.1: one token; comments around it ignored).

RFC 2045 §5.1 (type "/" subtype *(";" parameter), token / quoted-string values, comments as
CFWS per RFC 5322 §3.2.2), RFC 2183 (Content-Disposition), RFC 2231 §3-§4 (parameter value
continuations `name*0`, `name*1*` and charset'language'%XX encoding).

Two views of the parameters, because IMAP and humans want different things:
`parse_params` returns what BODYSTRUCTURE shows (Dovecot 2.3 behaviour, observed: plain
parameters in order first, then the RFC 2231 ones with their continuations joined under
`name*` (or `name` when no segment was encoded), values left percent-encoded);
`decoded_params` returns fully decoded text values for SEARCH and filenames.
Invariants: never raises on any input; names keep their case. Security: the number of
parameters and continuation segments is capped (MAX_PARAMS) so a header cannot explode.
"""

from __future__ import annotations

import re
import urllib.parse

MAX_PARAMS = 256
_SEGMENT = re.compile(r"\A(.*?)\*(\d+)(\*?)\Z", re.S)


_WSP = re.compile(rb"[ \t\r\n]*")


def _skip_cfws(text: bytes, pos: int) -> int:
    """Skip whitespace and (nested) comments, RFC 5322 §3.2.2."""
    length = len(text)
    if pos >= length:  # (a comment's final backslash may have stepped past the end)
        return pos
    pos = _WSP.match(text, pos).end()  # the common case: white space alone
    if pos >= length or text[pos] != 0x28:
        return pos
    while pos < length:
        char = text[pos]
        if char in b" \t\r\n":
            pos += 1
        elif char == 0x28:  # "("
            depth = 0
            while pos < length:
                char = text[pos]
                if char == 0x5C:  # backslash quotes the next byte
                    pos += 2
                    continue
                if char == 0x28:
                    depth += 1
                elif char == 0x29:
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                pos += 1
        else:
            break
    return pos


_TSPECIALS = b'()<>@,;:\\"/[]?= \t\r\n'


_TOKEN = re.compile(b"[^" + re.escape(_TSPECIALS) + b"]*")


def _token(text: bytes, pos: int) -> tuple[bytes, int]:
    if pos >= len(text):
        return b"", pos
    match = _TOKEN.match(text, pos)
    return match.group(), match.end()


def transfer_mechanism(value: bytes) -> bytes | None:
    """Content-Transfer-Encoding (RFC 2045 §6.1 mechanism): one token, as written, with
    comments and white space around it ignored; None when the value is anything else
    (Dovecot 2.3, observed: BODYSTRUCTURE then says "7bit" and BINARY answers UNKNOWN-CTE)."""
    token, pos = _token(value, _skip_cfws(value, 0))
    if not token or _skip_cfws(value, pos) != len(value):
        return None
    return token


_PLAIN_QUOTED = re.compile(rb'"([^"\\\r\n]*)"')
_BARE_VALUE = re.compile(rb"[^;\t\r\n (]*")


def _quoted(text: bytes, pos: int) -> tuple[bytes, int]:
    """A quoted-string starting at text[pos] == '"'; backslash escapes removed."""
    plain = _PLAIN_QUOTED.match(text, pos)
    if plain is not None:  # the common case: nothing to unescape or drop
        return plain.group(1), plain.end()
    out = bytearray()
    pos += 1
    while pos < len(text):
        char = text[pos]
        if char == 0x22:
            return bytes(out), pos + 1
        if char == 0x5C and pos + 1 < len(text):
            pos += 1
            char = text[pos]
        if char not in (0x0D, 0x0A):
            out.append(char)
        pos += 1
    return bytes(out), pos


def _value(text: bytes, pos: int) -> tuple[bytes, int]:
    if pos < len(text) and text[pos] == 0x22:
        return _quoted(text, pos)
    if pos >= len(text):
        return b"", pos
    match = _BARE_VALUE.match(text, pos)
    return match.group(), match.end()


def parse_type(value: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    """(type, subtype, raw params) of a Content-Type value, lenient like Dovecot (observed):
    `text` alone is type "text" with subtype "", and a value that does not start with a token
    (`/plain`, empty) is type "" and subtype "" without parameters."""
    pos = _skip_cfws(value, 0)
    main, pos = _token(value, pos)
    if not main:
        return "", "", []
    pos = _skip_cfws(value, pos)
    sub = b""
    if pos < len(value) and value[pos] == 0x2F:  # "/"
        pos = _skip_cfws(value, pos + 1)
        sub, pos = _token(value, pos)
    return main.decode("latin-1"), sub.decode("latin-1"), _raw_params(value, pos)


def parse_disposition(value: bytes) -> tuple[str, list[tuple[str, str]]] | None:
    """(disposition type, raw params) of a Content-Disposition value (RFC 2183 §2)."""
    pos = _skip_cfws(value, 0)
    kind, pos = _token(value, pos)
    if not kind:
        return None
    return kind.decode("latin-1"), _raw_params(value, pos)


def _raw_params(text: bytes, pos: int) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    while pos < len(text) and len(params) < MAX_PARAMS:
        pos = _skip_cfws(text, pos)
        if pos >= len(text):
            break
        if text[pos] != 0x3B:  # ";" expected; resynchronise on the next one
            nxt = text.find(b";", pos)
            if nxt < 0:
                break
            pos = nxt
        pos = _skip_cfws(text, pos + 1)
        name, pos = _token(text, pos)
        pos = _skip_cfws(text, pos)
        if not name or pos >= len(text) or text[pos] != 0x3D:  # "="
            continue
        pos = _skip_cfws(text, pos + 1)
        value, pos = _value(text, pos)
        params.append((name.decode("latin-1"), value.decode("latin-1")))
    return params


def imap_params(raw: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Parameters as BODYSTRUCTURE lists them (RFC 2231 continuations joined, not decoded)."""
    plain: list[tuple[str, str]] = []
    segments: dict[str, list[tuple[int, bool, str]]] = {}
    order: list[str] = []
    for name, value in raw:
        match = _SEGMENT.match(name)
        if match:
            base = match.group(1)
            key = base.lower()
            if key not in segments:
                segments[key] = []
                order.append(base)
            segments[key].append((int(match.group(2)[:9]), bool(match.group(3)), value))
        elif name.endswith("*"):
            key = name[:-1].lower()
            if key not in segments:
                segments[key] = []
                order.append(name[:-1])
            segments[key].append((0, True, value))
        else:
            plain.append((name, value))
    for base in order:
        parts = sorted(segments[base.lower()], key=lambda item: item[0])
        extended = any(flag for _, flag, _ in parts)
        plain.append((base + "*" if extended else base, "".join(v for _, _, v in parts)))
    return plain


def decode_extended(value: str) -> str:
    """RFC 2231 §4: charset'language'percent-encoded → text (unknown charsets as UTF-8)."""
    pieces = value.split("'", 2)
    if len(pieces) != 3:
        return urllib.parse.unquote(value, encoding="utf-8", errors="replace")
    charset = pieces[0] or "us-ascii"
    raw = urllib.parse.unquote_to_bytes(pieces[2])
    try:
        return raw.decode(charset, errors="replace")
    except (LookupError, ValueError):  # unknown charset, or a name Python refuses (NUL)
        return raw.decode("utf-8", errors="replace")


def decoded_params(raw: list[tuple[str, str]]) -> dict[str, str]:
    """Lower-cased parameter name → decoded text value (RFC 2231 applied)."""
    out: dict[str, str] = {}
    for name, value in imap_params(raw):
        if name.endswith("*"):
            out[name[:-1].lower()] = decode_extended(value)
        else:
            out.setdefault(name.lower(), value)
    return out
