"""mbox locking as Postfix local(8) and Dovecot do it: a dotlock plus an fcntl lock.

Implements the traditional `/var/mail/user.lock` dotlock (created with O_CREAT|O_EXCL, so
only one process holds it; Postfix `mailbox_delivery_lock = fcntl, dotlock`, Dovecot
`mbox_write_locks = fcntl dotlock`) and fcntl record locks over the whole file (Dovecot
`mbox_read_locks = fcntl`: readers take a shared lock, writers an exclusive one). Stale
dotlocks are broken as the two do: at once when the lock names a dead process of this host
(Dovecot writes `pid:host` into it), else when it has not changed for
`mbox_dotlock_change_timeout` (Dovecot, 2 min; Postfix's `stale_lock_time` is 500 s).

fcntl locks are taken as open-file-description locks (Linux F_OFD_SETLK): they conflict with
the classic POSIX locks of Postfix and Dovecot, but belong to one open file, so two threads
of one roost process exclude each other and closing another descriptor never drops a lock.

Invariants: a lock is released exactly once (context managers); a dotlock is removed only by
the holder that created it (checked by inode). Timeouts raise MboxLockTimeout.
Security: the dotlock is created O_EXCL|O_NOFOLLOW with mode 0600, so a planted symlink
cannot redirect it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct
import time

from roost.store.api import StoreError

DOTLOCK_STALE_TIMEOUT = 120.0  # Dovecot mbox_dotlock_change_timeout
LOCK_TIMEOUT = 300.0  # Dovecot mbox_lock_timeout
_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_POLL_START, _POLL_MAX = 0.005, 0.1


class MboxLockTimeout(StoreError):
    """The mailbox stayed locked by someone else (LMTP answers a temporary failure)."""

    def __init__(self, path: str):
        super().__init__(f"Timeout while waiting for lock for mailbox {os.path.basename(path)}")


def _flock_struct(kind: int) -> bytes:
    # struct flock { short l_type, l_whence; off_t l_start, l_len; pid_t l_pid; } (64-bit Linux)
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def _poll_until(attempt, deadline: float, path: str) -> None:
    delay = _POLL_START
    while not attempt():
        if time.monotonic() >= deadline:
            raise MboxLockTimeout(path)
        time.sleep(delay)
        delay = min(delay * 2, _POLL_MAX)


def fcntl_lock(fd: int, exclusive: bool, timeout: float, path: str = "") -> None:
    """Lock the whole file open on `fd` (shared or exclusive), waiting at most `timeout`."""
    request = _flock_struct(fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK)

    def attempt() -> bool:
        try:
            fcntl.fcntl(fd, _F_OFD_SETLK, request)
            return True
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EACCES):
                return False
            raise

    _poll_until(attempt, time.monotonic() + timeout, path)


def fcntl_unlock(fd: int) -> None:
    try:
        fcntl.fcntl(fd, _F_OFD_SETLK, _flock_struct(fcntl.F_UNLCK))
    except OSError:
        pass  # the descriptor is being closed anyway


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DotLock:
    """`PATH.lock`, held while delivering or rewriting; `release()` removes it."""

    def __init__(self, path: str, timeout: float = LOCK_TIMEOUT,
                 stale_timeout: float = DOTLOCK_STALE_TIMEOUT):
        self.path = path + ".lock"
        self.timeout = timeout
        self.stale_timeout = stale_timeout
        self._inode: tuple[int, int] | None = None

    def acquire(self) -> "DotLock":
        _poll_until(self._try_create, time.monotonic() + self.timeout, self.path)
        return self

    def _try_create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            self._break_if_stale()
            return False
        try:
            os.write(fd, f"{os.getpid()}:{socket.gethostname()}".encode())
            info = os.fstat(fd)
            self._inode = (info.st_dev, info.st_ino)
        finally:
            os.close(fd)
        return True

    def _break_if_stale(self) -> None:
        try:
            with open(self.path, "rb") as holder:
                content = holder.read(256).decode("ascii", "replace")
                info = os.fstat(holder.fileno())
        except OSError:
            return  # gone meanwhile: the next attempt may succeed
        pid, _colon, host = content.partition(":")
        dead = (pid.isdigit() and host.strip() == socket.gethostname()
                and not _pid_alive(int(pid)))
        if dead or time.time() - info.st_mtime > self.stale_timeout:
            try:
                current = os.lstat(self.path)
                if (current.st_dev, current.st_ino) == (info.st_dev, info.st_ino):
                    os.unlink(self.path)
            except OSError:
                pass

    def touch(self) -> None:
        """Keep a long-held lock from looking stale (Dovecot updates its dotlocks too)."""
        try:
            os.utime(self.path)
        except OSError:
            pass

    def release(self) -> None:
        if self._inode is None:
            return
        try:
            current = os.lstat(self.path)
            if (current.st_dev, current.st_ino) == self._inode:
                os.unlink(self.path)
        except OSError:
            pass
        self._inode = None

    def __enter__(self) -> "DotLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


class LockedMbox:
    """An mbox file open and locked: exclusive (dotlock + fcntl write) or shared (fcntl read).

    After the fcntl lock is taken the path is checked to still name the opened file (another
    writer may have replaced it by rename); if not, it is reopened.
    """

    def __init__(self, path: str, exclusive: bool, *, create: bool = False,
                 timeout: float = LOCK_TIMEOUT, stale_timeout: float = DOTLOCK_STALE_TIMEOUT,
                 mode: int = 0o600):
        self.path = path
        self.exclusive = exclusive
        self.create = create
        self.timeout = timeout
        self.mode = mode
        self.dotlock = DotLock(path, timeout, stale_timeout) if exclusive else None
        self.fd = -1

    def __enter__(self) -> "LockedMbox":
        if self.dotlock:
            self.dotlock.acquire()
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                flags = (os.O_RDWR if self.exclusive else os.O_RDONLY) | os.O_CLOEXEC | os.O_NOFOLLOW
                if self.create:
                    flags |= os.O_CREAT
                self.fd = os.open(self.path, flags, self.mode)
                fcntl_lock(self.fd, self.exclusive, max(deadline - time.monotonic(), 0), self.path)
                opened = os.fstat(self.fd)
                try:
                    named = os.stat(self.path)
                except FileNotFoundError:
                    named = None
                if named is not None and (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino):
                    return self
                os.close(self.fd)
                self.fd = -1
                if named is None and not self.create:
                    raise FileNotFoundError(errno.ENOENT, "mbox vanished", self.path)
        except BaseException:
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        if self.fd >= 0:
            fcntl_unlock(self.fd)
            os.close(self.fd)
            self.fd = -1
        if self.dotlock:
            self.dotlock.release()

    def __exit__(self, *exc_info) -> None:
        self._cleanup()
