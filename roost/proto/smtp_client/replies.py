"""Parsing SMTP/LMTP server replies on the client side, fed any number of bytes at a time.

RFC 5321 §4.2: a reply is one or more lines `CODE-text` ending with a line `CODE text` (or
just `CODE`); every line of one reply carries the same three-digit code, 2xx..5xx
(§4.2.1, first digit 2-5). RFC 3463 / RFC 2034 §4: an enhanced status code `c.s.d` may open
the text of each line; it is taken only when its class digit equals the reply's (a server
writing `250 5.0.0` is not believed). Lines end with CRLF; a bare LF is accepted as servers
in the wild send it (RFC 5321 §4.1.1.4 asks clients to be liberal here).

Invariants: `feed` never raises; a malformed line turns the parser into the failed state
(`error` holds a readable reason) and no further reply is produced, since after garbage the
reply stream cannot be resynchronised. Limits: MAX_LINE bytes per line, MAX_LINES per reply.
Security: reply text is server-controlled; control characters are replaced by `?` so it can
be logged and quoted in bounces without forging lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 2048        # Postfix's line_length_limit for what it reads
MAX_LINES = 200        # lines in one multiline reply
_ENHANCED = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?: |\Z)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ServerReply:
    code: int
    enhanced: str | None          # "5.1.1" when the server sent one, else None
    lines: tuple[str, ...]        # text of each line, after `CODE-`/`CODE ` (enhanced code kept)

    @property
    def dsn(self) -> str:
        """The enhanced code, or one derived from the reply code (RFC 3463 §3: X.0.0)."""
        return self.enhanced or f"{str(self.code)[0]}.0.0"

    @property
    def text(self) -> str:
        """The whole reply on one line as Postfix quotes it: `550-5.1.1 a 550 5.1.1 b`."""
        parts = []
        for index, line in enumerate(self.lines):
            sep = " " if index == len(self.lines) - 1 else "-"
            parts.append(f"{self.code}{sep}{line}".rstrip())
        return " ".join(parts)

    @property
    def message(self) -> str:
        """The text of every line without code and enhanced code, joined by spaces."""
        out = []
        for line in self.lines:
            match = _ENHANCED.match(line)
            out.append(line[match.end():] if match and match.group(1) == str(self.code)[0] else line)
        return " ".join(part for part in out if part)


class ReplyParser:
    """Bytes in, ServerReply values out (`feed(data) -> list[ServerReply]`)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._code: int | None = None
        self._lines: list[str] = []
        self.error: str | None = None

    @property
    def pending(self) -> bool:
        """Whether part of a reply has been read (bytes or continuation lines)."""
        return bool(self._buffer or self._lines)

    def feed(self, data: bytes) -> list[ServerReply]:
        if self.error is not None:
            return []
        self._buffer += data
        replies: list[ServerReply] = []
        while self.error is None:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_LINE:
                    self.error = "server reply line too long"
                break
            raw = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            if len(raw) > MAX_LINE:
                self.error = "server reply line too long"
                break
            reply = self._line(raw[:-1] if raw.endswith(b"\r") else raw)
            if reply is not None:
                replies.append(reply)
        return replies

    def _fail(self, reason: str) -> None:
        self.error = reason

    def _line(self, raw: bytes) -> ServerReply | None:
        text = _CONTROL.sub("?", raw.decode("utf-8", "replace"))
        # RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39
        if len(text) < 3 or not text[:3].isdigit() or text[0] not in "2345" or text[1] not in "012345":
            self._fail(f"malformed server reply: {text[:80]!r}")
            return None
        code = int(text[:3])
        separator = text[3:4]
        if separator not in ("", " ", "-"):
            self._fail(f"malformed server reply: {text[:80]!r}")
            return None
        if self._code is not None and code != self._code:
            self._fail(f"reply code changed inside a multiline reply: {text[:80]!r}")
            return None
        self._code = code
        self._lines.append(text[4:])
        if len(self._lines) > MAX_LINES:
            self._fail("server reply has too many lines")
            return None
        if separator == "-":
            return None
        lines, self._lines, self._code = tuple(self._lines), [], None
        match = _ENHANCED.match(lines[0])
        enhanced = None
        if match and match.group(1) == str(code)[0]:
            enhanced = f"{match.group(1)}.{int(match.group(2))}.{int(match.group(3))}"
        return ServerReply(code, enhanced, lines)


def parse_ehlo_keywords(reply: ServerReply) -> dict[str, str]:
    """EHLO keywords (RFC 5321 §4.1.1.1: every line after the first), upper-cased → parameters.
    `AUTH=LOGIN PLAIN` (the old form) counts as AUTH."""
    keywords: dict[str, str] = {}
    for line in reply.lines[1:]:
        name, _, params = line.strip().partition(" ")
        if "=" in name and name.upper().startswith("AUTH="):
            name, params = "AUTH", name[5:] + " " + params
        name = name.upper()
        if not name:
            continue
        if name == "AUTH" and name in keywords:
            params = keywords[name] + " " + params
        keywords[name] = params.strip()
    return keywords
