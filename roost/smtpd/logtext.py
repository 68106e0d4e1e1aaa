"""Postfix smtpd(8) log lines, exactly as Postfix writes them (pflogsumm and fail2ban parse them).

`connect from host[addr]`, `ID: client=host[addr]` (`, sasl_method=M, sasl_username=U`),
`lost connection after CMD from host[addr]`, `timeout after CMD from host[addr]`,
`disconnect from host[addr] ehlo=1 mail=1 rcpt=0/1 data=0/1 quit=1 commands=3/5`,
`warning: host[addr]: SASL PLAIN authentication failed: reason, sasl_username=U`,
`warning: host[addr]: SASL LOGIN authentication aborted` (written by roost.net.smtpd),
`too many errors after CMD from host[addr]`, `improper command pipelining after CMD from
host[addr]: text`.

Invariants: pure functions of their arguments. Security: client-supplied text is passed
through roost.log's sanitizer by the logger; nothing here adds newlines.
"""

from __future__ import annotations


# Postfix's command table order, which its disconnect line follows.
_ORDER = {name: index for index, name in enumerate(
    ("helo", "ehlo", "lhlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop",
     "vrfy", "etrn", "quit", "unknown"))}


def client(name: str, address: str, port: int | None = None, log_port: bool = False) -> str:
    text = f"{name}[{address}]"
    return f"{text}:{port}" if log_port and port else text


def connect(who: str) -> str:
    return f"connect from {who}"


def queue_client(queue_id: str, who: str, sasl_method: str | None, sasl_username: str | None) -> str:
    text = f"{queue_id}: client={who}"
    if sasl_method:
        text += f", sasl_method={sasl_method}"
    if sasl_username:
        text += f", sasl_username={sasl_username}"
    return text


def lost_connection(after: str, who: str) -> str:
    return f"lost connection after {after} from {who}"


def timeout(after: str, who: str) -> str:
    return f"timeout after {after} from {who}"


def too_many_errors(after: str, who: str) -> str:
    return f"too many errors after {after} from {who}"


def sasl_failed(who: str, mechanism: str, reason: str, username: str | None = None) -> str:
    """Postfix 3.7 (observed with a Dovecot auth server): `, sasl_username=U` always follows,
    U being the user the auth server named in its FAIL answer, else `(unavailable)`."""
    return f"{who}: SASL {mechanism} authentication failed: {reason}, sasl_username={username or '(unavailable)'}"


def disconnect(who: str, stats: dict[str, list[int]]) -> str:
    """Postfix's per-command counters: `name=ok` or `name=ok/total`, then commands=. The
    counter text is kept per distinct set of counters (most sessions repeat a few)."""
    key = tuple((name, ok, count) for name, (ok, count) in stats.items())
    counters = _COUNTERS.get(key)
    if counters is None:
        if len(_COUNTERS) >= _COUNTERS_LIMIT:
            _COUNTERS.clear()
        counters = _COUNTERS[key] = _counters(stats)
    return f"disconnect from {who} {counters}"


_COUNTERS: dict = {}
_COUNTERS_LIMIT = 1024


def _counters(stats: dict[str, list[int]]) -> str:
    parts = []
    ok_total = total = 0
    for name, (ok, count) in sorted(stats.items(), key=lambda item: _ORDER.get(item[0], len(_ORDER))):
        parts.append(f"{name}={ok}" if ok == count else f"{name}={ok}/{count}")
        ok_total += ok
        total += count
    # Postfix writes a client that sent no command at all as commands=0/0
    parts.append(f"commands={ok_total}" if ok_total == total and total else f"commands={ok_total}/{total}")
    return " ".join(parts)


def improper_pipelining(after: str, who: str, pending: bytes) -> str:
    """RFC 2920 §3.1: EHLO/HELO, DATA, STARTTLS... must end a command group; Postfix logs
    the bytes that came too early, with CR/LF and other controls written as escapes."""
    text = "".join(_ESCAPES.get(byte, chr(byte) if 32 <= byte < 127 else f"\\{byte:03o}") for byte in pending)
    return f"improper command pipelining after {after} from {who}: {text}"


_ESCAPES = {13: "\\r", 10: "\\n", 9: "\\t"}
