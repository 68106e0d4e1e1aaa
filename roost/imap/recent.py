"""The \\Recent flag: which session is the first to be told about a message (RFC 3501 §2.3.2).

A message is recent in exactly one session: the first that has its mailbox selected
read-write after the message arrived. Like Dovecot's index header `first_recent_uid`, each
mailbox keeps one number, the lowest UID not yet claimed, in `roost-recent` beside its
dovecot-uidlist; SELECT claims every UID from there up (and moves the mark to UIDNEXT) under
an exclusive lock, so two sessions never both see a message as recent. EXAMINE and STATUS
only read the mark (RFC 3501 §6.3.2: EXAMINE does not change \\Recent). Mailboxes of other
backends (no control directory) have no recent messages.

Invariants: the mark only grows; a missing or unreadable file counts as 1 (everything
recent), as after Dovecot's index is rebuilt.
Security: the file holds one number and is opened without following symlinks.
"""

from __future__ import annotations

import fcntl
import os

FILE_NAME = "roost-recent"


def _path(mailbox) -> str | None:
    folder = getattr(mailbox, "folder", None)
    paths = getattr(folder, "paths", None)
    control = getattr(paths, "control", None)
    return os.path.join(control, FILE_NAME) if control else None


def _read(fd: int) -> int:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "ignore").strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1


def first_recent(mailbox) -> int:
    path = _path(mailbox)
    if path is None:
        return mailbox.uidnext
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 1
    try:
        return _read(fd)
    finally:
        os.close(fd)


def claim(mailbox) -> set[int]:
    """The UIDs recent for this session; later sessions will not see them as recent.

    Works on the mailbox's snapshot as the caller last refreshed it (SELECT's open, the
    refresh before an update): a message newer than the snapshot has a UID at or above its
    UIDNEXT, so the mark never passes it and it stays claimable by whoever sees it first."""
    path = _path(mailbox)
    if path is None:
        return set()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError:
        return set()
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        first = _read(fd)
        claimed = {info.uid for info in mailbox.messages() if info.uid >= first}
        mark = max(mailbox.uidnext, first)
        if mark != first:
            data = b"%d\n" % mark
            os.pwrite(fd, data, 0)  # the mark only grows: never shorter than what it replaces
            os.ftruncate(fd, len(data))  # cuts longer (damaged) content; frees no block
        return claimed
    finally:
        os.close(fd)


def count_recent(mailbox) -> int:
    first = first_recent(mailbox)
    return sum(1 for info in mailbox.messages() if info.uid >= first)
