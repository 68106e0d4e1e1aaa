"""The DATA content decoder: end-of-data detection, dot-unstuffing and bare-newline handling.

RFC 5321 §4.1.1.4 (the message ends with `<CRLF>.<CRLF>`), §4.5.2 (transparency: a leading
dot is removed from every line), §2.3.8 (lines end in CRLF). Bare newlines follow Postfix
3.9's `smtpd_forbid_bare_newline`: `normalize` (and `no`, which is just as safe here)
accept a bare LF as a line end and store it as CRLF; `reject` flags the message so that the
caller answers `550 5.5.2 host Error: bare <LF> received` after the end of data. In every
mode only `<CRLF>.<CRLF>` ends the message: the "SMTP smuggling" forms `<LF>.<LF>`,
`<LF>.<CRLF>`, `<CR>.<CR>` and `<CRLF>.<CR>` stay message content.

Work is done over whole buffers with regular expressions and bytes.find/replace/count (C
speed), never per line in Python: a 100 MB message costs a handful of passes over memory.
Usual content (CRLF lines, no line starting with ".") takes two searches: `_SPECIAL` finds
the first "\n." (the end marker contains one) or LF without CR before it, `_BARE_CR` a CR
without LF after it; only a piece where either is found pays for the counting and replacing.

Invariants: at most END_MARK_LENGTH - 1 input bytes are held back between calls; the output
never contains the end marker's last three bytes; a CRLF pair is never split between two
output pieces (so bare-LF detection is exact across chunk boundaries); every LF of the
content returned ends a CRLF (bare ones are made CRLF); `crlf_only` is True exactly when
every CR of the piece last returned starts a CRLF (a consumer storing LF lines may then
delete the CRs instead of replacing each CRLF, and count lines by the CRs deleted).
Security: the end of data is recognised exactly where RFC 5321 puts it, which is what stops
a client from smuggling a second message past a filter that parses differently.
"""

from __future__ import annotations

import re

END_MARK = b"\r\n.\r\n"
END_MARK_LENGTH = len(END_MARK)
# an LF that starts "\n." (unstuffing, and the end marker) or that follows a byte other than
# CR (a bare LF; one at offset 0 is not seen: the lookbehind needs a byte before it); one
# regex with a literal first byte beats bytes.find(b"\n.") and counting LF and CRLF
_SPECIAL = re.compile(rb"\n(?:\.|(?<=[^\r]\n))")
_BARE_CR = re.compile(rb"\r[^\n]")  # (a CR as last byte is tested apart)


class DataDecoder:
    """Feed raw bytes after `354`; get message content back, and learn where it ended."""

    __slots__ = ("_pending", "_at_line_start", "_after_crlf", "size", "bare_newline_seen", "done",
                 "crlf_only")

    def __init__(self) -> None:
        self._pending = b""
        self._at_line_start = True  # the last raw byte consumed was LF (or nothing yet)
        self._after_crlf = True  # ... and it ended a real CRLF: only then may "." end the data
        self.size = 0  # content bytes handed out so far
        self.bare_newline_seen = False
        self.done = False
        self.crlf_only = False  # of the last content returned: no CR but in a CRLF

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """(content, leftover): leftover is None while the message goes on, else the bytes
        that followed `<CRLF>.<CRLF>` (the next pipelined commands)."""
        buf = self._pending + data if self._pending else bytes(data)
        self._pending = b""
        if self._after_crlf:
            if buf[:3] == b".\r\n":  # §4.1.1.4: "." alone on the line right after a CRLF
                self.done = True
                return b"", buf[3:]
            if len(buf) < 3 and b".\r\n".startswith(buf):
                self._pending = buf
                return b"", None
        special = _SPECIAL.search(buf)
        if special is None:  # no "\n.", so no end marker either
            first = end = len(buf)
        else:
            first = special.start()
            # an end marker at e has its "\n." at e + 1, so e + 1 >= first
            end = buf.find(END_MARK, max(first - 1, 0))
        if 0 <= end < len(buf):
            self.done = True
            return self._content(buf[:end + 2], first), buf[end + END_MARK_LENGTH:]
        cut = max(len(buf) - (END_MARK_LENGTH - 1), 0)
        if cut and buf[cut - 1] == 0x0D:  # keep CR LF together in one piece
            cut -= 1
        self._pending = buf[cut:]
        return self._content(buf[:cut], first), None

    def _content(self, raw: bytes, special: int) -> bytes:
        """`special`: offset of the first _SPECIAL match in the buffer that `raw` is a
        prefix of (that buffer's length when there is none)."""
        if not raw:
            return b""
        piece = raw[1:] if self._at_line_start and raw[0] == 0x2E else raw  # §4.5.2
        length = len(raw)
        if ((special >= length or special == length - 1 and raw[-2:] == b"\r\n")
                and piece[:1] != b"\n" and piece[-1:] != b"\r" and _BARE_CR.search(piece) is None):
            # no "\n." in it (the match at length - 1 is "\r\n" + a "." beyond the piece),
            # no bare LF, no bare CR: what the general case below would return unchanged
            self.crlf_only = True
        else:
            if b"\n." in piece:  # §4.5.2 for every other line start, CRLF or bare LF
                piece = piece.replace(b"\n.", b"\n")
            newlines = piece.count(b"\n")
            if newlines and newlines != piece.count(b"\r\n"):
                self.bare_newline_seen = True
                piece = piece.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            # every LF now follows a CR, so each CR beyond the `newlines` CRLF pairs is a bare one
            self.crlf_only = piece.count(b"\r") == newlines
        self._at_line_start = raw[-1] == 0x0A
        self._after_crlf = raw[-2:] == b"\r\n"
        self.size += len(piece)
        return piece
