"""RETR and TOP output: a message streamed through RFC 1939 §3 byte-stuffing, chunk by chunk.

RFC 1939 §3: every line of a multi-line response that begins with `.` gets one more `.`;
the response ends with `.` CRLF. §7 TOP: the header, the blank line after it, then at most
`n` lines of the body. As Dovecot's pop3 does, a bare LF is sent as CRLF and a message that
does not end with a line end gets CRLF before the final `.` (a client must never see the
terminator glued to message text). Unlike Dovecot 2.3, a `.` as the very first octet of a
message is stuffed too (RFC 1939 says "each line"; Dovecot skips the first one).

Usage: `s = DotStuffer(body_lines)`; `out = s.feed(chunk)` for each chunk read from the store
until `s.done` (TOP got its lines) or the message ends; then `s.finish()` and
`TERMINATOR`. Nothing here reads or writes: the caller streams, so a large message never
sits in memory whole.

Invariants: output never contains a line `.` CRLF before TERMINATOR; state carries across
chunk boundaries (a chunk may end between CR and LF or right after LF).
Security: message content cannot end the response early (the smuggling RFC 1939 §3 prevents).
"""

from __future__ import annotations

import re

TERMINATOR = b".\r\n"
_BARE_LF = re.compile(rb"(?<!\r)\n")
# A compiled pattern scans for its literal first octet with memchr: several times faster
# than bytes.replace with a two-octet needle (measured: 10 KB in ~4 µs against ~20 µs).
_DOT_AT_LINE_START = re.compile(rb"\n\.")


class DotStuffer:
    """`crlf_input`: the source already has CRLF line ends (the store's contract for
    open_message), so the bare-LF pass is skipped; any other input is normalised."""

    def __init__(self, body_lines: int | None = None, *, crlf_input: bool = False) -> None:
        self.crlf_input = crlf_input
        # TOP counts the blank line that ends the header as a body line (Dovecot does too).
        self.remaining = None if body_lines is None else body_lines + 1
        self.in_body = False
        self.last = b""  # last octet sent ("" before the first)
        self.done = False  # TOP: the wanted lines are out; stop reading

    def _normalise(self, chunk: bytes) -> bytes:
        if chunk[:1] == b"\n" and self.last == b"\r":
            return b"\n" + self._normalise_rest(chunk[1:])
        return self._normalise_rest(chunk)

    @staticmethod
    def _normalise_rest(data: bytes) -> bytes:
        if b"\r" not in data:  # plain LF text: one single-octet replace
            return data.replace(b"\n", b"\r\n")
        if data.count(b"\n") == data.count(b"\r\n"):  # already CRLF
            return data
        return _BARE_LF.sub(b"\r\n", data)

    def _stuff(self, data: bytes) -> bytes:
        stuffed = _DOT_AT_LINE_START.sub(b"\n..", data)
        if stuffed[:1] == b"." and self.last in (b"", b"\n"):
            stuffed = b"." + stuffed
        return stuffed

    def feed(self, chunk: bytes) -> bytes:
        if self.done or not chunk:
            return b""
        data = chunk if self.crlf_input else self._normalise(chunk)
        if self.remaining is not None:
            data = self._cut(data)
        out = self._stuff(data)
        if data:
            self.last = data[-1:]
        return out

    def _cut(self, data: bytes) -> bytes:
        """The part of `data` TOP still sends; sets `done` when the last wanted line ends."""
        position = 0
        at_line_start = self.last in (b"", b"\n")
        while position < len(data):
            if not self.in_body and at_line_start and data[position:position + 1] in (b"\r", b"\n"):
                self.in_body = True  # the blank line that ends the header (RFC 5322 §2.1)
            end = data.find(b"\n", position)
            if end < 0:
                return data
            position = end + 1
            at_line_start = True
            if self.in_body:
                self.remaining -= 1
                if self.remaining <= 0:
                    self.done = True
                    return data[:position]
        return data

    def finish(self) -> bytes:
        """What goes before TERMINATOR: CRLF when the message did not end with a line end."""
        return b"" if self.last == b"\n" else b"\r\n"


def stuff_whole(message: bytes, body_lines: int | None = None) -> bytes:
    """The complete response body for `message` (tests and small callers)."""
    stuffer = DotStuffer(body_lines)
    return stuffer.feed(message) + stuffer.finish() + TERMINATOR
