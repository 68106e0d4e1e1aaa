"""BINARY[section] and BINARY.SIZE[section] (RFC 3516 §4.2, §4.3) as Dovecot 2.3 answers them.

BINARY of a part is its body with the transfer encoding removed; of the whole message (or of
a multipart / message/rfc822 part) it is the original bytes with every part inside rewritten.
The walk (Dovecot 2.3.19, observed with probes; see tests/interop/test_imap_dovecot_differential):
- a part's transfer encoding is its last Content-Transfer-Encoding field, MIME-Version or not;
  one nobody knows fails the whole request with UnknownEncoding (NO [UNKNOWN-CTE], §4.3);
- a header inside the result whose encoding is base64 or quoted-printable loses its
  Content-Transfer-Encoding fields and gets `Content-Transfer-Encoding: binary` before its
  empty line; this holds for multipart and message/rfc822 parts too (RFC 2045 §6.4 forbids
  them an encoding, so nothing in their own body is decoded);
- a multipart with parts, and a message/rfc822 part, keep their own body bytes (preamble,
  delimiters, epilogue) and recurse; a multipart without any part is a leaf, whose body is
  decoded by its header like any other;
- a leaf body is decoded strictly (decode_base64_strict / decode_qp_strict): data a decoder
  rejects fails the request with InvalidData (NO [PARSE] Invalid data in MIME part), first
  problem in reading order deciding; data that merely stops early (a base64 quantum or a `=`
  escape cut by the end of the part) is decoded leniently, where Dovecot drops the
  connection (`* BYE FETCH failed`), the deliberate difference listed in the interop test;
- when no leaf body was decoded the answer is the section as stored: Dovecot then sends the
  stored bytes too, but as many as the relabelled headers would have made (cut short after
  a relabelled quoted-printable field: listed in the interop test, RFC 3516 §4.2);
- the answer is a literal8 exactly when a non-empty leaf body was decoded or a header or an
  unencoded leaf inside holds NUL; otherwise NULs go out as 0x80 (RFC 3501 §4.3).
BINARY.SIZE checks the whole message as Dovecot does (any unknown encoding or invalid data
anywhere fails it) and is the length of the corresponding BINARY answer (RFC 3516 §4.2);
Dovecot's own figure misses that length where a multipart header was relabelled (listed in
tests/message/test_binary_decoding.py) or, on a Maildir stored with LF line ends, where a
converted part follows a part within its line count.

Invariants: pure and linear in the message size; offsets come from parse_message, whose tree
is bounded. Security: decoders never expand input beyond its length (base64 shrinks, qp too).
"""

from __future__ import annotations

import binascii
import re

from roost.message.mime import Part, find_part
from roost.message.sections import (UnknownEncoding, decode_base64, decode_qp, header_fields,
                                    transfer_encoding)

IDENTITY = frozenset(("7bit", "8bit", "binary", ""))
DECODED = frozenset(("base64", "quoted-printable"))
BINARY_FIELD = b"Content-Transfer-Encoding: binary\r\n"


class InvalidData(Exception):
    """A part's encoded body holds data its decoder rejects (NO [PARSE], Dovecot's text)."""


# --- strict decoders: (decoded, None) or (lenient decoding, "invalid" | "truncated") -------

_B64_WHITESPACE = b" \t\r\n"
_B64_NOT_ALPHABET = re.compile(rb"[^A-Za-z0-9+/]")


def decode_base64_strict(body: bytes) -> tuple[bytes, str | None]:
    """RFC 2045 §6.8 base64 as Dovecot's decoder reads it: white space anywhere is skipped;
    a character outside the alphabet, `=` where no padding can be, or anything but white space
    after the padding is invalid; a quantum or padding left open at the end is truncated."""
    clean = body.translate(None, _B64_WHITESPACE)
    bad = _B64_NOT_ALPHABET.search(clean)
    if bad is None:
        if len(clean) % 4:
            return decode_base64(body), "truncated"
        return binascii.a2b_base64(clean), None
    at = bad.start()
    if clean[at] != 0x3D or at % 4 < 2:  # not '=', or '=' opening a quantum or after 1 char
        return b"", "invalid"
    rest = clean[at + 1:]
    if at % 4 == 3 and rest == b"":
        return binascii.a2b_base64(clean), None
    if at % 4 == 2:
        if rest == b"=":
            return binascii.a2b_base64(clean), None
        if rest == b"":
            return decode_base64(body), "truncated"
    return b"", "invalid"


