"""Counting sessions across worker processes: Postfix's anvil(8) and Dovecot's anvil, for
connection-count limits, kept in the kernel's lock table instead of a server process.

One empty lock file per counter family (mail_max_userip_connections: `base_dir/userip.lock`;
smtpd_client_connection_count_limit: `$queue_directory/pid/anvil.lock`). Each key owns a
range of MAX_SLOTS bytes at an offset taken from a digest of the key (2^40 ranges: collisions
are negligible), one byte per session. A session holds its byte with an open-file-description
lock (Linux F_OFD_SETLK): it conflicts across processes *and* between two descriptors of one
process, and the kernel drops it when the session's descriptor is closed or its process dies,
so a crashed worker never leaks slots, nothing accumulates on disk and no clean-up pass is
needed.

Invariants: a Slot is held until release() (idempotent) or process death; acquire() never
blocks (non-blocking lock attempts on the key's first `limit` bytes, from a random one on, so a
free byte is found in a few tries however many are held; only a refusal tries them all);
limit 0 means no limit.
Security: keys only feed a digest, never a path; the file is 0600 and belongs to the workers'
account (the master creates it before dropping root: prepare()).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import random
import struct

MAX_SLOTS = 1 << 16  # bytes per key range; larger limits are clamped
_FLOCK = "hhqqi4x"  # struct flock on Linux x86_64/aarch64: type, whence, start, len, pid
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW


def anvil_lock_path(queue_directory: str) -> str:
    """smtpd_client_connection_count_limit's counter: `$queue_directory/pid/anvil.lock`."""
    return os.path.join(queue_directory, "pid", "anvil.lock")


class Slot:
    """One session's place in its key's count."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the description drops its OFD lock


UNLIMITED = Slot(None)


def _try_lock(fd: int, byte: int) -> bool:
    request = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, byte, 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def prepare(path: str, uid: int, gid: int) -> None:
    """Run by the master before it drops root: the lock file (and its directory), owned by
    the account the workers become."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    fd = os.open(path, _OPEN_FLAGS, 0o600)
    try:
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def acquire(path: str, key: tuple[str, ...], limit: int) -> Slot | None:
    """A held Slot, or None when `limit` sessions with this key already exist; UNLIMITED
    for limit 0. OSError (the lock file cannot be opened) propagates."""
    if limit <= 0:
        return UNLIMITED
    digest = hashlib.sha256("\0".join(key).encode("utf-8", "surrogateescape")).digest()
    first = int.from_bytes(digest[:5], "big") * MAX_SLOTS
    try:
        fd = os.open(path, _OPEN_FLAGS, 0o600)
    except FileNotFoundError:  # its directory is made on first use when nobody prepared it
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        fd = os.open(path, _OPEN_FLAGS, 0o600)
    slots = min(limit, MAX_SLOTS)
    start = random.randrange(slots)  # probing from 0 would make n sessions cost n^2/2 tries
    try:
        for index in range(start, start + slots):
            if _try_lock(fd, first + index % slots):
                return Slot(fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None
