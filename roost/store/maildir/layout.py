"""Where each mailbox of a Maildir store lives: Maildir++ (`.a.b`) or LAYOUT=fs (`a/b`).

Implements Dovecot 2.3's mailbox list layouts for Maildir (doc.dovecot.org "Mailbox list
layouts", observed with Dovecot 2.3.19): Maildir++ keeps INBOX in the root and every other
mailbox in `<root>/.<name with '.' between levels>` (the parent of `.a.b` need not exist: it
is listed \\Noselect); LAYOUT=fs keeps INBOX in the root and `a/b` in `<root>/a/b`. Names are
Unicode in the API and modified UTF-7 (RFC 3501 §5.1.3) on disk. INBOX= moves INBOX,
CONTROL= and INDEX= move the control files and roost.index into a parallel tree.

Invariants: every path returned is inside the configured roots (names are checked by
names.mailbox_name_problem first); listing never raises on odd directory entries.
Security: this module is the only place mailbox names become paths.
"""

from __future__ import annotations

import os

from roost.store.api import InvalidMailboxName
from roost.store.location import MailLocation
from roost.store.maildir.folder import FolderPaths
from roost.store.maildir.names import disk_name, mailbox_name_problem, user_name

MAX_LIST_DEPTH = 32


class Layout:
    __slots__ = ("location", "root", "kind", "separator", "prefix")  # one per session

    def __init__(self, location: MailLocation, separator: str = "", prefix: str = ""):
        self.location = location
        self.root = location.root
        self.kind = "fs" if location.layout == "fs" else "maildir++"
        self.separator = separator or ("/" if self.kind == "fs" else ".")
        self.prefix = prefix  # the namespace prefix (e.g. Courier's "INBOX."), "" usually

    # --- names -----------------------------------------------------------------------------

    def normalize(self, name: str) -> str:
        """INBOX in any case is INBOX (RFC 3501 §5.1); other names carry the namespace
        prefix; InvalidMailboxName for bad names."""
        if name.upper() == "INBOX":
            return "INBOX"
        inner = self.inner(name)
        problem = mailbox_name_problem(inner, self.separator, self.kind)
        if problem:
            raise InvalidMailboxName(problem)
        return self.prefix + inner

    def inner(self, name: str) -> str:
        """`name` without the namespace prefix (INBOX. matches in any case)."""
        if not self.prefix:
            return name
        if name.startswith(self.prefix):
            return name[len(self.prefix):]
        if self.prefix.upper().startswith("INBOX") and name.upper().startswith(self.prefix.upper()):
            return name[len(self.prefix):]
        raise InvalidMailboxName("Namespace doesn't exist")

    def outer(self, inner: str) -> str:
        return self.prefix + inner

    def parts(self, name: str) -> list[str]:
        return [disk_name(part) for part in name.split(self.separator)]

    def relative(self, name: str) -> str:
        """The mailbox's path below the root ("" for INBOX)."""
        if name == "INBOX":
            return ""
        name = self.inner(name)
        if self.kind == "fs":
            return os.path.join(*self.parts(name))
        return "." + ".".join(self.parts(name))

    def mail_dir(self, name: str) -> str:
        if name == "INBOX" and self.location.inbox and self.location.driver == "maildir":
            return self.location.inbox
        relative = self.relative(name)
        return os.path.join(self.root, relative) if relative else self.root

    def _beside(self, base: str, name: str) -> str:
        """The mailbox's directory in a CONTROL=/INDEX= tree; INBOX gets `.INBOX`
        (Maildir++) or `INBOX` (fs) there, as `doveadm mailbox path` shows."""
        relative = self.relative(name) or (".INBOX" if self.kind == "maildir++" else "INBOX")
        return os.path.join(base, relative)

    def paths(self, name: str) -> FolderPaths:
        mail = self.mail_dir(name)
        control = self._beside(self.location.control, name) if self.location.control else mail
        index_root = self.location.index
        if index_root == "MEMORY":
            index = None
        elif index_root:
            index = self._beside(index_root, name)
        else:
            index = control
        return FolderPaths(mail, control, index)

    def control_root(self) -> str:
        return self.location.control or self.root

    # --- existence and listing -------------------------------------------------------------

    def exists(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self.mail_dir(name), "cur"))

    def list_names(self) -> list[str]:
        """Every existing mailbox except INBOX, in user form."""
        if self.kind == "fs":
            return self._list_fs()
        found = []
        try:
            entries = os.scandir(self.root)
        except OSError:
            return []
        with entries:
            for entry in entries:
                if not entry.name.startswith(".") or entry.name in (".", ".."):
                    continue
                parts = entry.name[1:].split(".")
                if any(not part for part in parts):
                    continue
                try:
                    if not entry.is_dir():
                        continue
                except OSError:
                    continue
                name = self.separator.join(user_name(part) for part in parts)
                if name.upper() == "INBOX" and not self.prefix:
                    continue
                if mailbox_name_problem(name, self.separator, self.kind) is None:
                    found.append(self.prefix + name)
        return found

    def _list_fs(self) -> list[str]:
        found = []
        todo = [("", self.root, 0)]
        while todo:
            prefix, directory, depth = todo.pop()
            if depth >= MAX_LIST_DEPTH:
                continue
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or entry.name in ("new", "cur", "tmp"):
                    continue
                try:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                name = prefix + user_name(entry.name)
                if prefix == "" and name.upper() == "INBOX" and not self.prefix:
                    continue
                if mailbox_name_problem(name, self.separator, self.kind) is None:
                    found.append(self.prefix + name)
                    todo.append((name + self.separator, entry.path, depth + 1))
        return found
