"""Message content to the DATA wire form, over whole buffers (never line by line).

RFC 5321 §4.5.2 (transparency): a line that starts with "." gets another "." in front;
§4.1.1.4: the content ends with CRLF "." CRLF, so content that does not end in CRLF gets one.
RFC 5321 §2.3.8: lines end in CRLF only; a bare LF in the content becomes CRLF here, so no
receiver can read a `\\n.\\n` the client sends as the end of data (SMTP smuggling).

Invariants: the output of `encode` for any split of the input into chunks equals the output
for the whole input at once; `finish` always returns bytes ending in CRLF.CRLF.
Security: see the smuggling note above; a bare CR is passed on unchanged (it ends no line).
"""

from __future__ import annotations

import re

_BARE_LF = re.compile(rb"(?<!\r)\n")


class DataEncoder:
    """`line_limit` (smtp_line_length_limit, 0 = none): a longer line is broken by inserting
    CRLF SPACE, as Postfix's smtp(8) does to keep within RFC 5321 §4.5.3.1.6 (998 + CRLF)."""

    def __init__(self, line_limit: int = 0) -> None:
        self.line_limit = line_limit
        self._line_start = True     # the next byte opens a line
        self._pending_cr = False    # the previous chunk ended in CR (its LF may come next)
        self._column = 0            # bytes of the current line so far (for line_limit)
        self.size = 0               # bytes of content consumed

    def encode(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        self.size += len(chunk)
        prefix = b""
        if self._pending_cr:
            self._pending_cr = False
            if chunk[:1] == b"\n":
                prefix, chunk = b"\r\n", chunk[1:]
            else:
                prefix = b"\r"
        if chunk.endswith(b"\r"):
            chunk, self._pending_cr = chunk[:-1], True
        data = prefix + _BARE_LF.sub(b"\r\n", chunk)
        if not data:
            return b""
        if self.line_limit > 0:
            data = self._fold(data)
        body = data.replace(b"\n.", b"\n..")   # RFC 5321 §4.5.2
        if self._line_start and body[:1] == b".":
            body = b"." + body
        self._line_start = body.endswith(b"\n")
        return body

    def _fold(self, data: bytes) -> bytes:
        limit = self.line_limit
        lines = data.split(b"\n")
        if self._column + max(map(len, lines)) <= limit:   # the usual case: nothing to break
            self._column = self._column + len(lines[0]) if len(lines) == 1 else len(lines[-1])
            return data
        out = []
        for index, line in enumerate(lines):
            ends_line = index < len(lines) - 1
            cr = b"\r" if ends_line and line.endswith(b"\r") else b""
            text = line[:-1] if cr else line
            column = self._column if index == 0 else 0
            pieces = bytearray()
            while column + len(text) > limit:
                cut = max(limit - column, 0)
                pieces += text[:cut] + b"\r\n "
                text = text[cut:]
                column = 1
            pieces += text + cr
            out.append(bytes(pieces))
            self._column = column + len(text)   # the last piece leaves the open line's length
        return b"\n".join(out)

    def finish(self) -> bytes:
        tail = b""
        if self._pending_cr:
            tail = b"\r"
            self._pending_cr = False
            self._line_start = False
        if not self._line_start:
            tail += b"\r\n"
        return tail + b".\r\n"


def encode_all(content: bytes, line_limit: int = 0) -> bytes:
    encoder = DataEncoder(line_limit)
    return encoder.encode(content) + encoder.finish()
