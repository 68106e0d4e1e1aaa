"""mail_max_userip_connections: how many sessions one user may hold from one IP, per protocol.

Dovecot 2.3 counts logged-in sessions per (service, user, remote IP) in its anvil process and
refuses the login that would exceed `mail_max_userip_connections` (observed with Debian's
2.3.19: IMAP `NO [LIMIT] Maximum number of connections from user+IP exceeded
(mail_max_userip_connections=N)`, POP3 `-ERR [IN-USE] ...`, then the connection is closed and
the login process logs `Disconnected: Maximum number of connections from user+IP exceeded
(mail_max_userip_connections=N): user=<...>, method=..., rip=..., lip=..., ...`; IMAP and POP3
sessions are counted apart; 0 means no limit).

roost's sessions live in several worker processes, so the count lives in the kernel's lock
table: one empty file, `base_dir/userip.lock`; each (protocol, user, IP) owns a range of
MAX_SLOTS bytes at an offset taken from a digest of the key (2^40 ranges: collisions are
negligible), one byte per session. A session holds its byte with an open-file-description lock
(Linux F_OFD_SETLK): it conflicts across processes *and* between two descriptors of one
process, and the kernel drops it when the session's descriptor is closed or its process dies —
a crashed worker never leaks slots, nothing accumulates on disk, no clean-up pass is needed.

Invariants: a Slot is held until release() (idempotent) or process death; acquire() never
blocks (non-blocking lock attempts on bytes 0..limit-1); any OS error lets the login through
(a limit must not turn into an outage) and is logged by the caller.
Security: user names only feed a digest, never a path; the file is 0600 and belongs to the
workers' account (the master creates it before dropping root: prepare()).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import struct

LOCK_FILE = "userip.lock"
MAX_SLOTS = 1 << 16  # bytes per key range; larger limits are clamped
_FLOCK = "hhqqi4x"  # struct flock on Linux x86_64/aarch64: type, whence, start, len, pid


def limit_reason(limit: int) -> str:
    """Dovecot's text, used in the reply and in the login process's Disconnected line."""
    return f"Maximum number of connections from user+IP exceeded (mail_max_userip_connections={limit})"


class Slot:
    """One session's place in its (protocol, user, IP) count."""

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


def prepare(base_dir: str, uid: int, gid: int) -> None:
    """Run by the master before it drops root: the lock file, owned by the account the
    workers become (base_dir itself is usually root's, as Dovecot's is)."""
    if not base_dir:
        return
    os.makedirs(base_dir, mode=0o755, exist_ok=True)  # Dovecot's master creates it too
    fd = os.open(os.path.join(base_dir, LOCK_FILE),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def session_slot(settings, protocol: str, user: str, remote_ip: str | None) -> Slot | None:
    """acquire() with `mail_max_userip_connections` and `base_dir` from the connection's
    dovecot.conf view (protocol and remote/local filters applied)."""
    return acquire(settings.base_dir, protocol, user, remote_ip,
                   settings.mail_max_userip_connections)


def acquire(base_dir: str, protocol: str, user: str, remote_ip: str | None, limit: int) -> Slot | None:
    """A held Slot, or None when `limit` sessions of this user from this IP already exist.
    No limit (0), no base_dir or no remote IP: an empty Slot. OSError propagates."""
    if limit <= 0 or not base_dir or not remote_ip:
        return UNLIMITED
    key = "\0".join((protocol, user, remote_ip)).encode("utf-8", "surrogateescape")
    first = (int.from_bytes(hashlib.sha256(key).digest()[:5], "big")) * MAX_SLOTS
    fd = os.open(os.path.join(base_dir, LOCK_FILE),
                 os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        for byte in range(first, first + min(limit, MAX_SLOTS)):
            if _try_lock(fd, byte):
                return Slot(fd)
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None
