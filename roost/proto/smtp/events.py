"""Events the SMTP/LMTP server machine hands to its caller (roost.proto.smtp.machine).

Every event that is a client command needs exactly one `machine.reply(...)` before the next
command event (DataContent and BdatStart need none). `pipelined` is True when more client
bytes were already waiting behind the command (RFC 2920 §3.1 batching; Postfix's
reject_unauth_pipelining looks at it).

Invariants: events are immutable values. Security: text fields hold client input verbatim;
log them through roost.log (which sanitizes), never into replies unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.proto.smtp.command import MailParams, RcptParams
from roost.proto.smtp.reply import Reply


@dataclass(frozen=True)
class Helo:
    verb: str  # "HELO" | "EHLO" | "LHLO"
    name: str
    pipelined: bool = False


@dataclass(frozen=True)
class Mail:
    address: str  # without <>; "" for the null sender
    params: MailParams = field(default_factory=MailParams)
    pipelined: bool = False


@dataclass(frozen=True)
class Rcpt:
    address: str
    params: RcptParams = field(default_factory=RcptParams)
    pipelined: bool = False


@dataclass(frozen=True)
class Data:
    pipelined: bool = False


@dataclass(frozen=True)
class DataContent:
    """A piece of message content (dot-unstuffed, CRLF lines); no reply. `crlf_only`: every
    CR in `data` is the first half of a CRLF (so deleting the CRs gives LF line ends, what
    replacing each CRLF by LF gives, at a fraction of the cost); False when unknown."""
    data: bytes
    crlf_only: bool = False


@dataclass(frozen=True)
class DataEnd:
    """`<CRLF>.<CRLF>` seen: reply with the queue result (LMTP: one reply per recipient)."""
    size: int
    bare_newline: bool  # a bare LF was seen (smtpd_forbid_bare_newline = reject answers it)


@dataclass(frozen=True)
class BdatStart:
    """A BDAT chunk begins (RFC 3030 §2); DataContent pieces follow, then BdatEnd. No reply."""
    size: int
    last: bool
    first: bool  # the first chunk of this transaction


@dataclass(frozen=True)
class BdatEnd:
    """The chunk was read: reply 250 (with `Ok: N bytes` / the queue result when last)."""
    size: int
    last: bool
    total: int  # bytes of all chunks so far


@dataclass(frozen=True)
class Rset:
    pipelined: bool = False


@dataclass(frozen=True)
class Noop:
    pipelined: bool = False


@dataclass(frozen=True)
class Quit:
    pipelined: bool = False


@dataclass(frozen=True)
class Vrfy:
    argument: str
    address: str  # the argument without <>
    pipelined: bool = False


@dataclass(frozen=True)
class Etrn:
    domain: str
    pipelined: bool = False


@dataclass(frozen=True)
class StartTls:
    pipelined: bool = False


@dataclass(frozen=True)
class Auth:
    mechanism: str  # upper case
    initial_response: str | None  # base64 text as sent ("=" for an empty one), None without
    pipelined: bool = False


@dataclass(frozen=True)
class AuthResponse:
    """One client line during an AUTH exchange (base64, or "*" to cancel)."""
    text: str


@dataclass(frozen=True)
class ProtocolError:
    """The machine found a syntax or sequence error: send `reply` (machine.reply) as is.
    `fatal` replies (421/521) close the session after being sent."""
    reply: Reply
    verb: str = "unknown"  # lower-case command name for the disconnect statistics
    fatal: bool = False


@dataclass(frozen=True)
class ConnectionClosed:
    """The client closed its side (EOF)."""
    during: str  # Postfix's "lost connection after X" word: CONNECT, EHLO, MAIL, DATA...


Event = (Helo | Mail | Rcpt | Data | DataContent | DataEnd | BdatStart | BdatEnd | Rset | Noop | Quit
         | Vrfy | Etrn | StartTls | Auth | AuthResponse | ProtocolError | ConnectionClosed)
