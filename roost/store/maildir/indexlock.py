"""The roost.index writer lock: flock(2) on `roost.index.lock`, a file that is never removed.

roost.index (roost.store.maildir.index) is roost's own file: no other program writes it, so
its writers need not use Dovecot's dotlock protocol, whose every acquisition creates and
removes a file (0.4-0.7 ms of system time on a journal-less ext4). This lock is a kernel
lock on a descriptor of a permanent file beside roost.index (or beside dovecot-uidlist with
INDEX=MEMORY): created once per mailbox, opened once per process (lazily: idle sessions
never open it), then a few syscalls per acquisition. A dead holder's lock goes with its
process. One IndexLock per mailbox and process (for_path()), shared by the folder objects of
all its sessions: one descriptor per mailbox, not per session, and threads of the process
queue on its mutex rather than polling flock.

Lock order (roost.store.maildir.folder): the dovecot-uidlist dotlock (U), then this lock (I);
a holder of I never waits for U, so roost processes cannot deadlock against each other, and
Dovecot, which knows only U, never waits for anything roost holds under I.

Invariants: at most one holder per mailbox among all roost processes and threads (flock
excludes other open file descriptions, a mutex the threads sharing this object's
descriptor); a forked child opens its own descriptor (an inherited one shares the parent's
lock, so it would exclude nothing); acquire() re-checks that the locked file still has a
name (someone may delete it by hand: then the file at the path is locked instead); raises
only LockTimeout (after `timeout` seconds).
Security: the file is created 0600, owned by the mailbox owner; it holds no data.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref

from roost.store.maildir.dotlock import WAIT_TIMEOUT, LockTimeout

FILE_NAME = "roost.index.lock"


class IndexLock:
    __slots__ = ("path", "owner", "timeout", "_fd", "_mutex", "_holder", "__weakref__")

    def __init__(self, path: str, owner: tuple[int, int] | None = None, *,
                 timeout: float = WAIT_TIMEOUT):
        self.path = path
        self.owner = owner
        self.timeout = timeout
        self._fd = -1
        self._mutex = threading.Lock()
        self._holder = 0  # thread ident of the holder, 0 when free

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._holder == threading.get_ident()

    def _open(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            # flock needs no write permission: a read-only descriptor serves every writer
            fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if self.owner is not None:
                try:
                    os.fchown(fd, *self.owner)
                except OSError:
                    os.close(fd)
                    raise
        self._fd = fd
        return fd

    def acquire(self) -> None:
        me = threading.get_ident()
        assert self._holder != me, "index lock is not reentrant"
        if not self._mutex.acquire(timeout=self.timeout):
            raise LockTimeout("Timeout while waiting for lock")
        try:
            self._lock_file()
        except BaseException:
            self._mutex.release()
            raise
        self._holder = me

    def ensure(self) -> None:
        """Acquire unless the calling thread holds it already."""
        if self._holder != threading.get_ident():
            self.acquire()

    def _lock_file(self) -> None:
        deadline = None
        pause = 0.0005
        while True:
            fd = self._fd if self._fd >= 0 else self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # a short poll rather than a blocking flock: a blocking call cannot time out
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                elif now > deadline:
                    raise LockTimeout("Timeout while waiting for lock") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
                continue
            if self._same_file(fd):
                return
            # the file was removed or replaced while we waited: lock the one at the path
            self._fd = -1
            os.close(fd)

    @staticmethod
    def _same_file(fd: int) -> bool:
        return os.fstat(fd).st_nlink > 0  # not deleted while we waited for it

    def release(self) -> None:
        if self._holder != threading.get_ident():
            return
        self._holder = 0
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()

    def close(self) -> None:
        """Give up the descriptor (not while held)."""
        if self._fd >= 0 and not self._holder:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def _forked(self) -> None:
        """In a child after fork(): the inherited descriptor and mutex are the parent's."""
        fd, self._fd = self._fd, -1
        self._mutex = threading.Lock()
        self._holder = 0
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "IndexLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


_LOCKS: "weakref.WeakValueDictionary[str, IndexLock]" = weakref.WeakValueDictionary()


def for_path(path: str, owner: tuple[int, int] | None = None) -> IndexLock:
    """The process's lock of `path` (kept while a folder object holds it)."""
    lock = _LOCKS.get(path)
    if lock is None:
        lock = _LOCKS[path] = IndexLock(path, owner)
    return lock


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS.values()):
        lock._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
