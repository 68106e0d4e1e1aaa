"""Dovecot's passwd-file passdb and userdb.

Implements Dovecot 2.3's passwd-file format (doc.dovecot.org "Passwd-file"):
`user:password:uid:gid:gecos:home:shell:extra_fields`, where missing trailing fields are
empty, `extra_fields` is everything after the seventh colon (so values may hold colons) as
space-separated `key=value` words (`key` alone means an empty value, e.g. `nopassword`), and
lines starting with `#` and blank lines are ignored. Args: `[scheme=S] [username_format=F]
PATH`; PATH may hold `%u/%n/%d` variables (one file per domain), username_format (default
`%u`) picks the key looked up. As in Dovecot: a user listed twice keeps the first line (and
is reported), the default scheme is CRYPT, a missing file named by a fixed path is an
internal failure while a missing per-user file means unknown user.

Invariants: parsing never raises: bad lines (no password field, empty user name, NUL bytes)
are reported as `file, line N` warnings and skipped. A file is re-read when its inode, size
or mtime changes, checked at most once a second per file.
Security: the file may hold hashes only readable by the auth process; its contents never
reach a log except as an excerpt of a user name.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from roost.auth import variables
from roost.auth.passdb import (AuthContext, PassdbResult, PassdbStatus, VerifyFn,
                               check_password, internal_failure, parse_args,
                               split_extra_fields, unknown_user)
from roost.auth.userdb import UserdbResult, UserdbStatus, user_fields
from roost.config.diagnostics import Diagnostics, excerpt

DRIVER = "passwd-file"
DEFAULT_SCHEME = "CRYPT"
RECHECK_INTERVAL = 1.0  # seconds between stat() checks of one file
MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class PasswdEntry:
    user: str
    password: str | None  # None: no password field at all
    uid: str
    gid: str
    gecos: str
    home: str
    shell: str
    extra: dict[str, str] = field(default_factory=dict)
    line: int = 0


def parse_extra_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for word in text.split():
        key, _eq, value = word.partition("=")
        if key:
            fields[key] = value
    return fields


def parse_passwd_file(text: str, path: str, diags: Diagnostics) -> dict[str, PasswdEntry]:
    """Every user of a passwd-file, first line wins; problems reported into `diags`."""
    entries: dict[str, PasswdEntry] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if "\0" in line:
            diags.warning(path, number, "NUL character in line, line ignored")
            continue
        parts = line.split(":", 7)
        user = parts[0]
        if not user:
            diags.warning(path, number, "empty user name, line ignored")
            continue
        if len(parts) < 2:
            diags.warning(path, number,
                          f"user {excerpt(user)} has no password field, line ignored")
            continue
        parts += [""] * (8 - len(parts))
        if user in entries:
            diags.warning(path, number, f"User {excerpt(user)} exists more than once "
                                        f"(line {entries[user].line} is used)")
            continue
        entries[user] = PasswdEntry(user, parts[1], parts[2], parts[3], parts[4], parts[5],
                                    parts[6], parse_extra_fields(parts[7]), number)
    return entries


class PasswdFile:
    """One passwd-file, parsed on first use and re-parsed when it changes on disk."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic,
                 warn: Callable[[str], None] | None = None):
        self.path = path
        self.clock = clock
        self.warn = warn
        self.entries: dict[str, PasswdEntry] = {}
        self.diagnostics = Diagnostics()
        self._identity: tuple[int, int, int, int] | None = None
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    def lookup(self, user: str) -> PasswdEntry | None:
        """The entry for `user`; OSError when the file cannot be read."""
        with self._lock:
            self._refresh()
            return self.entries.get(user)

    def _refresh(self) -> None:
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < RECHECK_INTERVAL:
            return
        stat = os.stat(self.path)
        identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if identity != self._identity:
            self._load()
        self._checked_at = now

    def _load(self) -> None:
        with open(self.path, "rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read(MAX_FILE_BYTES + 1)
        diags = Diagnostics()
        if len(data) > MAX_FILE_BYTES:
            diags.warning(self.path, None, f"file larger than {MAX_FILE_BYTES} bytes, "
                                           "the rest is ignored")
            data = data[:MAX_FILE_BYTES]
        self.entries = parse_passwd_file(data.decode("utf-8", "surrogateescape"), self.path,
                                         diags)
        self.diagnostics = diags
        self._identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if self.warn is not None:
            for diagnostic in diags.items:
                self.warn(str(diagnostic))


class PasswdFileSource:
    """The args of one passwd-file block: options, path template and the open files."""

    def __init__(self, path_template: str, username_format: str, scheme: str,
                 clock: Callable[[], float] = time.monotonic,
                 warn: Callable[[str], None] | None = None):
        self.path_template = path_template
        self.username_format = username_format
        self.scheme = scheme
        self.templated = "%" in path_template.replace("%%", "")
        self.clock = clock
        self.warn = warn
        self._files: dict[str, PasswdFile] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_args(cls, kind: str, args: str, file: str, line: int, diags: Diagnostics,
                  **kwargs) -> "PasswdFileSource | None":
        options, path = parse_args(args)
        ok = True
        for key in options:
            if key not in ("scheme", "username_format"):
                diags.fatal(file, line, f"{kind} passwd-file: unknown setting '{excerpt(key)}'")
                ok = False
        if not path:
            diags.fatal(file, line, f"{kind} passwd-file: args must name a file")
            return None
        for template in (path, options.get("username_format", "%u")):
            error = variables.check(template)
            if error is not None:
                diags.fatal(file, line, f"{kind} passwd-file: {excerpt(template)}: {error}")
                ok = False
        if not ok:
            return None
        return cls(path, options.get("username_format", "%u"),
                   options.get("scheme", DEFAULT_SCHEME).upper(), **kwargs)

    def file_for(self, path: str) -> PasswdFile:
        with self._lock:
            found = self._files.get(path)
            if found is None:
                found = self._files[path] = PasswdFile(path, self.clock, self.warn)
            return found

    def find(self, context: AuthContext) -> tuple[PasswdEntry | None, str | None]:
        """(entry, None), (None, None) for unknown user, or (None, error text)."""
        values = context.values()
        try:
            key = variables.expand(self.username_format, values)
            path = variables.expand(self.path_template, values)
        except variables.VariableError as error:
            return None, str(error)
        if self.templated and ("/../" in f"/{path}/" or "\0" in path):
            return None, None  # a user name must not walk out of the directory
        try:
            return self.file_for(path).lookup(key), None
        except FileNotFoundError:
            if self.templated:
                return None, None
            return None, f"open({path}) failed: No such file or directory"
        except OSError as error:
            return None, f"open({path}) failed: {error.strerror or error}"


class PasswdFilePassdb:
    driver = DRIVER

    def __init__(self, source: PasswdFileSource):
        self.source = source

    @classmethod
    def from_args(cls, args: str, file: str, line: int, diags: Diagnostics,
                  **kwargs) -> "PasswdFilePassdb | None":
        source = PasswdFileSource.from_args("passdb", args, file, line, diags, **kwargs)
        return None if source is None else cls(source)

    def verify(self, context: AuthContext, verify: VerifyFn) -> PassdbResult:
        entry, error = self.source.find(context)
        if error is not None:
            return internal_failure(DRIVER, context, error)
        if entry is None:
            return unknown_user(DRIVER, context)
        return check_password(DRIVER, context, entry.password, entry.extra,
                              self.source.scheme, verify)

    def lookup_fields(self, context: AuthContext) -> PassdbResult:
        """Whether the user exists (OK with its fields), without checking a password."""
        entry, error = self.source.find(context)
        if error is not None:
            return internal_failure(DRIVER, context, error)
        if entry is None:
            return unknown_user(DRIVER, context)
        passdb_fields, userdb_fields = split_extra_fields(entry.extra)
        return PassdbResult(PassdbStatus.OK, passdb_fields, userdb_fields)


class PasswdFileUserdb:
    driver = DRIVER

    def __init__(self, source: PasswdFileSource):
        self.source = source

    @classmethod
    def from_args(cls, args: str, file: str, line: int, diags: Diagnostics,
                  **kwargs) -> "PasswdFileUserdb | None":
        source = PasswdFileSource.from_args("userdb", args, file, line, diags, **kwargs)
        return None if source is None else cls(source)

    def lookup(self, context: AuthContext) -> UserdbResult:
        entry, error = self.source.find(context)
        if error is not None:
            return UserdbResult(UserdbStatus.INTERNAL_FAILURE,
                                log=(("error", f"{context.log_prefix(DRIVER)}: {error}"),))
        if entry is None:
            return UserdbResult(UserdbStatus.UNKNOWN_USER)
        fields = {"uid": entry.uid, "gid": entry.gid, "home": entry.home}
        fields = {key: value for key, value in fields.items() if value}
        for key, value in entry.extra.items():
            # Only userdb_-prefixed extra fields belong to the userdb (the rest are passdb
            # fields), as Dovecot's passwd-file userdb does.
            if key.startswith("userdb_"):
                fields[key.removeprefix("userdb_")] = value
        return user_fields(DRIVER, context, fields)