_QP_BAD_ESCAPE = re.compile(rb"=(?![0-9A-Fa-f]{2}|[ \t]*\r?\n)")
_QP_BARE_CR = re.compile(rb"\r(?!\n)")
_QP_OPEN_AT_END = re.compile(rb"[0-9A-Fa-f]?|[ \t]*\r?")
_QP_TRAILING_SPACE = re.compile(rb"[ \t]+(?=\r?\n|\Z)")
_QP_SOFT_BREAK = re.compile(rb"=\r?\n")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_qp_strict(body: bytes) -> tuple[bytes, str | None]:
    """RFC 2045 §6.7 quoted-printable as Dovecot's decoder reads it: `=` must start a hex
    escape (either case) or a soft line break (white space allowed before the line end); a
    CR must end a line; trailing white space on a line (and at the end) is dropped. An escape,
    soft break or CR the end of the part cuts short is truncated, any other fault invalid."""
    faults = [m.start() for m in (_QP_BAD_ESCAPE.search(body), _QP_BARE_CR.search(body))
              if m is not None]
    if faults:
        at = min(faults)
        if body[at] == 0x0D:
            cut = at == len(body) - 1
        else:
            cut = _QP_OPEN_AT_END.fullmatch(body, at + 1) is not None
        return (decode_qp(body), "truncated") if cut else (b"", "invalid")
    text = _QP_SOFT_BREAK.sub(b"", _QP_TRAILING_SPACE.sub(b"", body))
    return _QP_ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), text), None


# --- the walk --------------------------------------------------------------------------------

def _inner_parts(part: Part) -> list[Part]:
    """The parts a BINARY walk recurses into (none: the part is decoded as a leaf)."""
    if part.message is not None:
        return [part.message]
    if part.is_multipart and not (len(part.children) == 1 and part.children[0].stand_in):
        return part.children
    return []


class _Walk:
    def __init__(self, data: bytes, emit: bool = True):
        self.data = data
        self.emit = emit
        self.pieces: list[bytes] = []
        self.converted = False
        self.has_nuls = False
        self.fault: str | None = None

    def part(self, part: Part, include_header: bool) -> None:
        data = self.data
        encoding = transfer_encoding(part, honour_mime=False)
        if encoding not in IDENTITY and encoding not in DECODED:
            raise UnknownEncoding(encoding)
        if data.find(b"\x00", part.start, part.header_end) >= 0:
            self.has_nuls = True
        if include_header and self.emit:
            if encoding in DECODED:
                self.pieces.append(
                    header_fields(data, part.start, part.header_end, part.header_end,
                                  ("content-transfer-encoding",), True, terminator=False)
                    + BINARY_FIELD + data[part.header_end:part.body_start])
            else:
                self.pieces.append(data[part.start:part.body_start])
        inner = _inner_parts(part)
        if inner:
            position = part.body_start
            for child in inner:
                if self.emit:
                    self.pieces.append(data[position:child.start])
                self.part(child, True)
                position = child.body_end
            if self.emit:
                self.pieces.append(data[position:part.body_end])
            return
        if part.body_end == part.body_start:
            return
        body = data[part.body_start:part.body_end]
        if encoding in IDENTITY:
            if b"\x00" in body:
                self.has_nuls = True
            if self.emit:
                self.pieces.append(body)
            return
        decoder = decode_base64_strict if encoding == "base64" else decode_qp_strict
        decoded, fault = decoder(body)
        if fault is not None and self.fault is None:
            self.fault = fault
        self.converted = True
        if self.emit:
            self.pieces.append(decoded)


def binary_decoded(data: bytes, root: Part, path: tuple[int, ...],
                   strict: bool = True) -> tuple[bytes | None, bool]:
    """(BINARY[path], whether it goes out as a literal8); (None, False) for a missing part.
    Raises UnknownEncoding, or InvalidData unless `strict` is off."""
    part = find_part(root, list(path)) if path else root
    if part is None:
        return None, False
    walk = _Walk(data)
    walk.part(part, include_header=not path)
    if walk.fault == "invalid" and strict:
        raise InvalidData()
    if walk.converted:
        value = b"".join(walk.pieces)
    else:  # nothing decoded: the section as stored, relabelled headers or not (see above)
        value = data[part.start if not path else part.body_start:part.body_end]
    literal8 = walk.converted or walk.has_nuls
    if not literal8 and b"\x00" in value:
        value = value.replace(b"\x00", b"\x80")
    return value, literal8


def binary(data: bytes, root: Part, path: tuple[int, ...]) -> bytes | None:
    """BINARY[path] (RFC 3516 §4.2), None for a part that does not exist."""
    return binary_decoded(data, root, path)[0]


def check_whole_message(data: bytes, root: Part) -> None:
    """Raise what BINARY[] of the whole message would raise (Dovecot reads it all for any
    BINARY.SIZE, observed)."""
    walk = _Walk(data, emit=False)
    walk.part(root, include_header=True)
    if walk.fault == "invalid":
        raise InvalidData()


def binary_size(data: bytes, root: Part, path: tuple[int, ...]) -> int:
    """BINARY.SIZE[path]: the size of BINARY[path] (RFC 3516 §4.2), 0 for a missing part."""
    check_whole_message(data, root)  # a fault it let pass is decoded leniently here too
    value = binary_decoded(data, root, path, strict=False)[0]
    return len(value) if value is not None else 0
