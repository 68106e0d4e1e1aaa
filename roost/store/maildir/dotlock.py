"""Dot-locks shared with Dovecot (`dovecot-uidlist.lock`, `dovecot-keywords.lock`).

Implements the dotlock protocol Dovecot uses for its Maildir control files: the lock is
`<file>.lock` holding `<pid>:<hostname>`, created only if absent (link(2) fails with EEXIST,
as O_EXCL does for Dovecot's dotlock_use_excl). The file is written before it gets the
lock's name (an O_TMPFILE file linked in, or a private temporary name), so a lock is never
seen empty. It is stale when its owner is a dead process on this host, when it is still
empty EMPTY_STALE_TIMEOUT seconds after its creation (a Dovecot holder killed before writing
its pid), or when it has not been touched for `stale_timeout` seconds (Dovecot's
MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT, 2 minutes). `replace()` renames the lock file over the
protected file, so a new version appears atomically.

Invariants: at most one holder (of any program using the same protocol) at a time; a holder
that was SIGKILLed never blocks others (dead pid). Never raises except StoreError on timeout.
Security: lock files are created 0600 in the mailbox's own control directory.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

from roost.store.api import StoreError

STALE_TIMEOUT = 120.0
EMPTY_STALE_TIMEOUT = 5.0
WAIT_TIMEOUT = 30.0
_HOST = socket.gethostname()


_O_TMPFILE = getattr(os, "O_TMPFILE", 0)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


_any_dir_fd: list[int] = []


def _dir_fd() -> int:
    """Some open directory descriptor, passed only so that os.link uses linkat(2) (both
    paths are absolute, so which directory does not matter)."""
    if not _any_dir_fd:
        _any_dir_fd.append(os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    return _any_dir_fd[0]


class LockTimeout(StoreError):
    """Timeout while waiting for a mailbox lock."""


def _owner_dead(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            content = handle.read(256).decode("ascii", "replace").strip()
    except OSError:
        return False
    pid_text, _colon, host = content.partition(":")
    if not pid_text.isdigit() or (host and host != _HOST):
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class DotLock:
    """`with DotLock(path):` holds `path + ".lock"`."""

    def __init__(self, path: str, *, timeout: float = WAIT_TIMEOUT,
                 stale_timeout: float = STALE_TIMEOUT):
        self.path = path
        self.lock_path = path + ".lock"
        self.timeout = timeout
        self.stale_timeout = stale_timeout
        self.fd: int | None = None
        self._temp: str | None = None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        fd = self._prepared()
        try:
            while True:
                try:
                    self._publish(fd)
                except FileExistsError:
                    if self._break_stale():
                        continue
                else:
                    self.fd, fd = fd, -1
                    return
                if time.monotonic() > deadline:
                    raise LockTimeout("Timeout while waiting for lock") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        finally:
            if fd >= 0:
                os.close(fd)
                if self._temp is not None:
                    _unlink(self._temp)

    def _prepared(self) -> int:
        """A file already holding `<pid>:<host>`, not yet under the lock's name: unnamed
        (O_TMPFILE) where the file system allows, else a private temporary name. The lock
        then appears whole, never empty, so a holder killed at any moment is recognised as
        dead at once (with O_EXCL + write, a kill between the two leaves an empty lock)."""
        content = f"{os.getpid()}:{_HOST}".encode()
        directory = os.path.dirname(self.lock_path) or "."
        self._temp = None
        fd = -1
        if _O_TMPFILE and os.path.isdir("/proc/self/fd"):
            try:
                fd = os.open(directory, _O_TMPFILE | os.O_RDWR, 0o600)
            except OSError:
                fd = -1
        if fd < 0:
            self._temp = f"{self.lock_path}.{_HOST}.{os.getpid()}.{threading.get_ident()}"
            fd = os.open(self._temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, content)
        except BaseException:
            os.close(fd)
            if self._temp is not None:
                _unlink(self._temp)
            raise
        return fd

    def _publish(self, fd: int) -> None:
        """Give the prepared file the lock's name; FileExistsError when it is taken."""
        if self._temp is None:
            # linkat(AT_SYMLINK_FOLLOW) gives the unnamed file a name; os.link() would use
            # plain link(2), which cannot follow /proc/self/fd
            os.link(f"/proc/self/fd/{fd}", self.lock_path, src_dir_fd=_dir_fd())
        else:
            os.link(self._temp, self.lock_path)
            _unlink(self._temp)
            self._temp = None

    def _break_stale(self) -> bool:
        """Remove the lock when its holder is dead or it is too old; True to retry now."""
        try:
            st = os.stat(self.lock_path)
        except FileNotFoundError:
            return True
        age = time.time() - st.st_mtime
        # an empty lock is one whose holder died between creating and writing it (a live
        # holder writes its pid microseconds after creating it)
        empty_and_old = st.st_size == 0 and age > EMPTY_STALE_TIMEOUT
        if not (empty_and_old or _owner_dead(self.lock_path) or age > self.stale_timeout):
            return False
        # move it aside first, and only delete it if it is still the lock judged stale:
        # another process may have broken it and taken a fresh lock meanwhile
        aside = f"{self.lock_path}.stale.{os.getpid()}.{threading.get_ident()}"
        try:
            os.rename(self.lock_path, aside)
        except FileNotFoundError:
            return True
        try:
            if os.stat(aside).st_ino != st.st_ino:
                try:
                    os.link(aside, self.lock_path)  # give the fresh lock back
                except FileExistsError:
                    pass
        finally:
            os.unlink(aside)
        return True

    def replace(self, data: bytes, *, fsync: bool = True,
                owner: tuple[int, int] | None = None) -> None:
        """Write `data` into the lock file and rename it over the protected file (this
        releases the lock)."""
        assert self.fd is not None
        fd, self.fd = self.fd, None
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if owner is not None:
                os.fchown(fd, *owner)
            if fsync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        os.rename(self.lock_path, self.path)

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        os.close(fd)
        try:
            os.unlink(self.lock_path)
        except OSError as error:
            if error.errno != errno.ENOENT:
                raise

    def __enter__(self) -> "DotLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()
