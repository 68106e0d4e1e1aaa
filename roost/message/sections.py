"""FETCH body sections and BINARY decoding (RFC 3501 §6.4.5, RFC 9051 §6.4.5, RFC 3516).

Section text is RFC 3501 §6.4.5: "" (whole message or a part's body), HEADER, HEADER.FIELDS,
HEADER.FIELDS.NOT, TEXT (of a message or of a message/rfc822 part), MIME (a part's own MIME
header); partial fetches `<origin.length>` slice the result. BINARY[section] (RFC 3516 §4.2)
is a part's body with its Content-Transfer-Encoding removed (base64, quoted-printable; 7bit,
8bit and binary unchanged) and BINARY.SIZE its length; the encoding is the header's one token
(comments ignored) and counts even in a message without MIME-Version (Dovecot 2.3, observed:
a literal8 APPEND's binary part stored as base64 then comes back exact).
Behaviour matched with Dovecot 2.3 (observed): HEADER and MIME include the empty separator
line; HEADER.FIELDS returns the matching fields as written, in message order, followed by an
empty line; a HEADER/TEXT subsection of a part that is not message/rfc822 is empty; part 1 of a leaf is
the leaf itself (BODY[1.1] of a text part).

Invariants: slicing only — no copy of the message beyond the bytes returned; never raises
except UnknownEncoding for BINARY. Security: decoding is linear in the part size.
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


_IDENTITY_ENCODINGS = ("7bit", "8bit", "binary", "")


def _needs_decoding(part: Part) -> bool:
    """A leaf whose body BINARY must decode; raises UnknownEncoding for an encoding that
    cannot be decoded (RFC 3516 §4.3, the session answers NO [UNKNOWN-CTE])."""
    if part.is_multipart or part.message is not None:
        return False
    # BINARY decodes by the header even without MIME-Version (Dovecot 2.3, observed; BODY-
    # STRUCTURE ignores it there): a literal8 APPEND stored as base64 comes back exact
    encoding = transfer_encoding(part, honour_mime=False)
    if encoding in _IDENTITY_ENCODINGS:
        return False
    if encoding in ("base64", "quoted-printable"):
        return True
    raise UnknownEncoding(encoding)


def binary_size(data: bytes, root: Part, path: tuple[int, ...]) -> int:
    """BINARY.SIZE[path]. Like Dovecot (observed) it needs the whole message convertible: an
    unknown transfer encoding anywhere raises UnknownEncoding; a missing part is 0."""
    for sub in _walk(root):
        _needs_decoding(sub)
    value = binary(data, root, path)
    return len(value) if value is not None else 0


def _rewrite(data: bytes, part: Part, start: int, end: int, out: list[bytes]) -> None:
    """Copy data[start:end] (which covers `part` from its header on, or its body) with every
    base64/quoted-printable leaf decoded and relabelled `Content-Transfer-Encoding: binary`."""
    pos = start
    for sub in _walk(part):
        if not _needs_decoding(sub) or sub.start < start or sub.body_end > end:
            continue
        if sub.start >= pos:
            out.append(data[pos:sub.start])
            header = header_fields(data, sub.start, sub.header_end, sub.header_end,
                                   ("content-transfer-encoding",), True, terminator=False)
            out.append(header + b"Content-Transfer-Encoding: binary\r\n" +
                       data[sub.header_end:sub.body_start])
        else:
            out.append(data[pos:sub.body_start])
        out.append(decode_body(sub, data[sub.body_start:sub.body_end], honour_mime=False))
        pos = sub.body_end
    out.append(data[pos:end])


def _walk(part: Part):
    yield part
    if part.message is not None:
        yield from _walk(part.message)
    for child in part.children:
        yield from _walk(child)


def binary(data: bytes, root: Part, path: tuple[int, ...]) -> bytes | None:
    """BINARY[path] (RFC 3516 §4.2): the part's body with its transfer encoding removed.

    For the whole message, a multipart or a message/rfc822 part (Dovecot 2.3, observed) every
    encoded leaf inside is decoded in place and its header says `Content-Transfer-Encoding:
    binary`; the part's own body is decoded when it is a base64/quoted-printable leaf.
    """
    return binary_decoded(data, root, path)[0]


def binary_decoded(data: bytes, root: Part, path: tuple[int, ...]) -> tuple[bytes | None, bool]:
    """(BINARY[path], whether any transfer decoding happened): Dovecot sends the result as a
    literal8 exactly when something was decoded (observed)."""
    part = find_part(root, list(path)) if path else root
    if part is None:
        return None, False
    if path and _needs_decoding(part):
        return decode_body(part, data[part.body_start:part.body_end], honour_mime=False), True
    start, end = (0, len(data)) if not path else (part.body_start, part.body_end)
    decoded = any(_needs_decoding(sub) and sub.start >= start and sub.body_end <= end
                  for sub in _walk(part))
    out: list[bytes] = []
    _rewrite(data, part, start, end, out)
    return b"".join(out), decoded
