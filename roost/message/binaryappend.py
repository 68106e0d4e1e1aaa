"""Binary content sent with APPEND's literal8 stored as base64 (RFC 3516 §4.4, §1).

A client may APPEND a message whose parts carry `Content-Transfer-Encoding: binary` (raw
octets: NULs, bare CR or LF, long lines). The store keeps messages with LF line ends
(mail_save_crlf=no), which would turn a bare LF into CRLF on the way out, so BINARY[] could
not return the octets that were sent. As Dovecot 2.3 does (observed), such a part is
re-encoded when the message arrives in a literal8: its CTE line becomes
`Content-Transfer-Encoding: base64` and its body the base64 of the exact octets, in 76-character
lines joined by CRLF (RFC 2045 §6.8), without a final line end (the delimiter's CRLF, or the
end of the message, follows). BINARY[n] decodes that back to the original octets (RFC 3516
§4.2); BODY[n] shows the base64.

Which parts (Dovecot 2.3, observed): every leaf part, at any depth (inside multiparts and
message/rfc822), whose header has a one-line `Content-Transfer-Encoding` field whose value is
`binary` in any case, with at most one space after the colon and nothing else; the other
parts, multipart containers and a part whose header has no ending empty line stay as sent.

Invariants: pure; input that has no such part is returned unchanged (the same object).
Security: works on parse_message's offsets, whose tree size and depth are bounded.
"""

from __future__ import annotations

import base64
import re

from roost.message.mime import Part, parse_message

CTE_BINARY = re.compile(rb"(?im)^content-transfer-encoding: ?binary\r?$")
BASE64_LINE = 76  # RFC 2045 §6.8: "no more than 76 characters"
NEW_FIELD = b"Content-Transfer-Encoding: base64"


def convert_binary_parts(data: bytes) -> bytes:
    if CTE_BINARY.search(data) is None:  # the common case: nothing to look at
        return data
    edits: list[tuple[int, int, bytes]] = []
    _walk(parse_message(data), data, edits)
    if not edits:
        return data
    out = []
    position = 0
    for start, end, replacement in sorted(edits):
        out += [data[position:start], replacement]
        position = end
    out.append(data[position:])
    return b"".join(out)


def _walk(part: Part, data: bytes, edits: list) -> None:
    if part.is_multipart:
        for child in part.children:
            _walk(child, data, edits)
        return
    if part.message is not None:
        _walk(part.message, data, edits)
        return
    if part.boundary_cut or not _has_empty_line(part, data):
        return
    field = _binary_field(data, part.start, part.header_end)
    if field is None:
        return
    edits.append((field[0], field[1], NEW_FIELD))
    body = data[part.body_start:part.body_end]
    if body:
        encoded = base64.b64encode(body)
        lines = [encoded[i:i + BASE64_LINE] for i in range(0, len(encoded), BASE64_LINE)]
        edits.append((part.body_start, part.body_end, b"\r\n".join(lines)))


def _has_empty_line(part: Part, data: bytes) -> bool:
    """The header ends with an empty line (RFC 5322 §2.1), possibly right at the start."""
    head = data[part.start:part.body_start]
    return head.endswith((b"\n\r\n", b"\n\n")) or head in (b"\r\n", b"\n")


def _binary_field(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(start, end) of the last one-line `Content-Transfer-Encoding: binary` field in the
    header block data[start:end], without its line end."""
    found = None
    position = start
    while position < end:
        newline = data.find(b"\n", position, end)
        line_end = end if newline < 0 else newline + 1
        line = data[position:line_end]
        folded = line_end < end and data[line_end:line_end + 1] in (b" ", b"\t")
        text = line.rstrip(b"\n")
        text = text[:-1] if text.endswith(b"\r") else text
        if not folded and CTE_BINARY.fullmatch(text):
            found = (position, position + len(text))
        position = line_end
    return found
