"""The "service not available" answer of a listener whose protocol roost does not serve yet.

- SMTP and submission (RFC 5321 §3.1, §4.2.2, §4.2.3) and LMTP (RFC 2033 §4): the greeting
  is `554 5.3.2 HOST ESMTP service not available (roost VERSION)` (`LMTP` for LMTP); the
  client should then QUIT, which gets `221 2.0.0 Bye`; every other command gets
  `503 5.5.1 Error: no service` (RFC 5321 §3.1: after a 554 greeting the server MUST wait for
  QUIT and answer other commands 503). Enhanced codes per RFC 3463 (5.3.2 system not
  accepting network messages, 5.5.1 invalid command).
- IMAP (RFC 3501 §7.1.5, RFC 5530 response code UNAVAILABLE): `* BYE [UNAVAILABLE] ...`, close.
- POP3 (RFC 1939 §4, RFC 3206 response code SYS/PERM): `-ERR [SYS/PERM] ...`, close.
- Dovecot auth and handlers roost does not know: the connection is closed.

Limits, as Postfix smtpd enforces them: `smtpd_timeout` per command (then
`421 4.4.2 HOST Error: timeout exceeded`), `line_length_limit` per command line (longer lines
get `500 5.5.2 Error: line too long`), `smtpd_hard_error_limit` answers in error (then
`421 4.7.0 HOST Error: too many errors`). A stopping server says `421 4.3.2` and closes.

Log lines follow Postfix smtpd (`connect from unknown[IP]`, `disconnect from unknown[IP]
quit=1 commands=1`), Dovecot lmtp (`Connect from IP`) and Dovecot login (`Disconnected:
service not available: user=<>, rip=IP, lip=IP`).
Invariants: memory per connection is bounded by the stream limit; every path closes.
Security: client text is never echoed back or logged, so it cannot inject replies or lines.
"""

from __future__ import annotations

import asyncio

from roost import __version__
from roost.net.server import Connection, ServiceContext

SMTP_LIKE = {"smtpd": "ESMTP", "lmtp": "LMTP"}
SMTP_VERBS = {"helo", "ehlo", "lhlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset",
              "noop", "vrfy", "expn", "etrn", "help", "quit"}
DEFAULT_TIMEOUT = 300.0
DEFAULT_LINE_LIMIT = 2048
DEFAULT_ERROR_LIMIT = 20


def make_service(context: ServiceContext):
    """Registry entry point: the connection handler answering "not available" for context.handler."""
    kind = SMTP_LIKE.get(context.handler)
    if kind is not None:
        return lambda conn: smtp_unavailable(conn, kind)
    if context.handler == "imap":
        return imap_unavailable
    if context.handler == "pop3":
        return pop3_unavailable
    return close_unavailable


def _setting(settings, kind: str, name: str, default):
    """A numeric setting, or the Postfix default when the table does not know it."""
    try:
        value = getattr(settings, kind)(name)
    except Exception:
        return default
    return value if value else default


async def _send(conn: Connection, text: str) -> None:
    conn.writer.write(text.encode("ascii") + b"\r\n")
    await conn.writer.drain()


async def read_line(reader: asyncio.StreamReader, limit: int) -> tuple[bytes, bool] | None:
    """The next line and whether it exceeded `limit` bytes; None at end of input.

    A line longer than the stream buffer is consumed and discarded piecewise, so a client
    cannot make the server buffer more than one stream limit."""
    too_long = False
    while True:
        try:
            line = await reader.readuntil(b"\n")
            break
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            await reader.readexactly(exc.consumed)
            too_long = True
    if too_long or len(line) > limit:
        return b"", True
    return line, False


