"""SMTP replies as values: `Reply(550, "5.1.1", "<x@y>: Recipient address rejected: ...")`.

RFC 5321 §4.2 (reply lines: three digits, then `-` on every line but the last, else a space),
RFC 3463 / RFC 2034 (enhanced status codes `class.subject.detail` after the code when
ENHANCEDSTATUSCODES is in force). Postfix's reply texts are built by the caller; this module
only formats and validates.

Invariants: a Reply is immutable; `lines()` always yields at least one CRLF-terminated line;
the enhanced code's class digit equals the reply code's first digit (checked at creation).
Security: reply text never contains CR or LF from client input (newlines split into lines,
other control characters replaced by `?`), so a client cannot inject extra reply lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str | None  # "5.1.1"; None for replies without one (220, 221 on HELO sessions)
    text: str

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code out of range: {self.code}")
        if self.enhanced is not None:
            if not _ENHANCED.match(self.enhanced) or self.enhanced[0] != str(self.code)[0]:
                raise ValueError(f"enhanced status {self.enhanced!r} does not fit {self.code}")

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500

    def lines(self, enhanced_codes: bool = True) -> list[bytes]:
        """Wire lines (RFC 5321 §4.2.1 multiline form), each ending in CRLF."""
        parts = self.text.split("\n") if self.text else [""]
        prefix = f"{self.enhanced} " if (enhanced_codes and self.enhanced) else ""
        out = []
        for index, part in enumerate(parts):
            sep = " " if index == len(parts) - 1 else "-"
            clean = _CONTROL.sub("?", part.rstrip("\r"))
            out.append(f"{self.code}{sep}{prefix}{clean}".rstrip(" ").encode("utf-8", "replace") + b"\r\n"
                       if clean or prefix else f"{self.code}{sep}".encode() + b"\r\n")
        return out

    def to_bytes(self, enhanced_codes: bool = True) -> bytes:
        return b"".join(self.lines(enhanced_codes))

    def __str__(self) -> str:
        head = f"{self.code} {self.enhanced} " if self.enhanced else f"{self.code} "
        return head + self.text.replace("\n", " ")


class ReplyError(Exception):
    """Raised anywhere while handling a command; written at the command boundary."""

    def __init__(self, reply: Reply):
        super().__init__(str(reply))
        self.reply = reply
