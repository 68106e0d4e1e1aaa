"""What this process knows about each mbox's end, so a delivery need not rescan the file.

A delivery only needs the append point of an mbox: the last-UID digits in X-IMAPbase, the
keywords X-IMAPbase names, the last UID and whether every UID so far ascends. After a scan or
an append, that summary is remembered per path; the next delivery (under the same write
locks) reuses it when the file is still the same inode, no shorter, its X-IMAPbase line is
unchanged apart from those digits, and the last message's first bytes are still where they were.
Whatever another program appended meanwhile (Postfix local(8), Dovecot) is scanned from the
remembered end only. Anything else falls back to a full scan (writer.read_state).

Invariants: the cache is only a shortcut: a summary is used only after the checks above, and
a rewrite forgets the path. Thread-safe: entries are replaced whole, and every use happens
under the mbox's exclusive locks. Security: nothing here writes files.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import threading

from roost.store.mbox import format as mboxfmt
from roost.store.mbox.writer import MboxState

HEAD_CHECK = 160  # bytes of the last message (From_ line, first headers) that must not move


@dataclasses.dataclass(frozen=True)
class _Summary:
    state: MboxState  # entries=None
    base_bytes: bytes  # the X-IMAPbase line as written
    last_head: bytes


_cache: dict[str, _Summary] = {}
_lock = threading.Lock()


def forget(path: str) -> None:
    with _lock:
        _cache.pop(path, None)


def remember(path: str, fd: int, state: MboxState) -> None:
    """Keep the append point of `state` (a full scan or just after an append)."""
    if state.needs_uids or (state.size and (state.base_line is None or state.uidnext_span is None)):
        forget(path)
        return
    base = os.pread(fd, state.base_line[1] - state.base_line[0], state.base_line[0]) \
        if state.base_line else b""
    head = os.pread(fd, HEAD_CHECK, state.last_start) if state.last_start is not None else b""
    summary = _Summary(dataclasses.replace(state, entries=None), base, head)
    with _lock:
        _cache[path] = summary


def _same_base(fd: int, state: MboxState, base: bytes) -> bool:
    if state.base_line is None:
        return state.size == 0
    start, end = state.base_line
    now = os.pread(fd, end - start, start)
    digit_start, digit_end = (position - start for position in state.uidnext_span)
    return (len(now) == len(base) and now[:digit_start] == base[:digit_start]
            and now[digit_end:] == base[digit_end:] and now[digit_start:digit_end].isdigit())


def state_for_append(path: str, fd: int) -> MboxState | None:
    """The append point of the locked file, without a full scan; None: scan it."""
    with _lock:
        summary = _cache.get(path)
    if summary is None:
        return None
    known = summary.state
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != known.identity[:2] or info.st_size < known.size \
            or known.size == 0:
        return None
    if not _same_base(fd, known, summary.base_bytes):
        return None
    if known.last_start is not None and \
            os.pread(fd, HEAD_CHECK, known.last_start) != summary.last_head:
        return None
    start, end = known.uidnext_span
    written = int(os.pread(fd, end - start, start))
    state = dataclasses.replace(known, identity=(info.st_dev, info.st_ino, info.st_mtime_ns),
                                size=info.st_size)
    if info.st_size > known.size:  # appended by another program: scan only that part
        with mmap.mmap(fd, info.st_size, prot=mmap.PROT_READ) as data:
            added = mboxfmt.scan(data, known.size)
        for entry in added:
            if entry.uid is None or entry.uid <= state.last_uid:
                return None  # needs UIDs written: the caller rescans and rewrites
            state.last_uid, state.last_start = entry.uid, entry.start
    state.uidnext = max(written + 1, state.last_uid + 1, known.uidnext)
    return state
