"""A per-process memo of ENVELOPE responses, keyed by (mailbox, UIDVALIDITY, UID).

RFC 3501 §2.3.1.1 makes a message's content immutable for its UID within a UIDVALIDITY, so
the ENVELOPE computed once (RFC 3501 §7.4.2, roost.message.imapfmt) is valid for every later
FETCH by any session of this worker process; `UID FETCH 1:* (... ENVELOPE)` of a large
mailbox then costs a dict lookup per message instead of an address-list parse. The store's
cached header (MaildirMailbox.header) still spares the file opens the first time.

Invariants: bounded (MAX_ENTRIES; the oldest entries go first); a key never maps to a
different message. Security: only bytes this process computed are stored; no file is written.
"""

from __future__ import annotations

import threading

MAX_ENTRIES = 262144  # ~70 MB at the size of a typical envelope; enough for two 100k mailboxes

_entries: dict[tuple, bytes] = {}
_lock = threading.Lock()


def mailbox_key(mailbox) -> str | None:
    """What identifies the mailbox's storage in this process: its directory; None (no
    caching) for a store without one, since an object id may be reused."""
    folder = getattr(mailbox, "folder", None)
    paths = getattr(folder, "paths", None)
    return getattr(paths, "mail", None)


def get(key: tuple) -> bytes | None:
    return _entries.get(key)


def put(key: tuple, value: bytes) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            for old in list(_entries)[:MAX_ENTRIES // 8]:  # insertion order: oldest first
                del _entries[old]
        _entries[key] = value
