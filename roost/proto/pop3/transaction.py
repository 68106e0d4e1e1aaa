"""The TRANSACTION state of a POP3 session (RFC 1939 §5) over a fixed maildrop listing.

The maildrop is the list of messages as the session began (sizes with CRLF line ends and
UIDL strings); message numbers never change during the session (§4). This machine answers
STAT, LIST, UIDL (RFC 1939 §7), DELE, RSET, NOOP, CAPA (RFC 2449 §5) itself and asks the
caller to stream RETR and TOP (`Fetch`) and to carry out QUIT's UPDATE state (`Quit`: §6,
deletions happen only there; a session that ends any other way deletes nothing).
Reply texts and the bad-command limit (more than 20 bad commands in a row disconnect) are
Dovecot 2.3.19's; RETR marks a message to get `\\Seen` (Dovecot's pop3_no_flag_updates=no).

Invariants: a command line gives exactly one event; deleted messages are refused by every
command that names them ("Message is deleted."); STAT/LIST never count deleted messages.
Security: arguments are parsed strictly (roost.proto.pop3.arguments); a client cannot make
the machine touch a message outside the listing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.auth.variables import expand_counters
from roost.proto.pop3 import replies
from roost.proto.pop3.arguments import parse_line_count, parse_number
from roost.proto.pop3.lines import split_command
from roost.proto.pop3.replies import CRLF, PopReply

MAX_BAD_COMMANDS = 20


@dataclass(frozen=True)
class Listed:
    """One message of the maildrop as the session sees it."""
    size: int  # octets with CRLF line ends (what LIST and STAT report)
    uidl: str  # RFC 1939 §7 unique-id
    seen: bool = False  # already \Seen in the store when the session began


@dataclass(frozen=True)
class Send:
    data: bytes
    bad: bool = False  # counted as a bad command


@dataclass(frozen=True)
class Fetch:
    """Stream message `index` (0-based): `header` first, then the dot-stuffed message
    (`body_lines` None: all of it, RETR; else TOP's header plus that many body lines)."""
    index: int
    body_lines: int | None
    header: bytes


@dataclass(frozen=True)
class Quit:
    """Enter the UPDATE state: expunge `deleted`, flag `seen` \\Seen, then answer."""
    deleted: tuple[int, ...]
    seen: tuple[int, ...]


@dataclass(frozen=True)
class Close:
    """Send `data` and disconnect with `reason` (Dovecot's log text)."""
    data: bytes
    reason: str


Event = Send | Fetch | Quit | Close


@dataclass
class Transaction:
    messages: list[Listed]
    deleted: set[int] = field(default_factory=set)
    seen: set[int] = field(default_factory=set)  # RETR'd this session, not \Seen before
    bad_counter: int = 0
    top_count: int = 0
    retr_count: int = 0
    top_bytes: int = 0  # octets sent for TOP (reply line and message), kept by the caller
    retr_bytes: int = 0

    @property
    def total_size(self) -> int:
        return sum(message.size for message in self.messages)

    @property
    def deleted_size(self) -> int:
        return sum(self.messages[index].size for index in self.deleted)

    def command(self, line: bytes) -> Event:
        name, args = split_command(line)
        handler = _COMMANDS.get(name)
        event = handler(self, args) if handler else Send(replies.unknown_command(name).wire(),
                                                         bad=True)
        if isinstance(event, Send) and event.bad:
            self.bad_counter += 1
            if self.bad_counter > MAX_BAD_COMMANDS:
                return Close(event.data + replies.TOO_MANY_BAD.wire(), "Too many bad commands.")
        else:
            self.bad_counter = 0
        return event

    # --- helpers -----------------------------------------------------------------------

    def _message(self, args: str, *, then_space: bool = False) -> tuple[int, str] | Send:
        parsed = parse_number(args, then_space=then_space)
        if isinstance(parsed, PopReply):
            return Send(parsed.wire(), bad=True)
        number, rest = parsed
        if number == 0 or number > len(self.messages):
            return Send(replies.no_such_message(number).wire(), bad=True)
        if number - 1 in self.deleted:
            return Send(replies.MESSAGE_IS_DELETED.wire(), bad=True)
        return number - 1, rest

    def _live(self) -> list[int]:
        return [index for index in range(len(self.messages)) if index not in self.deleted]

    # --- commands (RFC 1939 §5, RFC 2449 §5) ------------------------------------------

    def capa(self, args: str) -> Event:
        return Send(replies.capabilities(authenticated=True, stls=False, user=False,
                                         mechanisms=()))

    def stat(self, args: str) -> Event:
        live = self._live()
        return Send(replies.ok(f"{len(live)} {self.total_size - self.deleted_size}").wire())

    def list(self, args: str) -> Event:
        if not args:
            live = self._live()
            lines = [f"{index + 1} {self.messages[index].size}".encode() for index in live]
            return Send(replies.ok(f"{len(live)} messages:").wire() + replies.multiline(lines))
        found = self._message(args)
        if isinstance(found, Send):
            return found
        index = found[0]
        return Send(replies.ok(f"{index + 1} {self.messages[index].size}").wire())

    def uidl(self, args: str) -> Event:
        if not args:
            lines = [f"{index + 1} {self.messages[index].uidl}".encode()
                     for index in self._live()]
            return Send(replies.OK_EMPTY.wire() + replies.multiline(lines))
        found = self._message(args)
        if isinstance(found, Send):
            return found
        index = found[0]
        return Send(replies.ok(f"{index + 1} {self.messages[index].uidl}").wire())

    def dele(self, args: str) -> Event:
        found = self._message(args)
        if isinstance(found, Send):
            return found
        self.deleted.add(found[0])
        return Send(replies.DELETED_OK.wire())

    def rset(self, args: str) -> Event:
        self.deleted.clear()
        self.seen.clear()
        return Send(replies.OK_EMPTY.wire())

    def noop(self, args: str) -> Event:
        return Send(replies.NOOP_OK.wire())

    def retr(self, args: str) -> Event:
        found = self._message(args)
        if isinstance(found, Send):
            return found
        index = found[0]
        self.retr_count += 1
        if not self.messages[index].seen:
            self.seen.add(index)
        return Fetch(index, None, replies.octets(self.messages[index].size).wire())

    def top(self, args: str) -> Event:
        found = self._message(args, then_space=True)
        if isinstance(found, Send):
            return found
        index, rest = found
        count = parse_line_count(rest)
        if isinstance(count, PopReply):
            return Send(count.wire(), bad=True)
        self.top_count += 1
        return Fetch(index, count, replies.OK_EMPTY.wire())

    def quit(self, args: str) -> Event:
        return Quit(tuple(sorted(self.deleted)), tuple(sorted(self.seen - self.deleted)))

    def quit_reply(self) -> bytes:
        return (replies.QUIT_DELETED if self.deleted else replies.QUIT_OK).wire()

    def logout_stats(self, *, deleted_done: bool) -> dict[str, int]:
        """The values of pop3_logout_format (Dovecot's %t %p %r %b %d %m %s)."""
        return {"top_count": self.top_count, "top_bytes": self.top_bytes,
                "retr_count": self.retr_count, "retr_bytes": self.retr_bytes,
                "deleted_count": len(self.deleted) if deleted_done else 0,
                "deleted_bytes": self.deleted_size if deleted_done else 0,
                "message_count": len(self.messages), "message_bytes": self.total_size}


LOGOUT_KEYS = {"t": "top_count", "p": "top_bytes", "r": "retr_count", "b": "retr_bytes",
               "d": "deleted_count", "m": "message_count", "s": "message_bytes"}
LONG_LOGOUT_KEYS = {"top_count", "top_bytes", "retr_count", "retr_bytes", "deleted_count",
                    "deleted_bytes", "message_count", "message_bytes", "input", "output",
                    "session", "uidl_change"}


_SHORT_LOGOUT_KEYS = {"i": "input", "o": "output", "u": "uidl_change", **LOGOUT_KEYS}


def expand_logout_format(fmt: str, values: dict[str, object]) -> str:
    """pop3_logout_format (default `top=%t/%p, retr=%r/%b, del=%d/%m, size=%s`) with the
    session's values; %i/%o (bytes in/out) and %{session} when the caller gives them;
    unknown variables expand to nothing, as in Dovecot."""
    return expand_counters(fmt, {k: v for k, v in values.items() if k in LONG_LOGOUT_KEYS},
                           _SHORT_LOGOUT_KEYS, LONG_LOGOUT_KEYS)


_COMMANDS = {"CAPA": Transaction.capa, "STAT": Transaction.stat, "LIST": Transaction.list,
             "UIDL": Transaction.uidl, "DELE": Transaction.dele, "RSET": Transaction.rset,
             "NOOP": Transaction.noop, "RETR": Transaction.retr, "TOP": Transaction.top,
             "QUIT": Transaction.quit}

__all__ = ["CRLF", "Close", "Fetch", "Listed", "Quit", "Send", "Transaction"]
