"""Streaming splitter for a message's primary header section (RFC 5322 section 2.2).

`HeaderSplitter.feed(chunk)` takes the content as received (CRLF or LF line ends, split
anywhere) and returns the logical headers completed so far (continuation lines, RFC 5322
section 2.2.3, kept with their line breaks, normalized to LF, without the final LF) and,
once the header section has ended, the rest of the chunk (the body's first bytes).

The header section ends at an empty line (which is then `separator`) or at the first line
that is neither a header field (`name:` with a name of printable ASCII without colon,
RFC 5322 section 2.2) nor a continuation; that line belongs to the body, as in Postfix.
A logical header longer than header_size_limit keeps its first header_size_limit bytes and
the excess is discarded (postconf(5) header_size_limit); `truncated` counts such headers. A
line whose colon comes later than header_size_limit bytes is not a header field.

Invariants: sans-IO; memory is bounded by header_size_limit plus one chunk; any bytes give
headers or body, never an exception.
Security: nothing from the content is interpreted here except line structure.
"""

from __future__ import annotations

import re

_HEADER_NAME = re.compile(rb"[!-9;-~]+[ \t]*:")


def header_name(header: bytes) -> str:
    """The field name of a logical header (`Subject` of `Subject: x`)."""
    return header.split(b":", 1)[0].rstrip(b" \t").decode("ascii", "replace")


def is_header_line(line: bytes) -> bool:
    return _HEADER_NAME.match(line) is not None


class HeaderSplitter:
    def __init__(self, header_size_limit: int = 102400) -> None:
        self.limit = max(1, header_size_limit)
        self.done = False
        self.separator = False       # the section ended at an empty line
        self.truncated = 0
        self._current = bytearray()  # the logical header being collected
        self._overflow = False
        self._line = bytearray()     # an incomplete physical line (bounded like a header)
        self._line_overflow = False

    def feed(self, data: bytes) -> tuple[list[bytes], bytes]:
        """(completed headers, body bytes); body bytes are b"" until the section ends."""
        headers: list[bytes] = []
        if self.done:
            return headers, data
        start = 0
        length = len(data)
        while start < length:
            newline = data.find(b"\n", start)
            if newline < 0:
                rest = data[start:]
                if len(self._line) + len(rest) > self.limit:
                    candidate = bytes(self._line) + rest
                    if not (candidate[:1] in (b" ", b"\t") and self._current) and not self._is_header(candidate):
                        # a long line that cannot be a header: the body starts here, uncut
                        self._flush(headers)
                        self._line = bytearray()
                        self.done = True
                        return headers, candidate
                self._keep_partial(rest)
                return headers, b""
            piece = data[start:newline]
            if self._line:
                # joined uncut: if the line turns out to start the body it must stay whole;
                # a header is cut to header_size_limit by _append (memory: one chunk more)
                line = bytes(self._line) + piece
                overflow = self._line_overflow or len(line) > self.limit + 2
                self._line, self._line_overflow = bytearray(), False
            else:
                line, overflow = piece, False
            ending = b"\n"
            if line.endswith(b"\r"):
                line, ending = line[:-1], b"\r\n"
            raw_end = newline + 1
            body = self._line_done(line, overflow, headers, ending)
            if body is not None:
                # The rest of this chunk (and, for a non-header line, the line itself) is body.
                prefix = b"" if self.separator else body
                return headers, prefix + data[raw_end:]
            start = raw_end
        return headers, b""

    def finish(self) -> list[bytes]:
        """End of content: the pending header (and a last line without line end)."""
        headers: list[bytes] = []
        if self.done:
            return headers
        if self._line:
            line, ending = bytes(self._line), b""
            if line.endswith(b"\r"):
                line, ending = line[:-1], b"\r"
            self._line = bytearray()
            body = self._line_done(line, self._line_overflow, headers, ending)
            if body is not None:
                self.trailing_body = body
        self._flush(headers)
        self.done = True
        return headers

    trailing_body = b""

    def _keep_partial(self, piece: bytes) -> None:
        room = self.limit + 2 - len(self._line)
        if len(piece) > room:
            piece = piece[:max(0, room)]
            self._line_overflow = True
        self._line += piece

    def _flush(self, headers: list[bytes]) -> None:
        if self._current:
            headers.append(bytes(self._current))
            self._current = bytearray()
            self._overflow = False

    def _append(self, text: bytes, overflow: bool) -> None:
        room = self.limit - len(self._current)
        if len(text) > room or overflow:
            if not self._overflow:
                self.truncated += 1
            self._overflow = True
            text = text[:max(0, room)]
        self._current += text

    def _line_done(self, line: bytes, overflow: bool, headers: list[bytes], ending: bytes) -> bytes | None:
        """Returns None to go on, or the line itself (with its line end) when it starts the body."""
        if line[:1] in (b" ", b"\t") and self._current:  # RFC 5322 section 2.2.3: folding
            self._append(b"\n" + line, overflow)
            return None
        self._flush(headers)
        if not line:  # RFC 5322 section 2.1: an empty line ends the header section
            self.done = self.separator = True
            return b""
        if self._is_header(line):
            self._append(line, overflow)
            return None
        self.done = True
        return line + ending

    def _is_header(self, line: bytes) -> bool:
        """A header field line whose colon lies within header_size_limit: a line is judged by
        its first limit + 1 bytes, so the answer is the same however the line was split into
        chunks (the rest of a longer line may not be held back to see a later colon)."""
        match = _HEADER_NAME.match(line)
        return match is not None and match.end() - 1 <= self.limit
