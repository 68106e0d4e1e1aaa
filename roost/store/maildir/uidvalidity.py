"""`dovecot-uidvalidity`: the source of new mailboxes' UIDVALIDITY, shared with Dovecot.

Implements Dovecot 2.3's scheme (observed with Dovecot 2.3.19): the mail root holds
`dovecot-uidvalidity` with the last value given out, in hex, and an empty marker
`dovecot-uidvalidity.<hex>`; the next value is max(last + 1, now), so UIDVALIDITYs of
mailboxes created, deleted and created again never repeat (RFC 3501 §2.3.1.1).

Invariants: next_uidvalidity() returns a value > every earlier one from the same root (held
under a dotlock), never 0, below 2^32.
Security: only files directly in the mail (or control) root are touched.
"""

from __future__ import annotations

import os
import time

from roost.store.maildir.dotlock import DotLock

FILE_NAME = "dovecot-uidvalidity"


def next_uidvalidity(root: str, owner: tuple[int, int] | None = None) -> int:
    os.makedirs(root, mode=0o700, exist_ok=True)
    path = os.path.join(root, FILE_NAME)
    with DotLock(path) as lock:
        try:
            with open(path, "rb") as handle:
                last = int(handle.read(16).strip() or b"0", 16)
        except (FileNotFoundError, ValueError):
            last = 0
        value = max(last + 1, int(time.time())) & 0xFFFFFFFF or 1
        lock.replace(b"%08x" % value, fsync=False, owner=owner)
    marker_prefix = FILE_NAME + "."
    try:
        for name in os.listdir(root):
            if name.startswith(marker_prefix) and name != marker_prefix + "lock":
                os.unlink(os.path.join(root, name))
        marker = os.path.join(root, marker_prefix + "%08x" % value)
        open(marker, "ab").close()
        if owner is not None:
            os.chown(marker, *owner)
    except OSError:
        pass
    return value
