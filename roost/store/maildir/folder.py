"""One Maildir folder: scanning new/ and cur/, and keeping dovecot-uidlist and roost.index in
step with the files (the "sync").

Implements Dovecot's Maildir synchronisation rules (doc.dovecot.org "Maildir Mailbox Format"):
a file's identity is its base name; a file without a dovecot-uidlist record gets the next UID
(new files in name order, i.e. delivery order); a record whose file is gone is an expunge;
a changed info part is a flag change. roost adds MODSEQ (RFC 7162 §3.1): every new message,
flag change and expunge takes the next MODSEQ, persisted in roost.index.

The fast path (nothing changed: the index agrees with dovecot-uidlist's signature and with
the listing) takes no lock and writes nothing; otherwise the full sync runs under the
dovecot-uidlist dotlock, appends to dovecot-uidlist when it only adds records, rewrites it
when records go, and appends to roost.index.

Locks, and their order:
  U  `dovecot-uidlist.lock` (roost.store.maildir.dotlock, Dovecot's protocol): held by
     whoever writes dovecot-uidlist or makes a file appear that must get a UID (deliveries
     rename into new/ under it, as Dovecot does) and by every full sync.
  I  flock on `roost.index.lock` (roost.store.maildir.indexlock): held by whoever writes
     roost.index, from reading the index it will update until the write is done.
  Order: U before I. lock() takes U; sync_locked(), delivery_start() and the other index
  writers under it add I (ensure_index_lock()) and lock() drops both. A flag change
  (MaildirMailbox.set_flags) renames files and appends MODSEQs under I alone, as Dovecot
  changes flags without U (dovecot-uidlist holds base names, which a flag rename keeps);
  when it finds the index behind dovecot-uidlist it releases I and starts over under
  lock(). An expunge (MaildirMailbox.expunge) likewise unlinks and appends `X` records
  under I alone, leaving the records in dovecot-uidlist (a record without its file is an
  expunge to every reader, Dovecot included, which leaves them the same way); the next
  sync under U drops them, and a record of a UID the index holds as expunged counts as
  gone even when a file of that name is back (it gets a new UID: none is reused).
  Nobody waits for U while holding I, and Dovecot knows only U: no deadlock.
  No lost update: every roost.index write happens under I, after re-reading the file when
  its signature changed (another writer appended), so two processes' MODSEQs interleave and
  never repeat; a rename that another program won first fails and is redone after a sync.
  The sessions of a process share the parsed index of a file version (_SHARED_INDEXES);
  a writer changes a private copy (_private()) and shares the result once written.

Invariants: UIDs are never reused within one UIDVALIDITY; a damaged or missing
dovecot-uidlist is rebuilt from roost.index (same UIDs) or, failing that, with a new
UIDVALIDITY; a damaged roost.index is rebuilt from the files; both with a logged warning and
never an exception. new/ is listed before cur/ so a concurrent new/ -> cur/ move is never
missed; a record is only an expunge when two listings agree its file is gone.
Security: only names listed in new/ and cur/ are opened (no path from file contents); names
with CR/LF are ignored as Dovecot does.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from roost.store.maildir import index as index_file
from roost.store.maildir import keywords as keywords_file
from roost.store.maildir import uidlist as uidlist_file
from roost.store.maildir import indexlock
from roost.store.maildir.dotlock import DotLock
from roost.store.maildir.indexlock import IndexLock
from roost.store.maildir.index import Entry, Index
from roost.store.maildir.names import delivery_order, size_fields, split_name
from roost.store.maildir.stream import virtual_size_of

log = logging.getLogger("roost.store")
_SIGNATURE = struct.Struct("=" + "Qqq" * 5)  # (inode, mtime_ns, size) of five files
# how long after a change a file time is trusted to tell the next change apart: the kernel
# stamps files from its tick clock (1-10 ms); whole-second times (and NFS clock skew) need more
FINE_TIME_MARGIN = 100_000_000
COARSE_TIME_MARGIN = 2_000_000_000
SUBDIRS = ("new", "cur")
# roost.index path -> the parsed version the folder objects of this process (one per session)
# share; an Index in here is never changed: writers change a private copy (_private())
_SHARED_INDEXES: "weakref.WeakValueDictionary[str, Index]" = weakref.WeakValueDictionary()
TMP_MAX_AGE = 36 * 3600


@dataclass(frozen=True, slots=True)
class FolderPaths:
    mail: str  # the directory holding cur/ new/ tmp/
    control: str  # dovecot-uidlist, dovecot-keywords
    index: str | None  # roost.index directory; None keeps it in memory (INDEX=MEMORY)

    @property
    def uidlist(self) -> str:
        return os.path.join(self.control, uidlist_file.FILE_NAME)

    @property
    def index_path(self) -> str | None:
        return None if self.index is None else os.path.join(self.index, index_file.FILE_NAME)


@dataclass(slots=True)
class State:
    """What a sync found: the mailbox as files and index agree on it."""
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    entries: dict[int, Entry]  # ascending uid
    files: dict[str, tuple[str, str]]  # base -> (subdir, file name)
    keywords: dict[int, str] = field(default_factory=dict)
    extra: dict[int, frozenset[str]] = field(default_factory=dict)  # beyond the 26 letters


class MaildirFolder:
    # slots: every open session keeps its folders (no per-object __dict__)
    __slots__ = ("paths", "owner", "new_uidvalidity", "fsync", "_index", "_index_signature",
                 "_keywords", "_keywords_signature", "_uidlist_cache", "uidlist_torn",
                 "_last", "tmp_cleaned", "_header_cache", "_defer_cache", "_index_lock")

    def __init__(self, paths: FolderPaths, new_uidvalidity: Callable[[], int], *,
                 fsync: bool = True, owner: tuple[int, int] | None = None):
        self.paths = paths
        self.owner = owner  # (uid, gid) new files get when roost runs as root
        self.new_uidvalidity = new_uidvalidity
        self.fsync = fsync
        self._index: Index | None = None
        self._index_signature = ""
        self._keywords: dict[int, str] = {}
        self._keywords_signature = ""
        self._uidlist_cache: tuple | None = None
        self.uidlist_torn = False
        self._last: tuple | None = None  # (quick signature, state) of the last sync
        self.tmp_cleaned = False
        self._header_cache = None
        self._defer_cache = False
        self._index_lock: IndexLock | None = None  # opened by the first writer

    # --- files -----------------------------------------------------------------------------

    def scan(self) -> dict[str, tuple[str, str]]:
        """base -> (subdir, name) for every message file; new/ first, cur/ wins duplicates."""
        found: dict[str, tuple[str, str]] = {}
        for sub in SUBDIRS:
            try:
                with os.scandir(os.path.join(self.paths.mail, sub)) as entries:
                    # a directory in new/ or cur/ is no message (d_type: no stat needed)
                    names = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith(".") or "\n" in name or "\r" in name:
                    continue
                colon = name.rfind(":")
                found[name if colon < 0 else name[:colon]] = (sub, name)
        return found

    def header_cache(self):
        if self._header_cache is None:
            from roost.store.maildir.cache import HeaderCache

            self._header_cache = HeaderCache(self.paths.index, self.owner)
            self._header_cache.deferring = self._defer_cache
        return self._header_cache

    def defer_cache_writes(self, deferring: bool) -> None:
        """Hold header-cache appends (True) or write what was held and stop holding."""
        self._defer_cache = deferring
        if self._header_cache is not None:
            self._header_cache.deferring = deferring
            if not deferring:
                self._header_cache.flush()

    def clean_tmp(self, max_age: float = TMP_MAX_AGE) -> int:
        """Remove tmp/ files older than `max_age` (crashed deliveries; Dovecot removes them
        after 36 hours); how many were removed."""
        removed = 0
        tmp = os.path.join(self.paths.mail, "tmp")
        limit = time.time() - max_age
        try:
            entries = list(os.scandir(tmp))
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < limit \
                        and not _writer_alive(entry.name):
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        return removed

    def path_of(self, location: tuple[str, str]) -> str:
        return os.path.join(self.paths.mail, location[0], location[1])

    @contextmanager
    def lock(self) -> Iterator[DotLock]:
        """The dovecot-uidlist dotlock (U); index writers under it add the index lock (I)
        with ensure_index_lock(), and it is released with U (order U -> I, see the module
        docstring)."""
        index_lock = self._index_lock
        assert index_lock is None or not index_lock.held, "U is never awaited holding I"
        with DotLock(self.paths.uidlist) as dotlock:
            try:
                yield dotlock
            finally:
                if self._index_lock is not None:
                    self._index_lock.release()

    def index_lock(self) -> IndexLock:
        """The roost.index writer lock (I) alone: for changes that touch no dovecot-uidlist
        record (flag renames). Never take lock() while holding it."""
        lock = self._index_lock
        if lock is None:
            directory = self.paths.index or self.paths.control
            lock = self._index_lock = indexlock.for_path(
                os.path.join(directory, indexlock.FILE_NAME), self.owner)
        return lock

    def ensure_index_lock(self) -> None:
        """Hold I (a no-op when this thread holds it): before reading roost.index to write it."""
        self.index_lock().ensure()

    def _chown(self, path: str) -> None:
        if self.owner is not None:
            os.chown(path, *self.owner)

    # --- keywords ----------------------------------------------------------------------------

    def keywords(self, st: os.stat_result | None | bool = False) -> dict[int, str]:
        """The dovecot-keywords map, re-read when the file changed (`st`: its stat, None
        when missing, as a sync already took it; else stat it now)."""
        if st is False:
            st = _stat(os.path.join(self.paths.control, keywords_file.FILE_NAME))
        sig = index_file.signature(st)
        if sig != self._keywords_signature:
            self._keywords = keywords_file.read(self.paths.control)
            self._keywords_signature = sig
        return self._keywords

    def ensure_keywords(self, names) -> dict[int, str]:
        self._keywords = keywords_file.ensure(self.paths.control, names, self.keywords(),
                                              owner=self.owner)
        return self._keywords

    # --- index -----------------------------------------------------------------------------

    def _load_index(self, st: os.stat_result | None | bool = False
                    ) -> tuple[Index | None, str | None]:
        """(index, damage) as the file is (`st`: its stat when a sync already took it)."""
        path = self.paths.index_path
        if path is None:
            return self._index, None
        if st is False:
            st = _stat(path)
        if st is None:
            self._index, self._index_signature = None, ""
            return None, None
        sig = index_file.signature(st)
        if sig == self._index_signature and self._index is not None:
            return self._index, None
        shared = _SHARED_INDEXES.get(path)
        if shared is not None and shared.shared_as == sig:
            self._index, self._index_signature = shared, sig
            return shared, None
        found, problem, st = index_file.read(path)
        self._index, self._index_signature = found, index_file.signature(st)
        if found is not None:
            self._share(found)
        return found, problem

    def _share(self, found: Index) -> None:
        """Offer `found`, this folder's index as the file is now, to the process's other
        folder objects of the mailbox (from now on nobody changes it)."""
        path = self.paths.index_path
        if path is not None:
            found.shared_as = self._index_signature
            _SHARED_INDEXES[path] = found

    def _private(self, found: Index | None) -> Index | None:
        """Under the index lock, for a writer: a copy of `found` (which other folder objects
        may share) that becomes this folder's index, to change and write."""
        if found is None:
            return None
        copy = Index(found.uidvalidity, found.guid, found.entries, found.highestmodseq,
                     found.uidlist_signature, found.uidnext, found.lines, found.extra,
                     dict(found.expunged), found.forgotten)
        self._index = copy
        return copy

    def _uidlist_signature(self) -> str:
        try:
            return index_file.signature(os.stat(self.paths.uidlist))
        except FileNotFoundError:
            return ""

    # --- sync ------------------------------------------------------------------------------

    def control_stats(self) -> list[os.stat_result | None]:
        """The stats (None: missing) of new/, cur/, dovecot-uidlist, dovecot-keywords and
        roost.index, in this order: what sync() starts from (taken before it lists or reads
        anything, so a change after them shows as a difference later)."""
        mail, control = self.paths.mail, self.paths.control
        return [_stat(os.path.join(mail, "new")), _stat(os.path.join(mail, "cur")),
                _stat(self.paths.uidlist), _stat(os.path.join(control, "dovecot-keywords")),
                _stat(self.paths.index_path or self.paths.uidlist)]

    def _quick_signature(self, stats) -> int | None:
        """mtimes of new/, cur/ and the control files, or None when one of them changed
        too recently to be trusted (file times are as coarse as the kernel's clock tick,
        so two changes in one tick look like one: a time with nanoseconds is trusted after
        FINE_TIME_MARGIN, a whole-second one after COARSE_TIME_MARGIN). Hashed into one int
        (compared only for equality, like roost.store.notify's signatures; every idle session
        keeps one)."""
        parts = []
        now = time.time_ns()
        for st in stats:
            if st is None:
                parts += (0, -1, -1)  # no inode is number 0
                continue
            mtime = st.st_mtime_ns
            if mtime > now - (FINE_TIME_MARGIN if mtime % 1_000_000_000 else COARSE_TIME_MARGIN):
                return None
            parts += (st.st_ino, mtime, st.st_size)
        return hash(_SIGNATURE.pack(*parts) + self._index_signature.encode())

    def sync(self, stats: list[os.stat_result | None] | None = None) -> State:
        """The current state; takes the lock and writes only when something changed.
        `stats`: control_stats() the caller just took."""
        if stats is None:
            stats = self.control_stats()
        quick = self._quick_signature(stats)
        if quick is not None and self._last is not None and self._last[0] == quick:
            return self._last[1]
        state = self._sync(stats)
        self._last = (quick, state) if quick is not None else None
        return state

    def _sync(self, stats) -> State:
        listing = self.scan()
        # the stats were taken before the listing: a change since shows as a disagreement
        found, _problem = self._load_index(stats[4] if self.paths.index_path else False)
        if (found is not None and found.uidlist_signature
                and found.uidlist_signature == index_file.signature(stats[2])
                and len(listing) == len(found.entries) and self._agrees(found, listing)):
            return self._state(found, listing, stats[3])
        with self.lock():
            return self.sync_locked()

    @staticmethod
    def _agrees(found: Index, listing) -> bool:
        """Every indexed message is listed with the info letters the index saw."""
        get = listing.get
        for entry in found.entries.values():
            location = get(entry.base)
            if location is None:
                return False
            suffix = location[1][len(entry.base):]
            if suffix != ":2," + entry.letters and (entry.letters or suffix):
                if split_name(location[1])[1] != entry.letters:
                    return False
        return True

    def _state(self, found: Index, listing, keywords_st: os.stat_result | None | bool = False
               ) -> State:
        uidnext = max(next(reversed(found.entries), 0) + 1, found.uidnext)
        return State(found.uidvalidity, uidnext, found.highestmodseq, found.entries, listing,
                     self.keywords(keywords_st), found.extra)

    def add_unlettered(self, extras: dict[int, frozenset[str]]) -> None:
        """Record keywords that have no file-name letter for freshly saved messages (a
        sync first indexes them; then their keywords get a MODSEQ of their own)."""
        extras = {uid: names for uid, names in extras.items() if uid and names}
        if not extras:
            return
        with self.lock():
            state = self.sync_locked()
            found = self.indexed()
            changed = [state.entries[uid] for uid in extras if uid in state.entries]
            self.record_changes(found, changed, extras)

    def indexed(self) -> Index:
        """The index as the last sync left it (call under the lock, after sync_locked)."""
        assert self._index is not None
        return self._private(self._index)

    def current_index(self) -> Index | None:
        """Under the index lock: the index when it already describes every dovecot-uidlist
        record (nothing to sync first), else None."""
        assert self.index_lock().held, "roost.index is read for writing under the index lock"
        found, problem = self._load_index()
        if found is None or problem or not found.uidlist_signature:
            return None
        if found.uidlist_signature != self._uidlist_signature():
            return None
        return self._private(found)

    def record_changes(self, found: Index, changed: list[Entry],
                       extra: dict[int, frozenset[str]] | None = None) -> Index:
        """Under the lock: give each changed entry the next MODSEQ and append it to the
        index (the files were already renamed), with its keywords beyond the 26 letters
        when `extra` has them; the updated index."""
        assert self.index_lock().held, "roost.index is written under the index lock"
        modseq = found.highestmodseq
        entries = dict(found.entries)
        extras = dict(found.extra)
        lines = []
        for entry in changed:
            modseq += 1
            entry = entry._replace(modseq=modseq)
            entries[entry.uid] = entry
            lines.append(index_file.entry_line(entry))
            if extra is not None and entry.uid in extra:
                names = extra[entry.uid]
                if names != extras.get(entry.uid, frozenset()):
                    lines.append(index_file.keywords_line(entry.uid, names))
                if names:
                    extras[entry.uid] = names
                else:
                    extras.pop(entry.uid, None)
        found.entries, found.highestmodseq, found.extra = entries, modseq, extras
        path = self.paths.index_path
        self._index = found
        if path is not None and lines:
            self._index_signature = index_file.signature(
                index_file.append(path, found, "".join(lines)))
            self._share(found)
        return found

    def record_expunged(self, found: Index, gone: list[int]) -> Index:
        """Under the index lock, after `gone` were unlinked: append their `X` records, each
        with the next MODSEQ; the updated index. The dovecot-uidlist signature stays: the
        file still lists them, and a record without its file is what a sync expects of an
        expunge (it drops such records when it rewrites the file under the dotlock)."""
        assert self.index_lock().held, "roost.index is written under the index lock"
        modseq = found.highestmodseq
        entries = dict(found.entries)
        lines = []
        for uid in gone:
            if entries.pop(uid, None) is None:
                continue
            modseq += 1
            lines.append(f"X {uid} {modseq}\n")
            found.expunged[uid] = modseq
        if not lines:
            return found
        if found.extra.keys() & set(gone):
            found.extra = {uid: names for uid, names in found.extra.items() if uid in entries}
        found.entries, found.highestmodseq = entries, modseq
        self._write_index(found, lines)
        return found

    def _write_index(self, found: Index, lines: list[str]) -> None:
        """Append `lines` to roost.index, or rewrite it when appended lines outnumber live
        messages; `found` becomes this folder's index."""
        path = self.paths.index_path
        if path is not None:
            if found.lines + len(lines) > 2 * len(found.entries) + 1000:
                st = index_file.write(path, found)
                self._chown(path)
            else:
                st = index_file.append(path, found, "".join(lines))
            self._index_signature = index_file.signature(st)
        self._index = found
        self._share(found)

    # --- deliveries by this process ---------------------------------------------------------

    def delivery_start(self):
        """Under the lock, before a delivery renames its files into place and appends their
        dovecot-uidlist records: a token for record_delivered() when this object's index is
        loaded and describes dovecot-uidlist as it is (an IMAP session's folder), else None
        (a fresh folder, as LMTP's: nothing is read, the next sync indexes the messages)."""
        path = self.paths.index_path
        if self._index is None or path is None:
            return None
        self.ensure_index_lock()  # held to record_delivered(): no flag change in between
        try:
            if index_file.signature(os.stat(path)) != self._index_signature:
                return None
        except FileNotFoundError:
            return None
        before = self._uidlist_signature()
        if not before or self._index.uidlist_signature != before:
            return None
        return self._private(self._index), before

    def record_delivered(self, token, delivered: list[tuple[int, str, tuple[str, str]]]) -> None:
        """Under the same lock, after the delivery: (uid, base, (subdir, name)) of each new
        message get their roost.index entries and the index the new dovecot-uidlist
        signature, as the next sync would have added them, so that sync (this session's
        and others') finds the index current and needs neither the lock nor a rescan. Any
        surprise (a UID out of order, a file already gone) leaves the work to that sync."""
        if token is None or not delivered:
            return
        found, before = token
        if found is not self._index or found.uidlist_signature != before:
            return  # the delivery had to resync (a damaged dovecot-uidlist): done already
        uidnext = max(next(reversed(found.entries), 0) + 1, found.uidnext)
        expected = list(range(uidnext, uidnext + len(delivered)))
        if [uid for uid, _base, _location in delivered] != expected:
            return
        modseq = found.highestmodseq
        entries = dict(found.entries)
        lines = []
        for uid, base, location in delivered:
            measured = self._measure(location)
            if measured is None:
                return
            modseq += 1
            letters = "" if location[1] == base else split_name(location[1])[1]
            entry = Entry(uid, modseq, measured[0], measured[1], letters, base)
            entries[uid] = entry
            lines.append(index_file.entry_line(entry))
        uidnext = delivered[-1][0] + 1
        if uidnext != found.uidnext:
            lines.append(f"N {uidnext}\n")
        signature = self._uidlist_signature()
        lines.append(f"U {signature}\n")
        found.entries, found.highestmodseq = entries, modseq
        found.uidnext, found.uidlist_signature = uidnext, signature
        path = self.paths.index_path
        try:
            if found.lines + len(lines) > 2 * len(entries) + 1000:
                st = index_file.write(path, found)
                self._chown(path)
            else:
                st = index_file.append(path, found, "".join(lines))
        except OSError as error:
            # the delivery itself is done and durable: only this shortcut is lost (the
            # in-memory index is dropped, the next sync reads the file and catches up)
            log.warning("%s: could not record delivered messages: %s", path, error)
            self._index, self._index_signature = None, ""
            return
        self._index_signature = index_file.signature(st)
        self._index = found
        self._share(found)

    def _read_uidlist(self):
        """(a private copy of the parsed dovecot-uidlist or None, problem). Parsed whole only
        when it was replaced; lines appended since the last read are parsed alone (as
        Dovecot reads it)."""
        path = self.paths.uidlist
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._uidlist_cache = None
            return None, None
        try:
            st = os.fstat(fd)
            cached = self._uidlist_cache
            parsed = None
            if (cached is not None and cached[0] == (st.st_dev, st.st_ino)
                    and st.st_size >= cached[1]
                    and os.pread(fd, len(cached[3]), 0) == cached[3]
                    and os.pread(fd, len(cached[4]), cached[1] - len(cached[4])) == cached[4]):
                # the same file, only grown (a reused inode number would fail the content
                # checks): parse just the appended lines
                parsed = cached[2]
                if st.st_size > cached[1]:
                    parsed = uidlist_file.parse_appended(parsed, os.pread(
                        fd, st.st_size - cached[1], cached[1]))
            if parsed is None:
                data = b""
                while chunk := os.read(fd, 1 << 20):
                    data += chunk
                parsed, problem = uidlist_file.parse(data)
                if parsed is None:
                    self._uidlist_cache = None
                    return None, problem
                size = data.rfind(b"\n") + 1
            else:
                size = parsed.parsed_size
            parsed.parsed_size = size
            tail = min(64, size)
            self._uidlist_cache = ((st.st_dev, st.st_ino), size, parsed,
                                   os.pread(fd, 64, 0), os.pread(fd, tail, size - tail))
            # a line cut short by a crash must not have records appended to it
            self.uidlist_torn = st.st_size != size
        finally:
            os.close(fd)
        return uidlist_file.UidList(parsed.uidvalidity, parsed.next_uid, parsed.guid,
                                    dict(parsed.records), dict(parsed.extensions),
                                    parsed.header_extra, parsed.version), None

    def sync_locked(self, listing: dict[str, tuple[str, str]] | None = None) -> State:
        """The full sync; the caller holds the dovecot-uidlist dotlock. `listing` is a scan
        the caller made under the same lock (and kept up to date with its own renames)."""
        self.ensure_index_lock()
        listing = self.scan() if listing is None else listing
        uidlist_path = self.paths.uidlist
        uids, problem = self._read_uidlist()
        found, index_problem = self._load_index()
        found = self._private(found)
        if index_problem:
            log.warning("Broken file %s: %s - rebuilding", self.paths.index_path, index_problem)
            found = None
        rewrite_uidlist = False
        if uids is None:
            if problem:
                log.warning("Broken file %s: %s - rebuilding", uidlist_path, problem)
            if found is not None:
                last = next(reversed(found.entries), 0)
                uids = uidlist_file.UidList(found.uidvalidity, max(last + 1, found.uidnext),
                                            found.guid,
                                            {u: e.base for u, e in found.entries.items()})
            else:
                uids = uidlist_file.UidList(self.new_uidvalidity(), 1, uidlist_file.new_guid())
            rewrite_uidlist = True
        if uids.version != 3 or not uids.guid or self.uidlist_torn:
            rewrite_uidlist = True
        rewrite_index = False
        if found is None or found.uidvalidity != uids.uidvalidity:
            # a lost index of a mailbox that keeps its UIDVALIDITY: clients may hold MODSEQs
            # from before, so new ones start above any (microseconds since the epoch, which
            # grow faster than MODSEQs do); a new mailbox starts at 1
            base = time.time_ns() // 1000 if uids.records and not rewrite_uidlist else 1
            found = Index(uids.uidvalidity, uids.guid or "", {}, base)
            rewrite_index = True

        # records whose files are gone: expunges, when a second listing agrees
        missing = [uid for uid, base in uids.records.items() if base not in listing]
        if missing:
            listing.update(self.scan())
            missing = [uid for uid in missing if uids.records[uid] not in listing]
        # records of messages roost expunged (an expunge leaves them to this sync): gone
        # even when a file of that name is back (restored, redelivered): it gets a new UID
        expunged = [uid for uid in found.expunged
                    if uid in uids.records and uid not in found.entries]
        if expunged:
            missing = sorted(set(missing).union(expunged))
        floor = uids.uidnext  # UIDs below this were given out: never again
        latest: dict[str, int] = {}
        for uid, base in uids.records.items():
            if expunged and uid in found.expunged and uid not in found.entries:
                continue
            if base in latest:  # a duplicate record: the later UID wins, as in Dovecot
                log.warning("%s: Duplicate file entry: %s (uid %d -> %d)", uidlist_path, base,
                            latest[base], uid)
                missing.append(latest[base])
            latest[base] = uid
        seen = set(latest)
        for uid in missing:
            uids.records.pop(uid, None)
            rewrite_uidlist = True
        uids.next_uid = max(uids.next_uid, floor)
        appended = []
        for base in sorted(set(listing) - seen, key=delivery_order):
            uid = uids.uidnext
            uids.records[uid] = base
            appended.append((uid, base))
        if rewrite_uidlist:
            uidlist_file.write(uidlist_path, uids, fsync=self.fsync)
            self._chown(uidlist_path)
        elif appended:
            uidlist_file.append(uidlist_path, uidlist_file.record_lines(appended))
        return self._update_index(found, uids, listing, rewrite_index)

    def _update_index(self, found: Index, uids, listing, rewrite: bool) -> State:
        modseq = found.highestmodseq
        lines: list[str] = []
        entries: dict[int, Entry] = {}
        for uid, base in uids.records.items():
            location = listing.get(base)
            if location is None:
                continue
            name = location[1]
            letters = "" if name == base else split_name(name)[1]
            old = found.entries.get(uid)
            if old is not None and old.base == base:
                if old.letters == letters:
                    entries[uid] = old
                    continue
                modseq += 1
                entry = old._replace(modseq=modseq, letters=letters)
            else:
                measured = self._measure(location)
                if measured is None:
                    continue  # vanished between listing and stat: the next sync expunges it
                modseq += 1
                entry = Entry(uid, modseq, measured[0], measured[1], letters, base)
            entries[uid] = entry
            lines.append(index_file.entry_line(entry))
        for uid in found.entries.keys() - entries.keys():
            modseq += 1
            lines.append(f"X {uid} {modseq}\n")
            found.expunged[uid] = modseq  # QRESYNC history, exact even when this sync rewrites
        if found.extra.keys() - entries.keys() - set(uids.records):
            found.extra = {uid: names for uid, names in found.extra.items()
                           if uid in entries or uid in uids.records}
        if uids.uidnext != found.uidnext:
            lines.append(f"N {uids.uidnext}\n")
        signature = self._uidlist_signature()
        if signature != found.uidlist_signature:
            lines.append(f"U {signature}\n")
        found.uidnext = uids.uidnext
        found.entries, found.highestmodseq = entries, modseq
        found.uidlist_signature = signature
        found.uidvalidity, found.guid = uids.uidvalidity, uids.guid
        path = self.paths.index_path
        if path is not None:
            if rewrite or found.lines + len(lines) > 2 * len(entries) + 1000:
                st = index_file.write(path, found)
                self._chown(path)
            elif lines:
                st = index_file.append(path, found, "".join(lines))
            else:
                st = None
            if st is not None:
                self._index_signature = index_file.signature(st)
        self._index = found
        if path is not None and st is not None:
            self._share(found)
        state = self._state(found, listing)
        state.uidnext = max(state.uidnext, uids.uidnext)
        return state

    def _measure(self, location: tuple[str, str]) -> tuple[int, int] | None:
        """(internal date, RFC822.SIZE) of a file new to the index."""
        path = self.path_of(location)
        try:
            st = os.stat(path)
            virtual = size_fields(split_name(location[1])[0])[1]
            if virtual is None:
                virtual = virtual_size_of(path)
        except FileNotFoundError:
            return None
        except OSError as error:  # not a readable file (a symlink to a directory...)
            log.warning("Maildir %s: ignoring %s: %s", self.paths.mail, location[1], error)
            return None
        return int(st.st_mtime), virtual


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


_WRITER_PID = re.compile(r"\A\d+\.M\d+P(\d+)\.")


def _writer_alive(name: str) -> bool:
    """Whether the process that named this tmp/ file (`secs.M<usec>P<pid>.host`) still runs:
    its delivery may be in progress even though the mtime is old (APPEND sets the internal
    date on the temporary file, imaptest found the race)."""
    match = _WRITER_PID.match(name)
    if match is None:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True
