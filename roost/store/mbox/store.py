"""One user's mbox mailboxes: INBOX in the spool (`/var/mail/%u`), folders under `~/mail`.

Implements roost.store.api.UserStore for Dovecot's `mbox:~/mail:INBOX=/var/mail/%u` location
(doc.dovecot.org "mbox"): every mailbox is a file, folders nest as directories (LAYOUT=fs,
separator "/"), directories are `\\Noselect`, files and directories starting with "." are not
mailboxes (`.imap` holds Dovecot's index, `.subscriptions` the subscriptions, as Dovecot keeps
them). Delivery and rewrites go through roost.store.mbox.writer under the dotlock and the
exclusive fcntl lock; quotas through roost.store.quota (usage = the size of every mailbox
file, as Dovecot's `count` backend sees it after a recalculation).

Invariants: INBOX always exists for delivery (created 0600 on first use, as Postfix and
Dovecot do); a mailbox name never resolves outside the mail root.
Security: names with "..", ".", empty segments, a leading "/" or "~", NUL or control
characters are refused (InvalidMailboxName) before touching the file system.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import BinaryIO, Callable

from roost.store.api import (InvalidMailboxName, MailboxExists, MailboxInfo, MailboxInUse,
                             MailboxNotFound, SessionLock, StoreError, UserStore)
from roost.store.dirs import make_dirs
from roost.store.mbox import appendcache, writer
from roost.store.mbox.format import Entry
from roost.store.mbox.lock import DOTLOCK_STALE_TIMEOUT, LOCK_TIMEOUT, LockedMbox
from roost.store.mbox.mailbox import MboxMailbox
from roost.store.quota import QuotaRule

MAX_NAME = 255
SUBSCRIPTIONS = ".subscriptions"
INDEX_DIR = ".imap"


def return_path(header: bytes) -> str | None:
    """The envelope sender LMTP/LDA put in `Return-Path:` (for the From_ line), if first."""
    first = header.split(b"\n", 1)[0]
    if first[:12].lower() != b"return-path:":
        return None
    value = first[12:].strip().decode("utf-8", "replace")
    return value[1:-1] if value.startswith("<") and value.endswith(">") else value


class _FlockSession(SessionLock):
    def __init__(self, fd: int):
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = -1


class MboxUserStore(UserStore):
    separator = "/"

    def __init__(self, user: str, root: str, inbox: str, *, quota: QuotaRule | None = None,
                 index_dir: str | None = None, lock_timeout: float = LOCK_TIMEOUT,
                 stale_timeout: float = DOTLOCK_STALE_TIMEOUT, fsync: bool = True,
                 owner: tuple[int | None, int | None] = (None, None)):
        self.user = user
        self.root = root.rstrip("/") or "/"
        self.inbox = inbox
        self.quota = quota or QuotaRule()
        self.index_dir = index_dir or os.path.join(self.root, INDEX_DIR)
        self.lock_timeout = lock_timeout
        self.stale_timeout = stale_timeout
        self.fsync = fsync
        self.owner = owner  # (uid, gid) for files and directories created while root

    def _give(self, path: str) -> None:
        """Hand what roost created as root to the mail user (Dovecot creates it as them)."""
        uid, gid = self.owner
        if os.geteuid() != 0 or (uid is None and gid is None):
            return
        try:
            info = os.lstat(path)
            if info.st_uid == 0:
                os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid,
                         follow_symlinks=False)
        except OSError:
            pass

    def _makedirs(self, path: str) -> None:
        make_dirs(path, self._give)

    def _create_file(self, path: str, exclusive: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if exclusive else 0)
        os.close(os.open(path, flags, 0o600))
        self._give(path)

    # --- names ---------------------------------------------------------------------------
    def path_of(self, name: str) -> str:
        if name.upper() == "INBOX":
            return self.inbox
        if (not name or len(name) > MAX_NAME or name.startswith(("/", "~"))
                or any(ord(char) < 32 or char == "\x7f" for char in name)):
            raise InvalidMailboxName(f"Invalid mailbox name: {name!r}")
        parts = name.rstrip("/").split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            raise InvalidMailboxName(f"Invalid mailbox name: {name!r}")
        return os.path.join(self.root, *parts)

    @staticmethod
    def canonical(name: str) -> str:
        return "INBOX" if name.upper() == "INBOX" else name

    # --- delivery ------------------------------------------------------------------------
    def deliver(self, mailbox: str, source: BinaryIO, *, flags: frozenset[str] = frozenset(),
                keywords: frozenset[str] = frozenset(), internal_date: float | None = None,
                sender: str = "") -> int:
        return self.append_path(self.path_of(mailbox), self.canonical(mailbox), source,
                                flags=flags, keywords=keywords, internal_date=internal_date,
                                delivery=True, sender=sender)

    def append_to(self, mailbox: str, source: BinaryIO, **kwargs) -> int:
        path = self.path_of(mailbox)
        if not os.path.isfile(path):
            raise MailboxNotFound(f"Mailbox doesn't exist: {mailbox}")
        return self.append_path(path, self.canonical(mailbox), source, delivery=False, **kwargs)

    def append_path(self, path: str, name: str, source: BinaryIO, *,
                    flags: frozenset[str] = frozenset(), keywords: frozenset[str] = frozenset(),
                    internal_date: float | None = None, delivery: bool = True,
                    sender: str = "") -> int:
        is_inbox = path == self.inbox
        if not is_inbox and not os.path.isfile(path):
            raise MailboxNotFound(f"Mailbox doesn't exist: {name}")
        if is_inbox and not os.path.exists(path):
            self._makedirs(os.path.dirname(path) or ".")
            self._create_file(path, exclusive=False)
        prepared = writer.prepare(source)
        try:
            if not self.quota.unlimited:
                used = self.quota_usage()[0]
                adding = len(prepared.header) + prepared.body_length + 1
                self.quota.check(used, adding, mailbox=name, delivery=delivery,
                                 used_messages=self.message_count()
                                 if self.quota.message_limit else 0)
            when = time.time() if internal_date is None else internal_date
            if not sender:
                found = return_path(prepared.header)
                sender = self.user if found is None else found  # "" = null sender
            with LockedMbox(path, exclusive=True, create=is_inbox, timeout=self.lock_timeout,
                            stale_timeout=self.stale_timeout) as locked:
                state = appendcache.state_for_append(path, locked.fd)
                if state is None or not writer.can_append_fast(state, keywords):
                    state = writer.read_state(locked.fd)
                if writer.can_append_fast(state, keywords):
                    uid = writer.append_fast(locked.fd, state, prepared, flags, keywords,
                                             sender, when, fsync=self.fsync)
                    appendcache.remember(path, locked.fd, state)
                    return uid
                appendcache.forget(path)
                writer.assign_uids(state)
                uid = state.uidnext
                state.uidnext += 1

                def add_new(fd: int, after_others: bool) -> None:
                    imapbase = None if after_others else (state.uidvalidity, uid,
                                                          tuple(sorted(keywords)))
                    writer.write_all(fd, writer.new_message_head(prepared, uid, flags, keywords,
                                                                 sender, when, imapbase))
                    writer.copy_stream(fd, prepared.body)
                    writer.write_all(fd, b"\n")

                writer.rewrite(path, locked.fd, state, self._edits(state, None, None),
                               appended=add_new, fsync=self.fsync,
                               extra_keywords=frozenset(keywords))
                return uid
        finally:
            prepared.close()

    # --- rewrites ------------------------------------------------------------------------
    @staticmethod
    def _edits(state: writer.MboxState, keep: Callable[[Entry], bool] | None,
               edit: Callable | None) -> list[writer.Edit]:
        edits = []
        for entry in state.entries:
            if entry.pseudo:
                continue  # rewritten as X-IMAPbase of the first message, or anew when empty
            if keep is not None and not keep(entry):
                continue
            changed = edit(entry) if edit is not None else None
            flags, keywords = changed if changed else (entry.flags, frozenset(entry.keywords))
            edits.append(writer.Edit(entry, flags, keywords, entry.recent))
        return edits

    def rewrite(self, path: str, *, keep: Callable[[Entry], bool] | None = None,
                edit: Callable | None = None) -> writer.MboxState:
        """Rewrite `path` keeping/editing messages under the write locks; the new state."""
        with LockedMbox(path, exclusive=True, timeout=self.lock_timeout,
                        stale_timeout=self.stale_timeout) as locked:
            state = writer.read_state(locked.fd)
            if state.needs_uids:
                writer.assign_uids(state)
            edits = self._edits(state, keep, edit)
            real = [entry for entry in state.entries if not entry.pseudo]
            unchanged = (len(edits) == len(real) and not state.needs_uids and all(
                (e.flags, e.keywords) == (e.entry.flags, frozenset(e.entry.keywords))
                for e in edits))
            if not unchanged:
                appendcache.forget(path)
                writer.rewrite(path, locked.fd, state, edits, fsync=self.fsync)
        return self._state_of(path)

    def sync_uids(self, path: str) -> writer.MboxState:
        """Write UIDs into messages another program appended (Dovecot's mbox sync)."""
        return self.rewrite(path)

    def _state_of(self, path: str) -> writer.MboxState:
        with LockedMbox(path, exclusive=False, timeout=self.lock_timeout) as locked:
            return writer.read_state(locked.fd)

    # --- mailboxes -----------------------------------------------------------------------
    def _walk(self) -> list[tuple[str, bool]]:
        """(name, is_selectable) of every mailbox under the root, INBOX apart."""
        found: list[tuple[str, bool]] = []
        if not os.path.isdir(self.root):
            return found
        for directory, subdirs, files in os.walk(self.root):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            relative = os.path.relpath(directory, self.root)
            prefix = "" if relative == "." else relative + "/"
            if prefix:
                found.append((prefix[:-1], False))
            for name in sorted(files):
                full = os.path.join(directory, name)
                if name.startswith(".") or name.endswith(".lock") or full == self.inbox:
                    continue
                if prefix == "" and name.upper() == "INBOX":
                    continue
                found.append((prefix + name, True))
        return found

    def list_mailboxes(self) -> list[MailboxInfo]:
        entries = self._walk()
        names = [name for name, _selectable in entries]
        result = [MailboxInfo("INBOX", frozenset({"\\HasNoChildren"}), None)]
        for name, selectable in sorted(entries):
            children = any(other.startswith(name + "/") for other in names)
            attributes = {"\\HasChildren" if children else "\\HasNoChildren"}
            if not selectable:
                attributes.add("\\Noselect")
            result.append(MailboxInfo(name, frozenset(attributes), None))
        return result

    def create_mailbox(self, name: str) -> None:
        if name.upper() == "INBOX":
            raise MailboxExists("Mailbox already exists")
        path = self.path_of(name)
        self._makedirs(os.path.dirname(path))
        if name.endswith("/"):
            if os.path.exists(path):
                raise MailboxExists("Mailbox already exists")
            self._makedirs(path)
            return
        try:
            self._create_file(path, exclusive=True)
        except FileExistsError:
            raise MailboxExists("Mailbox already exists") from None
        except IsADirectoryError:
            raise MailboxExists("Mailbox already exists") from None

    def delete_mailbox(self, name: str) -> None:
        if name.upper() == "INBOX":
            raise StoreError("INBOX can't be deleted.")
        path = self.path_of(name)
        if os.path.isdir(path):
            try:
                os.rmdir(path)
            except OSError:
                raise StoreError("Mailbox has children, delete them first") from None
            return
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise MailboxNotFound(f"Mailbox doesn't exist: {name}") from None
        self.set_subscribed(name, False)

    def rename_mailbox(self, old: str, new: str) -> None:
        target = self.path_of(new)
        if new.upper() == "INBOX" or os.path.exists(target):
            raise MailboxExists("Target mailbox already exists")
        source = self.path_of(old)
        if not os.path.exists(source):
            raise MailboxNotFound(f"Mailbox doesn't exist: {old}")
        self._makedirs(os.path.dirname(target))
        if old.upper() != "INBOX":
            os.rename(source, target)
            return
        # RFC 3501 §6.3.5: renaming INBOX moves its messages and leaves INBOX empty
        with LockedMbox(source, exclusive=True, timeout=self.lock_timeout,
                        stale_timeout=self.stale_timeout) as locked:
            with open(target, "xb") as out:
                os.lseek(locked.fd, 0, os.SEEK_SET)
                while chunk := os.read(locked.fd, writer.COPY_CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            self._give(target)
            appendcache.forget(source)
            os.ftruncate(locked.fd, 0)
            os.fsync(locked.fd)

    def subscriptions(self) -> list[str]:
        try:
            with open(os.path.join(self.root, SUBSCRIPTIONS), encoding="utf-8",
                      errors="replace") as file:
                return [line.rstrip("\n") for line in file if line.strip()]
        except FileNotFoundError:
            return []

    def set_subscribed(self, name: str, subscribed: bool) -> None:
        current = self.subscriptions()
        name = self.canonical(name)
        if (name in current) == subscribed:
            return
        names = current + [name] if subscribed else [n for n in current if n != name]
        self._makedirs(self.root)
        path = os.path.join(self.root, SUBSCRIPTIONS)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as file:
            file.write("".join(n + "\n" for n in names))
            file.flush()
            os.fsync(file.fileno())
        self._give(temporary)
        os.rename(temporary, path)

    def open_mailbox(self, name: str, *, readonly: bool = False) -> MboxMailbox:
        path = self.path_of(name)
        if path == self.inbox and not os.path.exists(path):
            self._makedirs(os.path.dirname(path) or ".")
            self._create_file(path, exclusive=False)
        return MboxMailbox(self, self.canonical(name), path, readonly)

    def lock_session(self, name: str, purpose: str = "pop3") -> SessionLock:
        self.path_of(name)  # validates
        directory = os.path.join(self.index_dir, self.canonical(name).replace("/", "."))
        self._makedirs(directory)
        fd = os.open(os.path.join(directory, f".roost-{purpose}.lock"),
                     os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise MailboxInUse("Mailbox is locked by another session") from None
        return _FlockSession(fd)

    # --- quota ---------------------------------------------------------------------------
    def _mailbox_paths(self) -> list[str]:
        paths = [self.inbox]
        paths += [self.path_of(name) for name, selectable in self._walk() if selectable]
        return paths

    def quota_usage(self) -> tuple[int, int | None]:
        used = 0
        for path in self._mailbox_paths():
            try:
                used += os.stat(path).st_size
            except OSError:
                pass
        return used, self.quota.storage_limit

    def message_count(self) -> int:
        count = 0
        for path in self._mailbox_paths():
            try:
                count += sum(not entry.pseudo for entry in self._state_of(path).entries)
            except OSError:
                pass
        return count
