"""Command-line framing for POP3: bytes in, whole lines out, with a hard length limit.

RFC 1939 §3: commands are lines ending in CRLF; RFC 2449 §4 allows 255 octets, Dovecot reads
more and these limits are Dovecot 2.3.19's, observed: pop3-login takes a line of up to 1034
octets with its CRLF (LOGIN_LINE_MAX), the pop3 process 2048 (SESSION_LINE_MAX), an AUTH
command or SASL response up to 8192 octets of base64 (SASL_LINE_MAX). As in Dovecot, a line
ends at LF and one CR before it is dropped (`NOOP\\r\\r\\n` is the command `NOOP\\r`); a NUL
ends the command text (Dovecot handles lines as C strings).

Invariants: never buffers more than `limit` octets without an LF; after an overflow the
reader stays overflowed (the connection is to be closed); `take_pending()` hands back the
unread bytes (STLS discards them: RFC 2595 §4, no plaintext command survives the TLS start).
Security: bounded memory per connection whatever the peer sends.
"""

from __future__ import annotations

from dataclasses import dataclass

LOGIN_LINE_MAX = 1034
SESSION_LINE_MAX = 2048
LOGIN_ARGS_MAX = 1024
SASL_LINE_MAX = 8192 + 2


@dataclass(frozen=True)
class Overflow:
    """No LF within the limit: Dovecot answers and disconnects."""
    limit: int


class LineReader:
    """`long_prefix`/`long_limit`: a line starting with that prefix (any case) may be longer
    (pop3-login reads an AUTH command's initial response into its larger SASL buffer)."""

    def __init__(self, limit: int = LOGIN_LINE_MAX, *, long_prefix: bytes = b"",
                 long_limit: int = 0, args_limit: int = 0) -> None:
        self.limit = limit
        # pop3-login also refuses a line whose arguments (after the first space) are longer
        # than LOGIN_ARGS_MAX octets (observed: `X ` + 1025 octets is "buffer full").
        self.args_limit = args_limit
        self.long_prefix = long_prefix.upper()
        self.long_limit = long_limit
        self._buffer = bytearray()
        self._scanned = 0  # bytes already known to hold no LF
        self.overflowed = False

    def feed(self, data: bytes) -> None:
        if not self.overflowed:
            self._buffer += data

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def take_pending(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return data

    def next_line(self) -> bytes | Overflow | None:
        """The next line without its end (and cut at NUL), an Overflow, or None (need data)."""
        if self.overflowed:
            return Overflow(self.limit)
        limit = self.limit
        if self.long_prefix and \
                bytes(self._buffer[:len(self.long_prefix)]).upper() == self.long_prefix:
            limit = max(limit, self.long_limit)
        end = self._buffer.find(b"\n", self._scanned)
        if end < 0 or end + 1 > limit:
            if end >= 0 or len(self._buffer) >= limit:
                self.overflowed = True
                self._buffer.clear()
                return Overflow(limit)
            self._scanned = len(self._buffer)
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 1]
        self._scanned = 0
        if line.endswith(b"\r"):
            line = line[:-1]
        if self.args_limit and limit == self.limit:
            space = line.find(b" ")
            if space >= 0 and len(line) - space - 1 > self.args_limit:
                self.overflowed = True
                self._buffer.clear()
                return Overflow(limit)
        nul = line.find(b"\0")
        return line if nul < 0 else line[:nul]


def split_command(line: bytes, *, skip_spaces: bool = True) -> tuple[str, str]:
    """(NAME upper-cased, arguments) split at the first space, as Dovecot does: the name is
    everything before it (`list\\tx` is the command `LIST\\tX`); the pop3 process skips
    leading spaces of the arguments (`LIST  1` is `LIST 1`), pop3-login does not."""
    text = line.decode("utf-8", "surrogateescape")
    name, _space, args = text.partition(" ")
    return ascii_upper(name), args.lstrip(" ") if skip_spaces else args


def ascii_upper(text: str) -> str:
    """Upper case for ASCII letters only (Dovecot's i_toupper), other characters kept."""
    if text.isascii():
        return text.upper()
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in text)
