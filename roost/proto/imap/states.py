"""IMAP connection states and the commands each allows (RFC 3501 §3, §6; RFC 9051 §3, §6).

NOT AUTHENTICATED → (LOGIN/AUTHENTICATE/PREAUTH) → AUTHENTICATED ⇄ (SELECT/EXAMINE, CLOSE/
UNSELECT) SELECTED; any state → LOGOUT. Commands valid in AUTHENTICATED are valid in SELECTED
too (RFC 3501 §6.3). Extension commands sit where their RFCs put them: ID anywhere (RFC 2971),
ENABLE/IDLE/NAMESPACE/GETQUOTA*/COMPRESS once authenticated, UNSELECT/MOVE/SORT/THREAD/UID
EXPUNGE in SELECTED.
Invariants: pure tables and a pure check. Security: nothing reaches the mail store before
authentication because every store command is absent from NOT_AUTHENTICATED.
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


ANY_STATE = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
NOT_AUTHENTICATED_ONLY = frozenset({"STARTTLS", "AUTHENTICATE", "LOGIN"})
AUTHENTICATED = frozenset({
    "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST",
    "LSUB", "STATUS", "APPEND", "NAMESPACE", "ENABLE", "IDLE", "GETQUOTA", "GETQUOTAROOT",
    "SETQUOTA", "COMPRESS",
})
SELECTED_ONLY = frozenset({
    "CHECK", "CLOSE", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "UID", "UNSELECT",
    "SORT", "THREAD",
})
KNOWN = ANY_STATE | NOT_AUTHENTICATED_ONLY | AUTHENTICATED | SELECTED_ONLY
UID_COMMANDS = frozenset({"FETCH", "STORE", "COPY", "MOVE", "SEARCH", "SORT", "THREAD", "EXPUNGE"})

# Commands after which the machine stops parsing until the session resumes it: the byte
# stream changes meaning (TLS, compression, SASL exchange, IDLE's DONE line) — RFC 3501 §6.2.1
# requires discarding anything pipelined after STARTTLS.
STREAM_CHANGING = frozenset({"STARTTLS", "COMPRESS", "AUTHENTICATE", "IDLE"})


def check_allowed(name: str, state: State) -> str | None:
    """None when `name` may run in `state`, else the BAD reason Dovecot gives (observed)."""
    if state is State.LOGOUT:
        return "Connection is logging out"
    if name in ANY_STATE:
        return None
    if state is State.NOT_AUTHENTICATED:
        if name in NOT_AUTHENTICATED_ONLY:
            return None
        return "Not authenticated" if name in KNOWN else "Unknown command"
    if name in NOT_AUTHENTICATED_ONLY:
        return "Unknown command"  # Dovecot's post-login process does not know them
    if name in AUTHENTICATED:
        return None
    if name in SELECTED_ONLY:
        return None if state is State.SELECTED else "No mailbox selected"
    return "Unknown command"


def may_send_expunge(name: str, uid: bool) -> bool:
    """RFC 3501 §7.4.1 / §5.5: no EXPUNGE (nor VANISHED for sequence numbers) while answering
    a non-UID FETCH, STORE or SEARCH, since the client could not match numbers to messages;
    UID variants and every other command may report expunges before their tagged reply."""
    return uid or name not in ("FETCH", "STORE", "SEARCH")


def is_idle_done(line: bytes) -> bool:
    """RFC 2177 §3: the client ends IDLE with the line DONE (case-insensitive like Dovecot)."""
    return line.strip(b" \t").upper() == b"DONE"
