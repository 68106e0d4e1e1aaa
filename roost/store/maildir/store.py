"""One user's Maildir store: delivery, the mailbox list, subscriptions, session locks, quota.

Implements roost.store.api.UserStore for Maildir with Dovecot 2.3's on-disk conventions:
INBOX created on first use; `namespace inbox { mailbox X { special_use, auto } }` (RFC 6154
SPECIAL-USE; auto=create/subscribe mailboxes are created when the list is first asked for,
and auto=subscribe ones count as subscribed, as Dovecot shows them); `subscriptions`
(roost.store.maildir.subscriptions); new mailboxes' UIDVALIDITY from `dovecot-uidvalidity`
(roost.store.maildir.uidvalidity); RFC 3501 §6.3.4/§6.3.5 DELETE and RENAME (renaming INBOX
moves its messages into the new mailbox); the namespace prefix (Courier's "INBOX.");
quota through roost.store.quota (only with `quota` in mail_plugins), usage from the S= of
the file names, and the Maildir++ `maildirsize` file kept current when it exists (Dovecot's
quota=maildir backend reads it); POP3 session locks as flock(2) on `roost-session.lock`.

Invariants: INBOX is always listed first and can be neither deleted nor created; a
MaildirFolder object per mailbox is kept so its parsed index is reused; delivery touches
only the target folder (tmp/, new/, dovecot-uidlist append) and maildirsize.
Security: every name goes through Layout.normalize (InvalidMailboxName) before any path is
built; deletion renames the directory out of sight before removing it; running as root, new
files and directories go to the user's uid/gid (as Dovecot's privilege drop would make them).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import time
from typing import BinaryIO

from roost.store import dirs
from roost.store.api import (InvalidMailboxName, MailboxExists, MailboxInfo, MailboxInUse,
                             MailboxNotFound, SessionLock, StoreError, UserStore)
from roost.store.location import MailLocation, MailSettings
from roost.store.maildir import deliver, subscriptions, uidvalidity
from roost.store.maildir.folder import MaildirFolder
from roost.store.maildir.keywords import valid_keyword
from roost.store.maildir.errors import INTERNAL_ERROR, StorageFailure, log, store_errors
from roost.store.maildir.layout import Layout
from roost.store.maildir.mailbox import MaildirMailbox
from roost.store.maildir.names import info_letters, size_fields, split_name

SESSION_LOCK_FILE = "roost-session.lock"
MAILDIRSIZE = "maildirsize"
# quota usage per new/ or cur/ directory, kept across the stores one worker process opens
# (LMTP opens one per delivery): (dev, ino, mtime) -> (bytes, messages)
_USAGE_CACHE: dict[str, tuple[tuple, int, int]] = {}
USAGE_CACHE_LIMIT = 20000


class FlockSession(SessionLock):
    def __init__(self, fd: int):
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)  # closing drops the flock


def make_dirs(path: str, owner: tuple[int, int] | None) -> None:
    """os.makedirs, giving every directory it creates to `owner`."""
    dirs.make_dirs(path, None if owner is None else lambda directory: os.chown(directory, *owner))


def make_maildir(path: str, owner: tuple[int, int] | None = None) -> None:
    for sub in ("cur", "new", "tmp"):
        make_dirs(os.path.join(path, sub), owner)


class MaildirUserStore(UserStore):
    def __init__(self, user: str, location: MailLocation, mail: MailSettings | None = None, *,
                 quota=None, user_extra: dict | None = None):
        self.user = user
        self.location = location
        self.mail = mail or MailSettings()
        self.layout = Layout(location, self.mail.separator, self.mail.prefix)
        self.prefix = self.layout.prefix
        self.separator = self.layout.separator
        self.fsync = self.mail.mail_fsync != "never"
        self._folders: dict[str, MaildirFolder] = {}
        self._defer_cache = False
        self._auto_done = False
        self._quota = quota
        self._user_extra = user_extra or {}
        # running as root for a user with its own UID: new files and directories are theirs
        self.owner = ((location.uid, location.gid if location.gid is not None else -1)
                      if os.geteuid() == 0 and location.uid not in (None, 0) else None)

    # --- folders ---------------------------------------------------------------------------

    def _new_uidvalidity(self) -> int:
        return uidvalidity.next_uidvalidity(self.layout.control_root(), self.owner)

    def folder_for(self, name: str, *, create_inbox: bool = True) -> MaildirFolder:
        """The folder of an existing mailbox; MailboxNotFound, InvalidMailboxName."""
        name = self.layout.normalize(name)
        folder = self._folders.get(name)
        if folder is not None and os.path.isdir(os.path.join(folder.paths.mail, "tmp")):
            return folder
        paths = self.layout.paths(name)
        if not os.path.isdir(os.path.join(paths.mail, "cur")):
            if name != "INBOX" or not create_inbox:
                raise MailboxNotFound(f"Mailbox doesn't exist: {name}")
            make_maildir(paths.mail, self.owner)
        for directory in (paths.control, paths.index):
            if directory and directory != paths.mail:
                make_dirs(directory, self.owner)
        folder = MaildirFolder(paths, self._new_uidvalidity, fsync=self.fsync,
                               owner=self.owner)
        if self._defer_cache:
            folder.defer_cache_writes(True)
        self._folders[name] = folder
        return folder

    @contextlib.contextmanager
    def deferred_cache_writes(self):
        """Hold the folders' roost.cache appends until the block ends (roost.net.imap wraps
        each command in it: a FETCH of many headers appends them in a few writes)."""
        self._defer_cache = True
        for folder in self._folders.values():
            folder.defer_cache_writes(True)
        try:
            yield
        finally:
            self._defer_cache = False
            for folder in list(self._folders.values()):
                folder.defer_cache_writes(False)

    # --- delivery --------------------------------------------------------------------------

    def quota_rule(self):
        """The user's QuotaRule (plugin settings, userdb fields win; none without the quota
        plugin in mail_plugins); a bad rule is an internal error, as in Dovecot."""
        if self._quota is None:
            from roost.store.quota import QuotaConfigError, QuotaRule

            try:
                self._quota = QuotaRule.from_settings(self.mail.plugin, self._user_extra,
                                                      self.mail.mail_plugins)
            except QuotaConfigError as error:
                log.error("quota: %s", error)
                raise StorageFailure(INTERNAL_ERROR) from None
        return self._quota

    def check_quota(self, adding: int, *, mailbox: str = "INBOX", delivery: bool = False,
                    adding_messages: int = 1) -> None:
        rule = self.quota_rule()
        if rule.unlimited:
            return
        used, count = self._usage()
        rule.check(used, adding, used_messages=count, adding_messages=adding_messages,
                   mailbox=mailbox, delivery=delivery)

    def save_into(self, name: str, folder: MaildirFolder, source: BinaryIO, flags, keywords,
                  internal_date, *, delivery: bool = False) -> int:
        index_of = {}
        if keywords:
            known = folder.ensure_keywords(sorted(keywords))
            index_of = {kw: i for i, kw in known.items()}
        letters = info_letters(flags, [index_of[k] for k in keywords if k in index_of])
        rule = self.quota_rule()
        check = None
        if not rule.unlimited:
            def check(size: int) -> None:
                self.check_quota(size, mailbox=name, delivery=delivery)
        uid, base = deliver.save(folder, source, letters or None, internal_date, check)
        self.quota_changed([base], 1)
        unlettered = frozenset(k for k in keywords if k not in index_of and valid_keyword(k))
        if unlettered:
            folder.add_unlettered({uid: unlettered})
        return uid

    def quota_changed(self, bases: list[str], sign: int) -> None:
        """Keep a Maildir++ `maildirsize` file (Dovecot's quota=maildir backend) current:
        append `<bytes> <messages>` for what was added (sign 1) or removed (sign -1), as
        the Maildir++ quota convention says, when the file exists; never create it."""
        total = 0
        for base in bases:
            stored, virtual = size_fields(base)
            total += stored if stored is not None else (virtual or 0)
        path = os.path.join(self.layout.root, MAILDIRSIZE)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return
        try:
            os.write(fd, b"%d %d\n" % (sign * total, sign * len(bases)))
        finally:
            os.close(fd)

    @store_errors
    def deliver(self, mailbox: str, source: BinaryIO, *, flags=frozenset(),
                keywords=frozenset(), internal_date=None) -> int:
        name = self.layout.normalize(mailbox)
        return self.save_into(name, self.folder_for(name), source, flags, keywords,
                              internal_date, delivery=True)

    # --- quota -----------------------------------------------------------------------------

    def _usage(self) -> tuple[int, int]:
        """(bytes, messages) over every mailbox: stored sizes from the file names (S=),
        recounted only for directories whose mtime changed."""
        total = count = 0
        names = ["INBOX", *self.layout.list_names()]
        cache = _USAGE_CACHE
        if len(cache) > USAGE_CACHE_LIMIT:
            cache.clear()
        now = time.time_ns()
        for name in names:
            mail = self.layout.mail_dir(name)
            for sub in ("new", "cur"):
                directory = os.path.join(mail, sub)
                try:
                    st = os.stat(directory)
                except OSError:
                    continue
                key = (st.st_dev, st.st_ino, st.st_mtime_ns)
                cached = cache.get(directory)
                if cached is None or cached[0] != key:
                    cached = (key, *self._count(directory))
                    # a directory changed within the clock tick may change again unseen
                    if now - st.st_mtime_ns > 2_000_000_000:
                        cache[directory] = cached
                total += cached[1]
                count += cached[2]
        return total, count

    @staticmethod
    def _count(directory: str) -> tuple[int, int]:
        total = count = 0
        try:
            names = os.listdir(directory)
        except OSError:
            return 0, 0
        for name in names:
            if name.startswith("."):
                continue
            stored, virtual = size_fields(split_name(name)[0])
            size = stored if stored is not None else virtual
            if size is None:
                try:
                    size = os.path.getsize(os.path.join(directory, name))
                except OSError:
                    continue
            total += size
            count += 1
        return total, count

    @store_errors
    def quota_usage(self) -> tuple[int, int | None]:
        rule = self.quota_rule()
        return self._usage()[0], rule.storage_limit

    # --- mailbox list ----------------------------------------------------------------------

    def _auto_create(self) -> None:
        if self._auto_done:
            return
        self._auto_done = True
        for auto in self.mail.mailboxes:
            if auto.auto in ("create", "subscribe"):
                try:
                    name = self.layout.normalize(self._auto_name(auto.name))
                    if name != "INBOX" and not self.layout.exists(name):
                        self.create_mailbox(name)
                except (MailboxExists, InvalidMailboxName):
                    pass

    def _auto_name(self, name: str) -> str:
        """A `mailbox` block's name as a full mailbox name (blocks name it without the
        namespace prefix)."""
        if name.upper() == "INBOX" or not self.prefix or name.startswith(self.prefix):
            return name
        return self.prefix + name

    def special_use(self, name: str) -> str | None:
        for auto in self.mail.mailboxes:
            if self._auto_name(auto.name) == name and auto.special_use:
                return auto.special_use
        return None

    @store_errors
    def list_mailboxes(self) -> list[MailboxInfo]:
        self._auto_create()
        self.folder_for("INBOX")
        existing = set(self.layout.list_names())
        sep = self.separator
        every = set(existing)
        for name in existing:  # parents that exist only as a prefix are \Noselect
            parts = name.split(sep)
            for depth in range(1, len(parts)):
                every.add(sep.join(parts[:depth]))
        has_children = {sep.join(n.split(sep)[:-1]) for n in every if sep in n}
        result = [MailboxInfo("INBOX", frozenset(
            {"\\HasChildren" if "INBOX" in has_children else "\\HasNoChildren"}),
            self.special_use("INBOX"))]
        for name in sorted(every - {"INBOX"}):
            attributes = {"\\HasChildren" if name in has_children else "\\HasNoChildren"}
            if name not in existing or not self.layout.exists(name):
                attributes.add("\\Noselect")
            result.append(MailboxInfo(name, frozenset(attributes), self.special_use(name)))
        return result

    @store_errors
    def create_mailbox(self, name: str) -> None:
        name = self.layout.normalize(name)
        if name == "INBOX" or self.layout.exists(name):
            raise MailboxExists("Mailbox already exists")
        paths = self.layout.paths(name)
        make_maildir(paths.mail, self.owner)
        if self.layout.kind == "maildir++":
            marker = os.path.join(paths.mail, "maildirfolder")
            open(marker, "ab").close()
            if self.owner is not None:
                os.chown(marker, *self.owner)
        self._folders.pop(name, None)
        self.folder_for(name).sync()  # gives it its UIDVALIDITY now, as Dovecot does

    @store_errors
    def delete_mailbox(self, name: str) -> None:
        name = self.layout.normalize(name)
        if name == "INBOX":
            raise StoreError("INBOX can't be deleted.")
        if not self.layout.exists(name):
            raise MailboxNotFound(f"Mailbox doesn't exist: {name}")
        paths = self.layout.paths(name)
        self._folders.pop(name, None)
        children = [n for n in self.layout.list_names() if n.startswith(name + self.separator)]
        if self.layout.kind == "fs" and children:
            for sub in ("cur", "new", "tmp"):
                shutil.rmtree(os.path.join(paths.mail, sub), ignore_errors=True)
            for leftover in os.listdir(paths.mail):
                path = os.path.join(paths.mail, leftover)
                if os.path.isfile(path):
                    os.unlink(path)
            return
        for directory in {paths.mail, paths.control, paths.index} - {None}:
            if not os.path.isdir(directory):
                continue
            trash = os.path.join(os.path.dirname(directory),
                                 "..roost-deleted." + secrets.token_hex(6))
            os.rename(directory, trash)
            shutil.rmtree(trash, ignore_errors=True)

    @store_errors
    def rename_mailbox(self, old: str, new: str) -> None:
        old, new = self.layout.normalize(old), self.layout.normalize(new)
        if new == "INBOX" or self.layout.exists(new):
            raise MailboxExists("Target mailbox already exists")
        if old == "INBOX":
            self._rename_inbox(new)
            return
        children = [(child, new + child[len(old):]) for child in self.layout.list_names()
                    if child.startswith(old + self.separator)]
        exists = self.layout.exists(old) or (self.layout.kind == "fs"
                                             and os.path.isdir(self.layout.mail_dir(old)))
        if not exists and not children:  # a \Noselect parent renames its children (Dovecot)
            raise MailboxNotFound(f"Mailbox doesn't exist: {old}")
        if new.startswith(old + self.separator):
            raise InvalidMailboxName("Can't rename mailbox under itself.")
        moves = ([(old, new)] if exists else []) + children
        if self.layout.kind == "fs":
            moves = [(old, new)]  # the children move with their parent directory
        for source, target in moves:
            before, after = self.layout.paths(source), self.layout.paths(target)
            for a, b in ((before.mail, after.mail), (before.control, after.control),
                         (before.index, after.index)):
                if a and b and a != b and os.path.isdir(a) and not os.path.exists(b):
                    os.makedirs(os.path.dirname(b), exist_ok=True)
                    os.rename(a, b)
            self._folders.pop(source, None)
        self._folders.clear()

    def _rename_inbox(self, new: str) -> None:
        """RFC 3501 §6.3.5: INBOX's messages move to `new`; INBOX stays, empty."""
        self.create_mailbox(new)
        box = self.open_mailbox("INBOX")
        try:
            uids = [info.uid for info in box.messages()]
            if uids:
                box.move(uids, new)
        finally:
            box.close()

    # --- subscriptions ---------------------------------------------------------------------

    @store_errors
    def subscriptions(self) -> list[str]:
        names = [name if name.upper() == "INBOX" else self.layout.outer(name)
                 for name in subscriptions.read(self.layout.control_root(), self.separator)]
        for auto in self.mail.mailboxes:
            name = self._auto_name(auto.name)
            if auto.auto == "subscribe" and name not in names:
                names.append(name)
        return names

    @store_errors
    def set_subscribed(self, name: str, subscribed: bool) -> None:
        name = self.layout.normalize(name)
        if name != "INBOX":
            name = self.layout.inner(name)  # stored without the namespace prefix
        subscriptions.update(self.layout.control_root(), self.separator, name, subscribed,
                             owner=self.owner)

    # --- sessions --------------------------------------------------------------------------

    @store_errors
    def open_mailbox(self, name: str, *, readonly: bool = False) -> MaildirMailbox:
        name = self.layout.normalize(name)
        return MaildirMailbox(self, name, self.folder_for(name), readonly=readonly)

    @store_errors
    def lock_session(self, name: str, purpose: str = "pop3") -> SessionLock:
        folder = self.folder_for(name)
        path = os.path.join(folder.paths.control, SESSION_LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if self.owner is not None:
                os.fchown(fd, *self.owner)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise MailboxInUse("Mailbox is locked by another session") from None
        return FlockSession(fd)