async def _next_command(conn: Connection, limit: int, timeout: float):
    """A line, or "timeout" / "stopping" / None (end of input)."""
    reading = asyncio.ensure_future(read_line(conn.reader, limit))
    stopping = asyncio.ensure_future(conn.stopping.wait())
    try:
        done, _ = await asyncio.wait({reading, stopping}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if reading in done:
        return reading.result()
    reading.cancel()
    return "stopping" if stopping in done else "timeout"


def _is_dovecot(conn: Connection) -> bool:
    return conn.listener.origin == "dovecot"


def _client(conn: Connection) -> str:
    return f"unknown[{conn.peer_host}]" if conn.peer_host else "unknown"


async def smtp_unavailable(conn: Connection, kind: str = "ESMTP") -> None:
    settings = conn.settings
    host = settings.get("myhostname")
    timeout = float(_setting(settings, "time", "smtpd_timeout", DEFAULT_TIMEOUT))
    limit = int(_setting(settings, "int", "line_length_limit", DEFAULT_LINE_LIMIT))
    error_limit = int(_setting(settings, "int", "smtpd_hard_error_limit", DEFAULT_ERROR_LIMIT))
    counts: dict[str, list[int]] = {}  # verb -> [accepted, total], for the disconnect line
    errors = 0
    dovecot = _is_dovecot(conn)
    conn.log.info(f"Connect from {conn.peer_host or 'local'}" if dovecot else f"connect from {_client(conn)}")
    try:
        await _send(conn, f"554 5.3.2 {host} {kind} service not available (roost {__version__})")
        while True:
            got = await _next_command(conn, limit, timeout)
            if got is None:
                break
            if got == "timeout":
                conn.log.info(f"timeout after CONNECT from {_client(conn)}")
                await _send(conn, f"421 4.4.2 {host} Error: timeout exceeded")
                break
            if got == "stopping":
                await _send(conn, f"421 4.3.2 {host} Service shutting down, closing transmission channel")
                break
            line, too_long = got
            words = line.split(None, 1)
            verb = words[0].decode("ascii", "replace").lower() if words else ""
            name = verb if verb in SMTP_VERBS else "unknown"
            tally = counts.setdefault(name, [0, 0])
            tally[1] += 1
            if verb == "quit" and not too_long:
                tally[0] += 1
                await _send(conn, "221 2.0.0 Bye")
                break
            errors += 1
            if errors >= error_limit:
                conn.log.warning(f"hard error limit {error_limit} reached for {_client(conn)}")
                await _send(conn, f"421 4.7.0 {host} Error: too many errors")
                break
            await _send(conn, "500 5.5.2 Error: line too long" if too_long else "503 5.5.1 Error: no service")
    finally:
        if dovecot:
            conn.log.info(f"Disconnect from {conn.peer_host or 'local'}: service not available")
        else:
            conn.log.info(f"disconnect from {_client(conn)}{_command_summary(counts)}")


def _command_summary(counts: dict[str, list[int]]) -> str:
    """Postfix's ` ehlo=1 quit=1 commands=2` (`name=ok/total` when some failed)."""
    if not counts:
        return " commands=0"
    parts = []
    total_ok = total = 0
    for name, (ok, seen) in counts.items():
        parts.append(f"{name}={ok}" if ok == seen else f"{name}={ok}/{seen}")
        total_ok += ok
        total += seen
    parts.append(f"commands={total_ok}" if total_ok == total else f"commands={total_ok}/{total}")
    return " " + " ".join(parts)


def _dovecot_where(conn: Connection) -> str:
    return f"rip={conn.peer_host or '-'}, lip={conn.local_host or '-'}" + (", TLS" if conn.tls else "")


async def imap_unavailable(conn: Connection) -> None:
    await _send(conn, "* BYE [UNAVAILABLE] IMAP service not available")
    conn.log.info(f"Disconnected: service not available: user=<>, {_dovecot_where(conn)}")


async def pop3_unavailable(conn: Connection) -> None:
    await _send(conn, "-ERR [SYS/PERM] POP3 service not available")
    conn.log.info(f"Disconnected: service not available: user=<>, {_dovecot_where(conn)}")


async def close_unavailable(conn: Connection) -> None:
    if _is_dovecot(conn):
        conn.log.info(f"Disconnected: service not available: {_dovecot_where(conn)}")
    else:
        conn.log.info(f"closed connection from {_client(conn)}: service not available")
