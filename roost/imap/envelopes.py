"""A per-process memo of ENVELOPE, BODY and BODYSTRUCTURE responses, keyed by (mailbox,
UIDVALIDITY, UID, item name).

RFC 3501 §2.3.1.1 makes a message's content immutable for its UID within a UIDVALIDITY, so
the ENVELOPE or BODYSTRUCTURE computed once (RFC 3501 §7.4.2, roost.message.imapfmt) is
valid for every later FETCH by any session of this worker process (Dovecot keeps them in
dovecot.index.cache for the same reason); `UID FETCH 1:* (... ENVELOPE)` of a large mailbox
then costs a dict lookup per message instead of an address-list parse, and a repeated
BODYSTRUCTURE neither opens the file nor walks the MIME tree. The store's cached header
(MaildirMailbox.header) still spares the file opens the first time for ENVELOPE.

Invariants: bounded (MAX_ENTRIES entries, MAX_BYTES of values; the oldest go first); a key
never maps to a
different message. Security: only bytes this process computed are stored; no file is written.
"""

from __future__ import annotations

import threading

MAX_ENTRIES = 262144  # enough for ENVELOPE and BODYSTRUCTURE of a 100k mailbox
MAX_BYTES = 64 << 20  # what the values may hold together (a BODYSTRUCTURE can be long)

_entries: dict[tuple, bytes] = {}
_held = 0  # bytes in _entries' values
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
    global _held
    if len(value) > MAX_BYTES // 256:
        return  # a giant structure is rare and not worth a sixty-fourth of the memo
    with _lock:
        if len(_entries) >= MAX_ENTRIES or _held + len(value) > MAX_BYTES:
            # insertion order: the oldest eighth goes (at least one entry)
            for old in list(_entries)[:max(1, len(_entries) // 8)]:
                _held -= len(_entries.pop(old))
        previous = _entries.get(key)
        if previous is not None:
            _held -= len(previous)
        _entries[key] = value
        _held += len(value)
