"""roost's mail store: Maildir (default, Dovecot-compatible) and mbox behind one interface.

The contract lives in roost.store.api (re-exported here); mail_location resolution in
roost.store.location. `open_user_store` picks the backend from the user's location.

Invariants: callers only use the names exported here. Security: see roost.store.location
(user names cannot steer paths) and the backends (mailbox names cannot leave the mail root).
"""

from __future__ import annotations

from roost.store.api import (Change, InvalidMailboxName, Mailbox, MailboxExists, MailboxInfo,
                             MailboxInUse, MailboxNotFound, MessageGone, MessageInfo,
                             QuotaExceeded, SessionLock, StoreError, UserStore)
from roost.store.location import MailAccessDenied, MailLocation, MailSettings, resolve_location

__all__ = [
    "Change", "InvalidMailboxName", "Mailbox", "MailboxExists", "MailboxInfo", "MailboxInUse",
    "MailboxNotFound", "MessageGone", "MessageInfo", "QuotaExceeded", "SessionLock",
    "StoreError", "UserStore", "MailAccessDenied", "MailLocation", "MailSettings",
    "open_user_store", "resolve_location",
]


def open_user_store(user, mail: MailSettings) -> UserStore:
    """The store of `user` (a roost.auth.lookup.UserRecord) as `mail` configures it."""
    location = resolve_location(user, mail)
    if location.driver == "mbox":
        from roost.store import mbox  # written by the mbox backend's owner

        return mbox.open_mbox_store(user, mail, location)
    from roost.store.maildir.store import MaildirUserStore

    return MaildirUserStore(user.user, location, mail, user_extra=dict(user.extra or {}))
