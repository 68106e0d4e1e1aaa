"""The sans-IO IMAP server connection: bytes in → Command events; continuation requests and
protocol errors out (RFC 3501 §2.2, §4.3, §5.5, §7.5; RFC 7888 LITERAL+/LITERAL-).

Framing: a command is a line, and when a line ends in a literal marker `{n}`, `{n+}` or
`~{n}` the next n bytes are literal data after which the command line continues (RFC 3501
§4.3). A synchronising literal gets a `+ OK` continuation request first (§7.5), unless the
command is already known to be refused, in which case the refusal is sent instead and the
client will not send the data. Limits, as Dovecot 2.3 applies them (observed): a line longer
than imap_max_line_length (64k) is answered `TAG BAD Error in IMAP command X: Too long
argument` and skipped, the connection stays usable; a literal bigger than that in a command
other than APPEND is answered `* BYE Literal size too large` and the connection ends; APPEND
literals are limited by `max_append_literal` (`TAG NO [TOOBIG]`, RFC 7889 / RFC 4469 code).
With LITERAL- (RFC 7888 §5) a non-synchronising literal above 4096 bytes is `TAG BAD [TOOBIG]`.

Pipelining (RFC 3501 §5.5): commands are parsed and handed out strictly in arrival order;
the session runs them one at a time, which is always a valid serialisation. After STARTTLS,
COMPRESS, AUTHENTICATE and IDLE the machine pauses (no further parsing) until the session
calls `resume()`: after STARTTLS/COMPRESS the buffered plaintext must be discarded
(`resume(discard=True)`, the STARTTLS command-injection defence), and AUTHENTICATE/IDLE
continue in line mode (`expect_line()` → LineReceived).

Dovecot closes a connection after 20 BAD replies in a row (`* BYE Too many invalid IMAP
commands.`); the machine counts its own BADs and the session reports its answers through
`command_finished` (a parsed command resets the count, so a session that never reports still
gets Dovecot's behaviour for protocol-level BADs).

Invariants: `receive_data`/`next_event` never raise; every byte is either parsed, skipped
after an error, or discarded on request. Security: buffered data is bounded by the line limit
plus the largest allowed literal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from roost.proto.imap.commands import Command
from roost.proto.imap.lexer import LITERAL_MARKER
from roost.proto.imap.parser import CommandError, parse_command, split_tag
from roost.proto.imap.states import STREAM_CHANGING, State, check_allowed

LITERAL_MINUS_MAX = 4096
MAX_BAD_COMMANDS = 20  # Dovecot's CLIENT_MAX_BAD_COMMANDS: consecutive BADs before BYE
TOO_MANY_BAD = b"* BYE Too many invalid IMAP commands.\r\n"
CONTINUE = b"+ OK\r\n"
_BARE_NAME = re.compile(rb"\A[^ ]+ (?:UID )?([A-Za-z]+)", re.I)

_NONE_ENABLED: frozenset[str] = frozenset()  # shared by every connection


@dataclass(frozen=True)
class Limits:
    max_line_length: int = 65536            # Dovecot imap_max_line_length
    max_literal: int = 65536                # literals outside APPEND
    max_append_literal: int | None = None   # message size limit for APPEND (None: none)
    literal_minus: bool = False             # advertise LITERAL- instead of LITERAL+
    max_literals: int = 1000                # literals per command


@dataclass(frozen=True)
class CommandReceived:
    command: Command


@dataclass(frozen=True)
class ContinuationRequest:
    data: bytes = CONTINUE


@dataclass(frozen=True)
class ProtocolError:
    """Send `reply`; when `fatal`, close the connection after it."""
    reply: bytes
    fatal: bool = False


@dataclass(frozen=True)
class LineReceived:
    """A line in line mode (SASL response, IDLE's DONE), without its CRLF."""
    line: bytes = field(repr=False)


class _Need:
    def __repr__(self) -> str:
        return "NEED_DATA"


class _Paused:
    def __repr__(self) -> str:
        return "PAUSED"


NEED_DATA = _Need()
PAUSED = _Paused()


class ImapConnection:
    def __init__(self, limits: Limits = Limits(), state: State = State.NOT_AUTHENTICATED):
        self.limits = limits
        self.state = state
        self.utf8 = False                  # UTF8=ACCEPT enabled (RFC 6855 §3)
        self.enabled: frozenset[str] = _NONE_ENABLED  # ENABLEd extensions (RFC 5161)
        self._buffer = bytearray()
        self._segments: list[bytes] = []
        self._literals: list[bytes] = []
        self._literal_need: int | None = None
        self._skip_bytes = 0               # literal bytes of a refused command still to drop
        self._skip_line = False            # drop through the next LF
        self._line_mode = False
        self._paused = False
        self._closed = False
        self._bad_in_a_row = 0

    # -- session controls ---------------------------------------------------------------
    def expect_line(self) -> None:
        """Deliver the next line as LineReceived (SASL exchange, IDLE) and resume parsing."""
        self._line_mode = True
        self._paused = False

    def resume(self, discard: bool = False) -> None:
        """Continue parsing after a stream-changing command; discard buffered bytes when the
        stream changed underneath (STARTTLS, COMPRESS)."""
        self._paused = False
        self._line_mode = False
        if discard:
            self._buffer.clear()

    def take_buffered(self) -> bytes:
        """Bytes received but not parsed (handed to a decompressor after COMPRESS)."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def command_finished(self, bad: bool) -> ProtocolError | None:
        """Report how the session answered a CommandReceived: a BAD counts towards the limit
        of consecutive BADs (Dovecot: 20, then `* BYE Too many invalid IMAP commands.` and
        the connection closes), anything else resets it. Returns the BYE to send, if any."""
        if not bad:
            self._bad_in_a_row = 0
            return None
        self._bad_in_a_row += 1
        if self._bad_in_a_row >= MAX_BAD_COMMANDS:
            self._closed = True
            return ProtocolError(TOO_MANY_BAD, fatal=True)
        return None

    def _error(self, reply: bytes, fatal: bool = False) -> ProtocolError:
        """A reply produced here; BADs count like the session's (command_finished)."""
        if not fatal:
            limit = self.command_finished(bad=b" BAD " in reply.split(b"\r\n", 1)[0])
            if limit is not None:
                return ProtocolError(reply + limit.reply, fatal=True)
        return ProtocolError(reply, fatal)

    # -- input ----------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if not self._closed:
            self._buffer += data

    def next_event(self):
        while True:
            if self._closed:
                return NEED_DATA
            if self._paused:
                return PAUSED
            if self._skip_bytes:
                drop = min(self._skip_bytes, len(self._buffer))
                del self._buffer[:drop]
                self._skip_bytes -= drop
                if self._skip_bytes:
                    return NEED_DATA
                continue
            if self._skip_line:
                newline = self._buffer.find(b"\n")
                if newline < 0:
                    self._buffer.clear()
                    return NEED_DATA
                del self._buffer[:newline + 1]
                self._skip_line = False
                continue
            if self._literal_need is not None:
                if len(self._buffer) < self._literal_need:
                    return NEED_DATA
                self._literals.append(bytes(self._buffer[:self._literal_need]))
                del self._buffer[:self._literal_need]
                self._literal_need = None
                continue
            event = self._line()
            if event is not None:
                return event

    def _line(self):
        newline = self._buffer.find(b"\n")
        used = sum(len(s) for s in self._segments)
        if newline < 0:
            if used + len(self._buffer) > self.limits.max_line_length:
                return self._too_long()
            return NEED_DATA
        line = bytes(self._buffer[:newline])
        del self._buffer[:newline + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if used + len(line) > self.limits.max_line_length:
            self._skip_line = False
            return self._too_long(line)
        if self._line_mode:
            self._line_mode = False
            self._paused = True  # the session decides: another line (expect_line) or resume
            return LineReceived(line)
        marker = LITERAL_MARKER.search(line)
        if marker is not None:
            return self._literal_start(line, marker)
        self._segments.append(line)
        return self._complete()

    def _first_line(self) -> bytes:
        return self._segments[0] if self._segments else b""

    def _too_long(self, line: bytes | None = None):
        first = self._first_line() or (line if line is not None else bytes(self._buffer[:200]))
        tag, name = split_tag(first)
        if line is None:
            self._buffer.clear()
            self._skip_line = True
        self._reset()
        if tag is None:
            return self._error(b"* BAD Error in IMAP command: Too long line\r\n")
        label = (name or "").upper()
        return self._error(f"{tag} BAD Error in IMAP command {label}: Too long argument\r\n".encode())

    def _literal_start(self, line: bytes, marker):
        size = int(marker.group(2))
        non_sync = marker.group(3) == b"+"
        self._segments.append(line)
        first = self._first_line()
        tag, name = split_tag(first)
        refusal = self._early_refusal(tag, name)
        if refusal is not None:
            self._reset()
            if non_sync:
                self._skip_bytes = size
                self._skip_line = True
            return self._error(refusal.reply())
        is_append = bool(name) and name.upper() == "APPEND"
        if len(self._literals) >= self.limits.max_literals:
            return self._refuse_literal(tag, name, size, non_sync, b"Too many literals")
        if is_append:
            limit = self.limits.max_append_literal
            if limit is not None and size > limit:
                self._reset()
                if non_sync:
                    self._skip_bytes = size
                    self._skip_line = True
                return self._error(f"{tag} NO [TOOBIG] Mail too large\r\n".encode())
        elif size > self.limits.max_literal:
            self._closed = True
            return ProtocolError(b"* BYE Literal size too large\r\n", fatal=True)
        if non_sync and self.limits.literal_minus and size > LITERAL_MINUS_MAX:
            self._reset()
            self._skip_bytes = size
            self._skip_line = True
            return self._error(f"{tag} BAD [TOOBIG] Non-synchronizing literal too large\r\n".encode())
        self._literal_need = size
        if non_sync:
            return None
        return ContinuationRequest()

    def _refuse_literal(self, tag, name, size, non_sync, reason: bytes):
        self._reset()
        if non_sync:
            self._skip_bytes = size
            self._skip_line = True
        return self._error(f"{tag or '*'} BAD ".encode() + reason + b"\r\n")

    def _early_refusal(self, tag: str | None, name: str | None) -> CommandError | None:
        """A command refused by tag/name/state alone, before its literal is requested."""
        if tag is None:
            return CommandError(None, "Error in IMAP tag: Invalid tag")
        if not name or not name.isalpha():
            return CommandError(tag, "Error in IMAP command: Invalid command name")
        upper = name.upper()
        if upper == "UID":
            match = _BARE_NAME.match(self._first_line())
            upper = match.group(1).decode().upper() if match else upper
        refusal = check_allowed(upper, self.state)
        if refusal is None:
            return None
        text = refusal if refusal == "No mailbox selected" else f"Error in IMAP command {upper}: {refusal}"
        return CommandError(tag, text)

    def _complete(self):
        segments, literals = self._segments, self._literals
        self._reset()
        try:
            command = parse_command(segments, literals, self.state, self.utf8, self.enabled)
        except CommandError as error:
            return self._error(error.reply())
        self._bad_in_a_row = 0  # parsed: a BAD from the session counts via command_finished
        if command.name in STREAM_CHANGING:
            self._paused = True
        if command.name == "LOGOUT":
            self._paused = True
        return CommandReceived(command)

    def _reset(self) -> None:
        self._segments = []
        self._literals = []
        self._literal_need = None
