"""The master's pid file, `$queue_directory/pid/master.pid`, which also guards against a double start.

Like Postfix's master, the running master holds an exclusive lock on its pid file for its
whole life (POSIX record lock, fcntl(2) F_SETLK). So "running" means "someone holds the lock",
not "the pid in the file exists": a stale file (the master died, or its pid now belongs to
an unrelated process) is simply taken over and rewritten. The file holds the pid right-aligned
in ten columns and a newline, as Postfix writes it.

Invariants: only the process that holds the lock writes the file; checking (`running_pid`)
takes a shared lock on a read-only descriptor and never disturbs the holder.
POSIX locks are per process and not inherited by fork, so workers never hold it, and the
master must never open and close the file a second time (that would drop its lock).
Security: the file is created 0644 in a directory created 0755; its content is only a number.
"""

from __future__ import annotations

import fcntl
import os

PID_SUBDIR = "pid"
PID_NAME = "master.pid"


def pid_file_path(queue_directory: str) -> str:
    return os.path.join(queue_directory, PID_SUBDIR, PID_NAME)


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None):
        self.pid = pid
        super().__init__(f"already running (PID {pid})" if pid else "already running")


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _same_file(fd: int, path: str) -> bool:
    try:
        opened, named = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


def running_pid(path: str) -> int | None:
    """The pid of the master holding `path` locked, or None if no master holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd) or -1  # locked: a master runs (pid unreadable: -1)
        return None  # nobody holds it: stale or being created
    finally:
        os.close(fd)


class PidFile:
    """The lock-holding pid file of the running master."""

    def __init__(self, path: str, fd: int):
        self.path = path
        self.fd = fd

    @classmethod
    def acquire(cls, path: str) -> "PidFile":
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        for _attempt in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _read_pid(fd)
                os.close(fd)
                raise AlreadyRunning(pid) from None
            if _same_file(fd, path):
                return cls(path, fd)
            os.close(fd)  # the previous master removed the file while we opened it: retry
        raise AlreadyRunning(None)

    def write(self, pid: int) -> None:
        data = f"{pid:10d}\n".encode("ascii")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def release(self) -> None:
        """Remove the file (or, without permission after a privilege drop, empty it), unlock."""
        if self.fd < 0:
            return
        try:
            os.unlink(self.path)
        except OSError:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
        os.close(self.fd)
        self.fd = -1
