"""FETCH body sections and transfer decoding (RFC 3501 §6.4.5, RFC 9051 §6.4.5, RFC 2045 §6).

Section text is RFC 3501 §6.4.5: "" (whole message or a part's body), HEADER, HEADER.FIELDS,
HEADER.FIELDS.NOT, TEXT (of a message or of a message/rfc822 part), MIME (a part's own MIME
header); partial fetches `<origin.length>` slice the result. decode_body removes a part's
Content-Transfer-Encoding leniently (base64, quoted-printable; 7bit, 8bit and binary
unchanged) for SEARCH; BINARY and BINARY.SIZE (RFC 3516) live in roost.message.binary.
Behaviour matched with Dovecot 2.3 (observed): HEADER and MIME include the empty separator
line; HEADER.FIELDS returns the matching fields as written, in message order, followed by an
empty line; a HEADER/TEXT subsection of a part that is not message/rfc822 is empty; part 1 of a leaf is
the leaf itself (BODY[1.1] of a text part).

Invariants: slicing only — no copy of the message beyond the bytes returned; never raises
except UnknownEncoding from decode_body. Security: decoding is linear in the part size.
"""

from __future__ import annotations

import binascii
import re

from roost.message.mime import Part, find_part
from roost.message.mimeparams import transfer_mechanism
from roost.proto.imap.commands import Section


class UnknownEncoding(Exception):
    """BINARY of a part whose Content-Transfer-Encoding is unknown (RFC 3516 UNKNOWN-CTE)."""


def _field_spans(data: bytes, start: int, end: int):
    """(lower-cased name, bytes of the whole field with its line ending) for each field."""
    pos = start
    current_name: str | None = None
    current_start = start
    while pos < end:
        newline = data.find(b"\n", pos, end)
        line_end = end if newline < 0 else newline + 1
        if data[pos:pos + 1] in (b" ", b"\t") and current_name is not None:
            pos = line_end
            continue
        if current_name is not None:
            yield current_name, data[current_start:pos]
        colon = data.find(b":", pos, line_end)
        current_name = data[pos:colon].rstrip(b" \t").decode("latin-1").lower() if colon > pos else None
        current_start = pos
        pos = line_end
    if current_name is not None:
        yield current_name, data[current_start:end]


def header_fields(data: bytes, start: int, header_end: int, body_start: int, names: tuple[str, ...],
                  negate: bool, terminator: bool = True) -> bytes:
    wanted = {n.lower() for n in names}
    separator = data[header_end:body_start]
    if negate and not separator and terminator:
        # HEADER.FIELDS.NOT of a header without its blank line: the kept fields as they are,
        # a last line without CRLF included, and no terminator (Dovecot 2.3, observed)
        return b"".join(raw for name, raw in _field_spans(data, start, header_end)
                        if name not in wanted)
    out = [raw if raw.endswith(b"\n") else raw + b"\r\n"
           for name, raw in _field_spans(data, start, header_end) if (name in wanted) != negate]
    if not terminator:
        return b"".join(out)
    # the original separator line; a header without one gets CRLF unless nothing matched
    out.append(data[header_end:body_start] or (b"\r\n" if out else b""))
    return b"".join(out)


def _message_of(part: Part) -> Part:
    return part.message if part.message is not None else part


def extract(data: bytes, root: Part, section: Section) -> bytes | None:
    """The bytes of BODY[section] (before any partial), or None when the part does not exist.

    NUL bytes become 0x80: RFC 3501 §4.3 forbids NUL in a literal (Dovecot substitutes 0x80).
    """
    value = _extract(data, root, section)
    if value is not None and b"\x00" in value:
        value = value.replace(b"\x00", b"\x80")
    return value


def _extract(data: bytes, root: Part, section: Section) -> bytes | None:
    part = find_part(root, list(section.part))
    if part is None:
        return None
    text = section.text
    if text is None:
        if not section.part:
            return data
        return data[part.body_start:part.body_end]
    if text == "MIME":
        if not section.part:
            return None
        return data[part.start:part.header_block_end]
    if section.part and part.message is None:
        return b""  # HEADER/TEXT of a part that is not message/rfc822: empty (Dovecot)
    message = _message_of(part) if section.part else root
    if text == "TEXT":
        end = len(data) if not section.part else message.body_end
        return data[message.body_start:end]
    if text == "HEADER":
        return data[message.start:message.header_block_end]
    negate = text == "HEADER.FIELDS.NOT"
    return header_fields(data, message.start, message.header_end, message.body_start,
                         section.fields, negate)


def partial(value: bytes, origin: int | None, length: int | None) -> bytes:
    """RFC 3501 §6.4.5 `<origin.length>`: an origin past the end gives the empty string."""
    if origin is None:
        return value
    end = None if length is None else origin + length
    return value[origin:end]


_QP_SOFT_BREAK = re.compile(rb"=[ \t]*\r?\n")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_TRAILING_WS = re.compile(rb"[ \t]+(?=\r?\n)")


def decode_qp(body: bytes) -> bytes:
    """RFC 2045 §6.7 quoted-printable (lenient: a bad `=` sequence stays literal)."""
    body = _TRAILING_WS.sub(b"", body)
    body = _QP_SOFT_BREAK.sub(b"", body)
    return _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), body)


def decode_base64(body: bytes) -> bytes:
    """RFC 2045 §6.8 base64, ignoring characters outside the alphabet and stopping at '='."""
    clean = re.sub(rb"[^A-Za-z0-9+/=]", b"", body)
    pad = clean.find(b"=")
    if pad >= 0:
        clean = clean[:pad]
    clean = clean[: len(clean) - len(clean) % 4] + (
        b"" if len(clean) % 4 in (0, 1) else clean[len(clean) - len(clean) % 4:] + b"=" * (4 - len(clean) % 4))
    try:
        return binascii.a2b_base64(clean)
    except binascii.Error:
        return b""


def transfer_encoding(part: Part, honour_mime: bool = True) -> str:
    """The part's transfer encoding, lower case; "7bit" when absent or (with honour_mime)
    when the part is a non-MIME message whose Content-* headers do not count."""
    if honour_mime:
        value = part.mime_field("Content-Transfer-Encoding")
    else:
        field_ = part.header.last("Content-Transfer-Encoding")
        value = field_.value if field_ is not None else None
    if value is None:
        return "7bit"
    mechanism = transfer_mechanism(value)
    if mechanism is None:  # not one token: an encoding nobody knows (UNKNOWN-CTE)
        return value.strip(b" \t").decode("latin-1").lower()
    return mechanism.decode("latin-1").lower()


def decode_body(part: Part, body: bytes, honour_mime: bool = True) -> bytes:
    encoding = transfer_encoding(part, honour_mime)
    if encoding in ("7bit", "8bit", "binary", ""):
        return body
    if encoding == "base64":
        return decode_base64(body)
    if encoding == "quoted-printable":
        return decode_qp(body)
    raise UnknownEncoding(encoding)
