"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII except `&` stands for itself; `&-` is `&`; other characters are UTF-16
encoded, base64 with `,` for `/` and no padding, between `&` and `-`. Decoding is strict like
Dovecot (a name that is not valid mUTF-7 is rejected): shifts must be non-empty, minimal
(no encoded printable ASCII), end in `-`, and carry no leftover bits.
Invariants: encode(decode(x)) == x for every valid x; decode(encode(s)) == s.
Security: the decoder rejects 8-bit input and overlong/odd encodings, so two different wire
names can never map to the same mailbox.
"""

from __future__ import annotations

import base64
import binascii


def encode_mailbox(name: str) -> bytes:
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.extend(b"&" + base64.b64encode(raw).rstrip(b"=").replace(b"/", b",") + b"-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.extend(b"&-" if char == "&" else char.encode("ascii"))
        else:
            pending.append(char)
    flush()
    return bytes(out)


def decode_mailbox(raw: bytes) -> str:
    """Decode; raises ValueError on anything that is not valid modified UTF-7."""
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char < 0x20 or char > 0x7E:
            raise ValueError("8-bit or control character in mailbox name")
        if char != 0x26:  # "&"
            out.append(chr(char))
            pos += 1
            continue
        end = raw.find(b"-", pos + 1)
        if end < 0:
            raise ValueError("unterminated shift")
        chunk = raw[pos + 1:end]
        pos = end + 1
        if not chunk:
            out.append("&")
            continue
        if len(chunk) % 4 == 1:
            raise ValueError("bad base64 length")
        padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
        try:
            data = base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("bad base64") from None
        if len(data) % 2:
            raise ValueError("odd UTF-16 length")
        text = data.decode("utf-16-be", errors="strict") if data else ""
        if any(0x20 <= ord(c) <= 0x7E for c in text):
            raise ValueError("printable ASCII must not be encoded")
        if base64.b64encode(data).rstrip(b"=").replace(b"/", b",") != chunk:
            raise ValueError("non-canonical base64")
        out.append(text)
    return "".join(out)
