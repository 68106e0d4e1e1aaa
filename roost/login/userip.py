"""mail_max_userip_connections: how many sessions one user may hold from one IP, per protocol.

Dovecot 2.3 counts logged-in sessions per (service, user, remote IP) in its anvil process and
refuses the login that would exceed `mail_max_userip_connections` (observed with Debian's
2.3.19: IMAP `NO [LIMIT] Maximum number of connections from user+IP exceeded
(mail_max_userip_connections=N)`, POP3 `-ERR [IN-USE] ...`, then the connection is closed and
the login process logs `Disconnected: Maximum number of connections from user+IP exceeded
(mail_max_userip_connections=N): user=<...>, method=..., rip=..., lip=..., ...`; IMAP and POP3
sessions are counted apart; 0 means no limit).

roost's sessions live in several worker processes: the count is a roost.master.anvil lock
file, `base_dir/userip.lock`, keyed by (protocol, user, IP).

Invariants: a session that got a Slot releases it when it ends (or its process dies); no
remote IP (a UNIX socket) means no limit, as Dovecot has no address to count.
Security: the user name only feeds the anvil key digest, never a path.
"""

from __future__ import annotations

import os

from roost.master import anvil
from roost.master.anvil import UNLIMITED, Slot

__all__ = ["LOCK_FILE", "UNLIMITED", "Slot", "acquire", "limit_reason", "prepare", "session_slot"]

LOCK_FILE = "userip.lock"


def limit_reason(limit: int) -> str:
    """Dovecot's text, used in the reply and in the login process's Disconnected line."""
    return f"Maximum number of connections from user+IP exceeded (mail_max_userip_connections={limit})"


def prepare(base_dir: str, uid: int, gid: int) -> None:
    """The master, before it drops root (base_dir is usually root's, as Dovecot's is)."""
    if base_dir:
        anvil.prepare(os.path.join(base_dir, LOCK_FILE), uid, gid)


def session_slot(settings, protocol: str, user: str, remote_ip: str | None, log) -> Slot | str:
    """The logged-in session's Slot, or the refusal reason (Dovecot's text) when the user
    already has `mail_max_userip_connections` sessions from this IP. `settings`: the
    connection's dovecot.conf view (protocol and remote/local filters applied). A lock file
    that cannot be used is logged and lets the login through."""
    try:
        slot = acquire(settings.base_dir, protocol, user, remote_ip,
                       settings.mail_max_userip_connections)
    except OSError as error:
        log.error(f"mail_max_userip_connections: {error}")
        return UNLIMITED
    return limit_reason(settings.mail_max_userip_connections) if slot is None else slot


def acquire(base_dir: str, protocol: str, user: str, remote_ip: str | None, limit: int) -> Slot | None:
    """A held Slot, or None when `limit` sessions of this user from this IP already exist.
    No limit (0), no base_dir or no remote IP: UNLIMITED. OSError propagates."""
    if not base_dir or not remote_ip:
        return UNLIMITED
    return anvil.acquire(os.path.join(base_dir, LOCK_FILE), (protocol, user, remote_ip), limit)
