"""One opened mbox mailbox: a snapshot of its messages, reading, flags, expunge, the change feed.

Implements roost.store.api.Mailbox over an mbox file with Dovecot's metadata headers
(roost.store.mbox.format). A refresh takes the shared fcntl lock (Dovecot's
`mbox_read_locks = fcntl`), scans the file and compares with the previous snapshot by UID;
messages that another program appended without an X-UID (Postfix local(8), procmail) get
their UIDs written under the write lock first, as Dovecot's mbox sync does. Reading copies
one message under the shared lock into a spooled temporary file, with the metadata headers
cut out and CRLF line endings (RFC 3501 §2.3.4: RFC822.SIZE counts CRLF). Flag changes and
expunges rewrite the file (roost.store.mbox.writer.rewrite) under the write locks.

MODSEQs are kept in memory only (mbox has nowhere to store them; Dovecot keeps them in its
index): the messages found at the open start at a base above any MODSEQ an earlier open gave
out (microseconds since the epoch, as a rebuilt Maildir index does), so a CONDSTORE/QRESYNC
client coming back with an old MODSEQ sees every message as changed; later a flag change,
a new message or an expunge bumps HIGHESTMODSEQ. Expunges are remembered for QRESYNC
(RFC 7162 §3.2.5.2) while the mailbox stays open; MODSEQs from before the open are answered
with "not known" (vanished_since -> None).

Invariants: the snapshot changes only in refresh, set_flags, expunge and append; UIDs in the
snapshot ascend; open_message never returns another message's bytes (the From_ offset and
X-UID are re-checked under the lock).
Security: read-only mailboxes never take the dotlock or write to the file.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import tempfile
import time
from typing import TYPE_CHECKING, BinaryIO, Iterable

from roost.store.api import (SYSTEM_FLAGS, Change, Mailbox, MailboxNotFound, MessageGone,
                             MessageInfo, StoreError)
from roost.store.mbox import writer
from roost.store.mbox.format import Entry
from roost.store.mbox.lock import LockedMbox

if TYPE_CHECKING:
    from roost.store.mbox.store import MboxUserStore

SPOOL_MAX = 1024 * 1024
POLL_INTERVAL = 0.5


def message_size(data, entry: Entry) -> int:
    """RFC822.SIZE: the visible bytes with every bare LF counted as CRLF."""
    size = 0
    for start, end in entry.visible_ranges():
        chunk = data[start:end]
        size += len(chunk) + chunk.count(b"\n") - chunk.count(b"\r\n")
    return size


class MboxMailbox(Mailbox):
    def __init__(self, store: "MboxUserStore", name: str, path: str, readonly: bool):
        self.store = store
        self.name = name
        self.path = path
        self.readonly = readonly
        self.uidvalidity = 0
        self.uidnext = 1
        self._base = time.time_ns() // 1000  # above the MODSEQs of any earlier open
        self.highestmodseq = self._base
        self._loaded = False
        self._infos: dict[int, MessageInfo] = {}
        self._entries: dict[int, Entry] = {}
        self._identity: tuple | None = None
        self._closed = False
        self._expunged: dict[int, int] = {}  # uid -> MODSEQ of its expunge (this open only)
        if not os.path.isfile(path):
            raise MailboxNotFound(f"Mailbox doesn't exist: {name}")
        self.refresh()
        self._loaded = True
        self._forgotten = self.highestmodseq  # nothing is known from before the open

    # --- snapshot ------------------------------------------------------------------------
    def messages(self) -> list[MessageInfo]:
        return [self._infos[uid] for uid in sorted(self._infos)]

    def _identity_now(self) -> tuple | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)

    def refresh(self) -> list[Change]:
        identity = self._identity_now()
        if identity is not None and identity == self._identity:
            return []
        if identity is None:
            return self._install(None, {})
        with LockedMbox(self.path, exclusive=False, timeout=self.store.lock_timeout) as locked:
            state = writer.read_state(locked.fd)
            if state.needs_uids and state.entries and not self.readonly:
                state = None
        if state is None:
            state = self.store.sync_uids(self.path)
        elif state.needs_uids:
            writer.assign_uids(state)  # read-only: UIDs for this session only
        return self._install_state(state)

    def _install_state(self, state: writer.MboxState) -> list[Change]:
        entries = {entry.uid: entry for entry in state.entries if entry.uid}
        infos: dict[int, MessageInfo] = {}
        identity = (state.identity[0], state.identity[1], state.identity[2], state.size)
        if state.size:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                info = os.fstat(fd)
                if (info.st_dev, info.st_ino) != identity[:2] or info.st_size < state.size:
                    os.close(fd)
                    fd = -1
                    self._identity = None
                    return self.refresh()
                with mmap.mmap(fd, state.size, prot=mmap.PROT_READ) as data:
                    for uid, entry in entries.items():
                        infos[uid] = self._info(entry, message_size(data, entry),
                                                state.uidvalidity or 0)
            finally:
                if fd >= 0:
                    os.close(fd)
        self.uidvalidity = state.uidvalidity or self.uidvalidity
        self.uidnext = max(state.uidnext, self.uidnext if self._identity else 1)
        self._identity = identity
        return self._install(entries, infos)

    def _info(self, entry: Entry, size: int, uidvalidity: int) -> MessageInfo:
        uid = entry.uid or 0
        old = self._infos.get(uid)
        flags = entry.flags
        keywords = frozenset(entry.keywords)
        modseq = old.modseq if old and (old.flags, old.keywords) == (flags, keywords) else None
        if modseq is None:
            modseq = self._base if old is None and not self._loaded else self.highestmodseq + 1
            self.highestmodseq = max(self.highestmodseq, modseq)
        return MessageInfo(uid, flags, keywords, size, entry.internal_date, modseq,
                           f"{uidvalidity:08x}{uid:08x}")

    def _install(self, entries, infos: dict[int, MessageInfo]) -> list[Change]:
        changes: list[Change] = []
        for uid in sorted(self._infos):
            if uid not in infos:
                changes.append(Change("expunge", uid, None))
        if changes:  # RFC 7162 §3.1: an expunge takes a MODSEQ of its own
            self.highestmodseq += 1
            for change in changes:
                self._expunged[change.uid] = self.highestmodseq
        for uid in sorted(infos):
            old = self._infos.get(uid)
            if old is None:
                changes.append(Change("exists", uid, infos[uid]))
            elif (old.flags, old.keywords) != (infos[uid].flags, infos[uid].keywords):
                changes.append(Change("flags", uid, infos[uid]))
        self._infos = infos
        self._entries = entries or {}
        if infos:
            self.uidnext = max(self.uidnext, max(infos) + 1)
        return changes

    def vanished_since(self, modseq: int) -> set[int] | None:
        if modseq < getattr(self, "_forgotten", self.highestmodseq):
            return None
        return {uid for uid, when in self._expunged.items() if when > modseq}

    # --- reading -------------------------------------------------------------------------
    def open_message(self, uid: int) -> BinaryIO:
        for attempt in range(2):
            entry = self._entries.get(uid)
            if entry is None:
                raise MessageGone(f"Message {uid} was expunged")
            with LockedMbox(self.path, exclusive=False, timeout=self.store.lock_timeout) as locked:
                info = os.fstat(locked.fd)
                if self._identity and (info.st_dev, info.st_ino) == self._identity[:2] \
                        and info.st_size >= entry.end:
                    with mmap.mmap(locked.fd, info.st_size, prot=mmap.PROT_READ) as data:
                        if _still_there(data, entry):
                            return _copy_crlf(data, entry)
            self.refresh()
        raise MessageGone(f"Message {uid} was expunged")

    # --- changes -------------------------------------------------------------------------
    def _writable(self) -> None:
        if self.readonly:
            raise StoreError("Mailbox is read-only")

    def set_flags(self, uids: Iterable[int], flags: frozenset[str], keywords: frozenset[str],
                  mode: str, unchangedsince: int | None = None
                  ) -> tuple[list[MessageInfo], list[int]]:
        self._writable()
        wanted = set(uids)
        flags = frozenset(flag for flag in flags if flag in SYSTEM_FLAGS)
        failed = sorted(uid for uid in wanted if unchangedsince is not None and uid in self._infos
                        and self._infos[uid].modseq > unchangedsince)
        wanted -= set(failed)

        def edit(entry: Entry) -> tuple[frozenset[str], frozenset[str]] | None:
            if entry.uid not in wanted:
                return None
            old_flags, old_keywords = entry.flags, frozenset(entry.keywords)
            if mode == "add":
                return old_flags | flags, old_keywords | keywords
            if mode == "remove":
                return old_flags - flags, old_keywords - keywords
            return flags, keywords

        changes = self.store.rewrite(self.path, edit=edit) if wanted else None
        if changes is not None:
            self._install_state(changes)
        changed = [self._infos[uid] for uid in sorted(wanted) if uid in self._infos]
        return changed, failed

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        self._writable()
        limit = None if uids is None else set(uids)
        removed: list[int] = []

        def keep(entry: Entry) -> bool:
            gone = "\\Deleted" in entry.flags and (limit is None or entry.uid in limit)
            if gone and entry.uid is not None:
                removed.append(entry.uid)
            return not gone

        state = self.store.rewrite(self.path, keep=keep)
        if removed:
            self._install_state(state)
        return sorted(removed)

    def append(self, source: BinaryIO, *, flags: frozenset[str] = frozenset(),
               keywords: frozenset[str] = frozenset(), internal_date: float | None = None) -> int:
        self._writable()
        return self.store.append_path(self.path, self.name, source, flags=flags,
                                      keywords=keywords, internal_date=internal_date,
                                      delivery=False)

    def copy(self, uids: Iterable[int], dest: str) -> list[tuple[int, int]]:
        pairs = []
        for uid in sorted(set(uids)):
            info = self._infos.get(uid)
            if info is None:
                continue
            with self.open_message(uid) as stream:
                new_uid = self.store.append_to(dest, stream, flags=info.flags,
                                               keywords=info.keywords,
                                               internal_date=info.internal_date)
            pairs.append((uid, new_uid))
        return pairs

    def move(self, uids: Iterable[int], dest: str) -> list[tuple[int, int]]:
        self._writable()
        pairs = self.copy(uids, dest)
        moved = {source for source, _new in pairs}
        if moved:
            state = self.store.rewrite(self.path, keep=lambda entry: entry.uid not in moved)
            self._install_state(state)
        return pairs

    async def wait_changed(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and not self._closed:
            if self._identity_now() != self._identity:
                return True
            await asyncio.sleep(min(POLL_INTERVAL, max(deadline - loop.time(), 0)))
        return self._identity_now() != self._identity

    def close(self) -> None:
        self._closed = True


def _still_there(data, entry: Entry) -> bool:
    """The snapshot's offsets still hold this message (no in-place rewrite by another)."""
    if data[entry.start:entry.start + 5] != b"From ":
        return False
    from roost.store.mbox.format import scan

    found = scan(data, entry.start, min(len(data), entry.body_start))
    return bool(found) and found[0].uid == entry.uid and found[0].body_start == entry.body_start


def _copy_crlf(data, entry: Entry) -> BinaryIO:
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
    last = b""
    for start, end in entry.visible_ranges():
        for offset in range(start, end, writer.COPY_CHUNK):
            chunk = bytes(data[offset:min(offset + writer.COPY_CHUNK, end)])
            # bare LF -> CRLF; an existing CRLF stays (a CR ending the previous chunk counts)
            text = chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if last == b"\r" and chunk.startswith(b"\n"):
                text = text[1:]
            out.write(text)
            last = chunk[-1:]
    out.seek(0)
    return out
