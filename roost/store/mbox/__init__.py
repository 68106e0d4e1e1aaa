"""The mbox backend: `open_mbox_store(user, mail, location)` for `mbox:~/mail:INBOX=/var/mail/%u`.

Implements Dovecot's mbox mail location (doc.dovecot.org "mbox"): INBOX is the spool file
(INBOX=, else `ROOT/inbox`), folders are files under the root. Modules: format (the file
format and Dovecot's metadata headers), lock (dotlock + fcntl), writer (append, rewrite),
mailbox (snapshot, read, flags, expunge), store (the user's mailboxes, quota).

Invariants: see the modules; everything raises only roost.store.api errors (and OSError for
a broken file system). Security: mailbox names are checked in store.MboxUserStore.path_of.
"""

from __future__ import annotations

import os

from roost.store.mbox.lock import DOTLOCK_STALE_TIMEOUT, LOCK_TIMEOUT
from roost.store.mbox.store import MboxUserStore
from roost.store.quota import QuotaRule

__all__ = ["MboxUserStore", "open_mbox_store"]


def _seconds(value: str | None, default: float) -> float:
    """A Dovecot time value ("2 mins", "30 secs", "300") in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if not value:
        return default
    words = value.split()
    try:
        number = float(words[0])
    except (ValueError, IndexError):
        return default
    unit = words[1].lower() if len(words) > 1 else "s"
    scale = 60 if unit.startswith("m") and not unit.startswith("ms") else (
        3600 if unit.startswith("h") else 0.001 if unit.startswith("ms") else 1)
    return number * scale


def open_mbox_store(user, mail, location) -> MboxUserStore:
    """The mbox store of `user` (UserRecord) at `location` (roost.store.location.MailLocation),
    with the quota of `mail.plugin` and the userdb extra fields."""
    inbox = location.inbox or os.path.join(location.root, "inbox")
    plugin = dict(getattr(mail, "plugin", {}) or {})
    extra = dict(getattr(user, "extra", {}) or {})
    quota = QuotaRule.from_settings(plugin, extra, getattr(mail, "mail_plugins", None))
    fsync = getattr(mail, "mail_fsync", "optimized") != "never"
    return MboxUserStore(user.user, location.root, inbox, quota=quota,
                         index_dir=location.index if location.index not in (None, "MEMORY")
                         else None,
                         # global settings; used once MailSettings carries them
                         lock_timeout=_seconds(getattr(mail, "mbox_lock_timeout", None),
                                               LOCK_TIMEOUT),
                         stale_timeout=_seconds(getattr(mail, "mbox_dotlock_change_timeout", None),
                                                DOTLOCK_STALE_TIMEOUT),
                         fsync=fsync, owner=(location.uid, location.gid))
