"""An opened Maildir mailbox: the snapshot IMAP and POP3 sessions work on.

Implements roost.store.api.Mailbox for Maildir: RFC 3501 §2.3 message attributes from the
files and roost.index, STORE as renames of the info part (`:2,<letters>`, flags and
dovecot-keywords letters; keywords beyond the 26 letters in roost.index, as Dovecot keeps
them in its own index), EXPUNGE as unlink, COPY as hard links (RFC 4315 UIDPLUS pairs),
MOVE (RFC 6851) as copy + expunge, UNCHANGEDSINCE (RFC 7162 §3.1.3) against roost.index
MODSEQs, and the change feed (roost.store.notify).

Invariants: messages() changes only in refresh() and in this object's own set_flags /
expunge; every change is recorded in roost.index under its lock (roost.store.maildir.indexlock),
so MODSEQs grow across processes. STORE and EXPUNGE take that lock alone when the index is
current (the common case: no file is created, nothing is listed); an expunge leaves the
dovecot-uidlist records to the next sync under the dotlock, as Dovecot does, and forces one
when they pile up; anything unexpected goes the synced way under the dotlock (lock order:
roost.store.maildir.folder). A rename or unlink that loses a race with another program is
retried after a rescan.
Security: paths are built only from listed file names; a read-only mailbox refuses changes.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterable

from roost.store.api import (SYSTEM_FLAGS, Change, Mailbox, MessageGone, MessageInfo,
                             StoreError)
from roost.store.maildir import deliver
from roost.store.maildir.cache import read_header
from roost.store.maildir.folder import MaildirFolder, State
from roost.store.maildir.errors import store_errors
from roost.store.maildir.index import Entry
from roost.store.maildir.keywords import valid_keyword
from roost.store.maildir.names import (filename_with, flags_of, info_letters, keyword_indexes,
                                       new_base, size_fields, split_name)
from roost.store.maildir.stream import open_crlf
from roost.store.notify import ChangeWatcher, stats_signature


_new_info = object.__new__


class ReadOnlyMailbox(StoreError):
    """A change was attempted on a mailbox opened read-only."""


class MaildirMailbox(Mailbox):
    # slots: every open session keeps one (no per-object __dict__)
    __slots__ = ("store", "name", "folder", "readonly", "_infos", "_entries", "_state",
                 "_watcher", "_letters_cache", "_seen", "uidvalidity", "uidnext",
                 "highestmodseq")

    def __init__(self, store, name: str, folder: MaildirFolder, *, readonly: bool = False):
        self.store = store
        self.name = name
        self.folder = folder
        self.readonly = readonly
        self._infos: dict[int, MessageInfo] = {}
        self._entries: dict[int, Entry] = {}
        self._state: State | None = None
        self._watcher: ChangeWatcher | None = None
        self._letters_cache: dict[str, tuple] = {}
        if not readonly and not folder.tmp_cleaned:
            folder.tmp_cleaned = True
            folder.clean_tmp()
        stats = folder.control_stats()
        self._seen = stats_signature(stats[:2])  # new/ and cur/, as _watch_paths()
        self._apply(folder.sync(stats))

    # --- snapshot --------------------------------------------------------------------------

    def _info(self, entry: Entry, state: State) -> MessageInfo:
        letters = entry.letters
        keywords = state.keywords
        decoded = self._letters_cache.get(letters)
        if decoded is None or decoded[2] is not keywords:
            names = frozenset(keywords[i] for i in keyword_indexes(letters) if i in keywords)
            decoded = (flags_of(letters), names, keywords)
            self._letters_cache[letters] = decoded
        names = decoded[1]
        extra = state.extra.get(entry.uid) if state.extra else None
        if extra:
            names = names | extra
        info = _new_info(MessageInfo)  # the frozen dataclass __init__ costs ~2 µs a field
        info.__dict__.update(uid=entry.uid, flags=decoded[0], keywords=names,
                             size=entry.size, internal_date=float(entry.date),
                             modseq=entry.modseq, guid=entry.base)
        return info

    def _apply(self, state: State, only: Iterable[int] | None = None) -> list[Change]:
        """Take `state` into the snapshot: all of it, or just the uids in `only` (this
        session's own changes: HIGHESTMODSEQ moves to cover them, UIDNEXT stays; other
        sessions' changes arrive with the next refresh(), which callers run before they
        report HIGHESTMODSEQ, RFC 7162 §3.1.2.1)."""
        self._state = state
        changes: list[Change] = []
        if only is not None:
            for uid in only:
                entry = state.entries.get(uid)
                if entry is not None and uid in self._entries:
                    self._entries[uid] = entry
                    self._infos[uid] = self._info(entry, state)
                    self.highestmodseq = max(self.highestmodseq, entry.modseq)
            return changes
        self.uidvalidity = state.uidvalidity
        self.uidnext = state.uidnext
        self.highestmodseq = state.highestmodseq
        old_entries, old_infos = self._entries, self._infos
        for uid in old_entries.keys() - state.entries.keys():
            changes.append(Change("expunge", uid, None))
        changes.sort(key=lambda change: change.uid)
        infos: dict[int, MessageInfo] = {}
        for uid, entry in state.entries.items():
            old = old_entries.get(uid)
            if old is entry or old == entry:
                infos[uid] = old_infos[uid]
                continue
            info = self._info(entry, state)
            infos[uid] = info
            changes.append(Change("flags" if old is not None else "exists", uid, info))
        self._entries, self._infos = dict(state.entries), infos
        return changes

    def messages(self) -> list[MessageInfo]:
        return list(self._infos.values())

    @store_errors
    def refresh(self) -> list[Change]:
        stats = self.folder.control_stats()  # before: a change meanwhile shows as a difference
        self._seen = stats_signature(stats[:2])  # new/ and cur/, as _watch_paths()
        return self._apply(self.folder.sync(stats))

    # --- reading ---------------------------------------------------------------------------

    def message_path(self, uid: int) -> str:
        """The file of `uid` now (rescanning once if it moved); MessageGone."""
        entry = self._entries.get(uid)
        if entry is None:
            raise MessageGone(f"Message UID {uid} has been expunged")
        state = self._state
        location = state.files.get(entry.base) if state else None
        if location is not None:
            path = self.folder.path_of(location)
            if os.path.exists(path):
                return path
        location = self.folder.scan().get(entry.base)
        if location is None:
            raise MessageGone(f"Message UID {uid} has been expunged")
        if state is not None:
            state.files[entry.base] = location
        return self.folder.path_of(location)

    @store_errors
    def open_message(self, uid: int) -> BinaryIO:
        for _attempt in range(3):
            path = self.message_path(uid)
            try:
                return open_crlf(path)
            except FileNotFoundError:
                if self._state is not None:
                    self._state.files.pop(self._entries[uid].base, None)
        raise MessageGone(f"Message UID {uid} has been expunged")

    @store_errors
    def header(self, uid: int) -> bytes:
        """roost extension: the message's header block (through the empty line, CRLF line
        ends), from roost.cache when it is there; MessageGone."""
        entry = self._entries.get(uid)
        if entry is None:
            raise MessageGone(f"Message UID {uid} has been expunged")
        cache = self.folder.header_cache()
        found = cache.get(uid, entry.base)
        if found is not None:
            return found
        with self.open_message(uid) as stream:
            header = read_header(stream)
        cache.put(uid, entry.base, header, _LiveBases(self._entries))
        return header

    # --- changing --------------------------------------------------------------------------

    def _writable(self) -> None:
        if self.readonly:
            raise ReadOnlyMailbox("Mailbox is read-only")

    @store_errors
    def set_flags(self, uids, flags: frozenset[str], keywords: frozenset[str], mode: str,
                  unchangedsince: int | None = None) -> tuple[list[MessageInfo], list[int]]:
        self._writable()
        if mode not in ("add", "remove", "replace"):
            raise ValueError(f"bad mode {mode!r}")
        flags = frozenset(f for f in flags if f in SYSTEM_FLAGS)
        if keywords and mode != "remove":
            known = self.folder.ensure_keywords(sorted(keywords))
        else:
            known = self.folder.keywords()
        by_name = {name: index for index, name in known.items()}
        wanted_idx = {by_name[k] for k in keywords if k in by_name}
        # keywords without a file-name letter (all 26 taken) live in roost.index only
        unlettered = frozenset(k for k in keywords if k not in by_name and valid_keyword(k))
        wanted = sorted(set(uids) & self._entries.keys())

        def plan(entry: Entry, extra: frozenset[str]) -> tuple[str, frozenset[str]]:
            letters = entry.letters
            have, have_idx = flags_of(letters), set(keyword_indexes(letters))
            if mode == "add":
                new, new_idx, new_extra = have | flags, have_idx | wanted_idx, extra | unlettered
            elif mode == "remove":
                new, new_idx = have - flags, have_idx - wanted_idx
                new_extra = extra - frozenset(keywords)
            else:
                new, new_idx, new_extra = flags, wanted_idx, unlettered
            return info_letters(new, new_idx, keep=letters), new_extra

        # the index lock alone (no file is created): dovecot-uidlist keeps base names, which
        # a flag rename does not change (the lock order: roost.store.maildir.folder)
        with self.folder.index_lock():
            quick = self._set_flags_indexed(wanted, plan, unchangedsince)
        if quick is not None:
            state, touched, failed = quick
        else:
            with self.folder.lock():
                state, touched, failed = self._set_flags_synced(wanted, plan, unchangedsince)
        self._apply(state, only=touched)
        return [self._infos[uid] for uid in touched if uid in self._infos], failed

    def _set_flags_indexed(self, wanted, plan, unchangedsince):
        """The common case: the index is current, so rename the files the snapshot knows and
        append their new MODSEQs, without listing the mailbox. None when anything looks off
        (an unsynced change, a file renamed by someone else): then the synced way runs."""
        found = self.folder.current_index()
        if found is None or self._state is None:
            return None
        files = self._state.files
        plans = []
        for uid in wanted:
            entry = found.entries.get(uid)
            location = files.get(entry.base) if entry is not None else None
            if location is None or split_name(location[1])[1] != entry.letters:
                return None
            plans.append((entry, location))
        failed, touched, changed, extras = [], [], [], {}
        for entry, location in plans:
            if unchangedsince is not None and entry.modseq > unchangedsince:
                failed.append(entry.uid)
                continue
            extra = found.extra.get(entry.uid, frozenset())
            letters, new_extra = plan(entry, extra)
            if letters == entry.letters and new_extra == extra:
                if unchangedsince is not None:
                    touched.append(entry.uid)  # RFC 7162 §3.1.3: reported even if no-op
                continue
            if letters != entry.letters:
                name = filename_with(entry.base, letters)
                try:
                    os.rename(self.folder.path_of(location), os.path.join(
                        self.folder.paths.mail, "cur", name))
                except FileNotFoundError:
                    # renamed meanwhile: record what was done, the rest goes the slow way
                    self.folder.record_changes(found, changed, extras)
                    return None
                files[entry.base] = ("cur", name)
            changed.append(entry._replace(letters=letters))
            extras[entry.uid] = new_extra
            touched.append(entry.uid)
        found = self.folder.record_changes(found, changed, extras)
        state = State(found.uidvalidity, max(self.uidnext, found.uidnext), found.highestmodseq,
                      found.entries, files, self.folder.keywords(), found.extra)
        return state, touched, failed

    def _set_flags_synced(self, wanted, plan, unchangedsince):
        """After a full sync: rename what changed (following files others moved), then
        record the new letters and MODSEQs."""
        failed: list[int] = []
        touched: list[int] = []
        changed: list[Entry] = []
        extras: dict[int, frozenset[str]] = {}
        state = self.folder.sync_locked()
        found = self.folder.indexed()
        for uid in wanted:
            entry = state.entries.get(uid)
            if entry is None:
                continue
            if unchangedsince is not None and entry.modseq > unchangedsince:
                failed.append(uid)
                continue
            extra = state.extra.get(uid, frozenset())
            letters, new_extra = plan(entry, extra)
            if letters == entry.letters and new_extra == extra:
                if unchangedsince is not None:
                    touched.append(uid)
                continue
            if letters != entry.letters and not self._rename(state, entry, letters):
                continue
            changed.append(entry._replace(letters=letters))
            extras[uid] = new_extra
            touched.append(uid)
        if changed:
            found = self.folder.record_changes(found, changed, extras)
            state = State(found.uidvalidity, state.uidnext, found.highestmodseq, found.entries,
                          state.files, state.keywords, found.extra)
        return state, touched, failed

    def _rename(self, state: State, entry: Entry, letters: str) -> bool:
        target = os.path.join(self.folder.paths.mail, "cur", filename_with(entry.base, letters))
        for _attempt in range(3):
            location = state.files.get(entry.base)
            if location is None:
                return False
            try:
                os.rename(self.folder.path_of(location), target)
            except FileNotFoundError:
                fresh = self.folder.scan().get(entry.base)
                if fresh is None:
                    state.files.pop(entry.base, None)
                    return False
                state.files[entry.base] = fresh
                continue
            state.files[entry.base] = ("cur", os.path.basename(target))
            return True
        return False

    @store_errors
    def expunge(self, uids=None) -> list[int]:
        self._writable()
        # the index lock alone, as for flags: the files go and roost.index records it; their
        # dovecot-uidlist records stay until the next sync under the dotlock drops them
        # (Dovecot leaves them the same way), so an expunge creates no file
        with self.folder.index_lock():
            gone, done, crowded = self._expunge_indexed(uids)
        if not done or crowded:
            with self.folder.lock():
                if not done:
                    gone += self._expunge_synced(uids, gone)
                else:
                    self.folder.sync_locked()  # drops the records of files gone
        for uid in gone:
            self._entries.pop(uid, None)
            self._infos.pop(uid, None)
        return gone

    def _expunge_indexed(self, uids) -> tuple[list[int], bool, bool]:
        """The common case, like _set_flags_indexed: the index is current, so unlink the
        files the snapshot knows and append their `X` records, without listing the mailbox.
        (uids unlinked, whether all is done, whether dovecot-uidlist has grown to over twice
        what its live records need and wants a sync to rewrite it); a surprise leaves the
        rest to _expunge_synced()."""
        folder = self.folder
        found = folder.current_index()
        if found is None or self._state is None:
            return [], False, False
        if uids is None:
            targets = [uid for uid, e in found.entries.items() if "T" in e.letters]
        else:
            targets = sorted(set(uids) & found.entries.keys())
        files = self._state.files
        plans = []
        for uid in targets:
            entry = found.entries[uid]
            location = files.get(entry.base)
            if location is None or split_name(location[1])[1] != entry.letters:
                return [], False, False
            plans.append((entry, location))
        if not plans:
            return [], True, False
        gone: list[int] = []
        subs = set()
        for entry, location in plans:
            try:
                os.unlink(folder.path_of(location))
            except FileNotFoundError:
                break  # renamed or removed meanwhile: the synced way finds it
            files.pop(entry.base, None)
            gone.append(entry.uid)
            subs.add(location[0])
        self._expunged(gone, [found.entries[uid].base for uid in gone], subs)
        found = folder.record_expunged(found, gone)
        return gone, len(gone) == len(plans), _uidlist_crowded(found)

    def _expunged(self, gone: list[int], bases: list[str], subs) -> None:
        """After unlinking: the quota file, then the directories made durable (before
        roost.index records the expunges: a file a crash brought back would get a new UID)."""
        if not gone:
            return
        self.store.quota_changed(bases, -1)
        if self.folder.fsync:
            for sub in sorted(subs):
                deliver.fsync_dir(os.path.join(self.folder.paths.mail, sub))

    def _expunge_synced(self, uids, done: list[int]) -> list[int]:
        """After a full sync (which records what `done` already unlinked): unlink the rest
        of `uids` (or every \\Deleted message), following files others moved."""
        gone: list[int] = []
        subs = set()
        state = self.folder.sync_locked()
        if uids is None:
            targets = [uid for uid, e in state.entries.items() if "T" in e.letters]
        else:
            targets = sorted(set(uids) & state.entries.keys() - set(done))
        for uid in targets:
            entry = state.entries[uid]
            location = state.files.get(entry.base) or self.folder.scan().get(entry.base)
            if location is None:
                continue
            try:
                os.unlink(self.folder.path_of(location))
            except FileNotFoundError:
                location = self.folder.scan().get(entry.base)
                if location is None:
                    continue
                os.unlink(self.folder.path_of(location))
            subs.add(location[0])
            gone.append(uid)
        self._expunged(gone, [state.entries[uid].base for uid in gone], subs)
        if gone:
            self.folder.sync_locked()
        return gone

    @store_errors
    def append(self, source: BinaryIO, *, flags=frozenset(), keywords=frozenset(),
               internal_date=None) -> int:
        self._writable()
        return self.store.save_into(self.name, self.folder, source, flags, keywords,
                                    internal_date)

    @store_errors
    def copy(self, uids, dest: str) -> list[tuple[int, int]]:
        target = self.store.folder_for(dest)
        wanted = [uid for uid in sorted(set(uids)) if uid in self._entries]
        if not wanted:
            return []
        keyword_names = {name for uid in wanted for name in self._infos[uid].keywords}
        dest_keywords = target.ensure_keywords(sorted(keyword_names)) if keyword_names else {}
        dest_index = {name: index for index, name in dest_keywords.items()}
        size = sum(self._infos[uid].size for uid in wanted)
        self.store.check_quota(size)
        sources: list[int] = []
        items: list[tuple[str, str, str | None]] = []
        try:
            for uid in wanted:
                info = self._infos[uid]
                try:
                    path = self.message_path(uid)
                except MessageGone:
                    continue
                stored, _virtual = size_fields(info.guid)
                base = new_base(stored if stored is not None else os.path.getsize(path),
                                info.size)
                letters = info_letters(info.flags,
                                       [dest_index[k] for k in info.keywords if k in dest_index])
                temp = os.path.join(target.paths.mail, "tmp", base)
                if not self._link(path, temp, target):
                    continue
                sources.append(uid)
                items.append((temp, base, letters or None))
        except BaseException:
            for temp, _base, _letters in items:
                deliver.discard(temp)
            raise
        new_uids = deliver.commit(target, items) if items else []
        self.store.quota_changed([base for _temp, base, _letters in items], 1)
        target.add_unlettered({
            new: frozenset(k for k in self._infos[old].keywords if k not in dest_index)
            for old, new in zip(sources, new_uids)})
        return list(zip(sources, new_uids))

    def _link(self, source: str, destination: str, target: MaildirFolder) -> bool:
        """Hard-link `source` to `destination` (a tmp/ name), else copy it there (fsynced,
        same mtime: the internal date)."""
        if self.store.mail.maildir_copy_with_hardlinks:
            try:
                os.link(source, destination)
                return True
            except FileNotFoundError:
                return False
            except OSError:
                pass  # another file system, or links not allowed: copy the bytes
        try:
            with open(source, "rb") as src, open(destination, "wb") as out:
                while chunk := src.read(1 << 16):
                    out.write(chunk)
                out.flush()
                if target.owner is not None:
                    os.fchown(out.fileno(), *target.owner)
                if target.fsync:
                    os.fdatasync(out.fileno())
            st = os.stat(source)
            os.utime(destination, (st.st_atime, st.st_mtime))
        except FileNotFoundError:
            deliver.discard(destination)
            return False
        return True

    @store_errors
    def move(self, uids, dest: str) -> list[tuple[int, int]]:
        self._writable()
        pairs = self.copy(uids, dest)
        self.expunge([source for source, _dest in pairs])
        return pairs

    def vanished_since(self, modseq: int) -> set[int] | None:
        """From roost.index's expunge history (`X` records: other programs' deletions get
        theirs at the sync that noticed them)."""
        if self.folder.paths.index_path is None:
            return None  # INDEX=MEMORY: no X records are written, so none can be read back
        found = self.folder._index  # the index the last sync left, under any lock or none
        if found is None or found.uidvalidity != self.uidvalidity:
            return None
        return found.expunged_since(modseq)

    # --- change feed -----------------------------------------------------------------------

    def _watch_paths(self) -> list[str]:
        """Every change shows in new/ or cur/ (deliveries, renames, unlinks); the control
        files change only along with them, and with this process's own index writes."""
        paths = self.folder.paths
        return [os.path.join(paths.mail, "new"), os.path.join(paths.mail, "cur")]

    async def wait_changed(self, timeout: float) -> bool:
        if self._watcher is None:
            self._watcher = ChangeWatcher(self._watch_paths())
        return await self._watcher.wait(timeout, since=self._seen)

    def watch(self, callback):
        """roost extension: call `callback()` once, on the running event loop, when
        something may have changed since the last refresh() (no task or future per caller:
        roost.net.imap's IDLE); returns the subscription, `.cancel()` it when done."""
        if self._watcher is None:
            self._watcher = ChangeWatcher(self._watch_paths())
        return self._watcher.subscribe(callback, since=self._seen)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None


UIDLIST_SLACK = 8192


def _uidlist_crowded(found) -> bool:
    """Whether dovecot-uidlist (its size is in the index's signature of it) is over twice
    what records of the live messages take, plus UIDLIST_SLACK bytes: expunged records
    pile up there."""
    try:
        size = int(found.uidlist_signature.split(":")[2])
    except (IndexError, ValueError):
        return False
    if not found.entries:
        return size > UIDLIST_SLACK
    sample = next(iter(found.entries.values()))
    return size > 2 * len(found.entries) * (len(sample.base) + 12) + UIDLIST_SLACK


class _LiveBases:
    """uid -> base name of the current messages, as a view (HeaderCache.put needs len() and
    get()): building a dict of every message per cached header made a first FETCH of n
    messages O(n^2)."""

    def __init__(self, entries):
        self._entries = entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, uid, default=None):
        entry = self._entries.get(uid)
        return default if entry is None else entry.base
