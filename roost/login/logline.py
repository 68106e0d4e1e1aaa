"""Dovecot's login process log lines (pop3-login, imap-login), for fail2ban and people.

Format of Dovecot 2.3 (`login_log_format = %$: %s`, `login_log_format_elements = user=<%u>
method=%m rip=%r lip=%l mpid=%e %c session=<%{session}>`; empty elements are left out, the
rest joined with ", "), observed with Debian's Dovecot 2.3.19:

    Login: user=<alice>, method=PLAIN, rip=127.0.0.1, lip=127.0.0.1, mpid=1154, secured, session=<Ovr00/hg3rN/AAAB>
    Disconnected: Connection closed (auth failed, 1 attempts in 1 secs): user=<alice>, method=PLAIN, rip=127.0.0.21, lip=127.0.0.1, session=<...>
    Disconnected: Aborted login by logging out (no auth attempts in 0 secs): user=<>, rip=..., lip=..., secured, session=<...>

`%c` is `TLS` on an encrypted connection, `secured` on a trusted one, else nothing. The
parenthesised reason follows Dovecot's precedence (no attempts; disallowed plaintext auth; an
unsupported mechanism; an unfinished SASL exchange; invalid base64 in an initial response;
else "auth failed, N attempts in S secs", seconds since the first attempt); fail2ban's stock
dovecot filter matches the failure forms (tests/net/test_login_fail2ban.py); the imap-login
lines are compared with Dovecot's in tests/net/test_login_lines_dovecot.py.

After login, the mail process logs `Disconnected: <reason> <imap_logout_format>` with the
session's counters (imap_logout_line; Dovecot 2.3's default format `in=%i out=%o
deleted=%{deleted} expunged=%{expunged} trashed=%{trashed} hdr_count=%{fetch_hdr_count}
hdr_bytes=%{fetch_hdr_bytes} body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}`,
tests/net/test_login_lines_dovecot.py compares it with Dovecot's).

Invariants: one line, no CR/LF (the logger also sanitises); user names are shown bounded.
Security: never contains a password; the user name is the client's text, bounded to 64 chars
and escaped by the logger, so it cannot forge a second line.
"""

from __future__ import annotations

import base64
import secrets
import struct
import time
from dataclasses import dataclass

from roost.auth.variables import expand_counters

USER_SHOWN_MAX = 64


def new_session_id(now: float | None = None) -> str:
    """A 16-character id like Dovecot's `session=<...>` (12 octets, base64, no padding):
    a time stamp for rough ordering plus random octets for uniqueness."""
    stamp = int((time.time() if now is None else now) * 1000) & 0xFFFFFFFF
    raw = struct.pack(">I", stamp) + secrets.token_bytes(8)
    return base64.b64encode(raw).decode("ascii")


@dataclass
class LoginLogState:
    """What the login part of a connection knows when it logs."""
    remote_ip: str
    local_ip: str
    session: str
    started: float  # monotonic seconds when the client connected
    tls: bool = False
    secured: bool = False
    user: str = ""
    method: str = ""
    auth_attempts: int = 0
    in_sasl: bool = False  # waiting for the client's SASL response
    tried_unsupported_mech: bool = False
    tried_disabled_plaintext: bool = False
    sent_invalid_base64: bool = False
    auth_started: float | None = None  # monotonic seconds of the first auth attempt

    def connection_flag(self) -> str:
        return "TLS" if self.tls else "secured" if self.secured else ""

    def elements(self, mail_pid: int | None = None) -> str:
        parts = [f"user=<{self.user[:USER_SHOWN_MAX]}>"]
        if self.method:
            parts.append(f"method={self.method}")
        parts += [f"rip={self.remote_ip}", f"lip={self.local_ip}"]
        if mail_pid is not None:
            parts.append(f"mpid={mail_pid}")
        if self.connection_flag():
            parts.append(self.connection_flag())
        parts.append(f"session=<{self.session}>")
        return ", ".join(parts)

    def failure_detail(self, now: float) -> str:
        if self.auth_attempts == 0:
            return f"(no auth attempts in {max(0, int(now - self.started))} secs)"
        # after the first attempt, seconds count from that attempt (Dovecot's auth_secs)
        secs = max(0, int(now - (self.auth_started or self.started)))
        if self.tried_disabled_plaintext:
            return "(tried to use disallowed plaintext auth)"
        if self.tried_unsupported_mech:
            return "(tried to use unsupported auth mechanism)"
        if self.in_sasl and self.auth_attempts == 1:
            return f"(client didn't finish SASL auth, waited {secs} secs)"
        if self.sent_invalid_base64:
            return "(sent invalid base64 in response)"
        return f"(auth failed, {self.auth_attempts} attempts in {secs} secs)"


def login_line(state: LoginLogState, mail_pid: int) -> str:
    return f"Login: {state.elements(mail_pid)}"


def disconnect_line(state: LoginLogState, reason: str, now: float) -> str:
    """`reason`: Dovecot's ("Connection closed", "Aborted login by logging out", ...)."""
    return f"Disconnected: {reason} {state.failure_detail(now)}: {state.elements()}"


def refused_line(state: LoginLogState, reason: str) -> str:
    """A login the mail side refused after authentication, as Dovecot logs it (no attempts
    detail): `Disconnected: Maximum number of connections from user+IP exceeded
    (mail_max_userip_connections=2): user=<alice>, method=PLAIN, rip=..., lip=..., ...`."""
    return f"Disconnected: {reason}: {state.elements()}"


def session_prefix(protocol: str, user: str, pid: int, session: str) -> str:
    """The log prefix of the mail session after login: `pop3(alice)<1154><Ovr00/hg3rN/AAAB>`."""
    return f"{protocol}({user[:USER_SHOWN_MAX]})<{pid}><{session}>"


IMAP_LOGOUT_FORMAT = ("in=%i out=%o deleted=%{deleted} expunged=%{expunged} trashed=%{trashed} "
                      "hdr_count=%{fetch_hdr_count} hdr_bytes=%{fetch_hdr_bytes} "
                      "body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}")
# Dovecot 2.3 imap_logout_format variables; counters a caller does not track are 0.
IMAP_LOGOUT_COUNTERS = ("input", "output", "deleted", "expunged", "trashed", "autoexpunged",
                        "appended", "fetch_hdr_count", "fetch_hdr_bytes", "fetch_body_count",
                        "fetch_body_bytes")
_SHORT_VARIABLES = {"i": "input", "o": "output"}


def expand_logout_format(fmt: str, values: dict[str, object],
                         known: tuple[str, ...] = IMAP_LOGOUT_COUNTERS) -> str:
    """`fmt` with %i/%o, %{name} and %% expanded from `values` (names in `known` default to
    0); unknown variables expand to nothing."""
    return expand_counters(fmt, values, _SHORT_VARIABLES, known, missing=0)


def imap_logout_line(reason: str, values: dict[str, object],
                     fmt: str = IMAP_LOGOUT_FORMAT) -> str:
    """`Disconnected: Logged out in=12 out=345 deleted=0 ...` (the imap session's last line)."""
    return f"Disconnected: {reason} {expand_logout_format(fmt, values)}".rstrip()
