"""Writing one message into an mbox file or a Maildir, as Postfix local(8)/virtual(8) do.

Delivery headers (local(8) "DELIVERY RIGHTS", mail_copy): `Return-Path: <sender>`, then
`X-Original-To: <original recipient>` (when known), then `Delivered-To: <recipient>`, in that
order, before the message; line ends become LF (the on-disk form of both formats).

mbox (RFC 4155): a `From sender  ctime` separator (null sender: MAILER-DAEMON), body lines
beginning with "From " quoted as ">From ", and an empty line after the message. Locking per
mailbox_delivery_lock (Debian: fcntl + dotlock): `file.lock` created O_EXCL (stale after 300 s),
then an fcntl write lock. A failed append truncates the file back to its old size, so a
half-written message never remains (Postfix does the same).
Maildir (maildir(5), DESIGN durability contract): write tmp/NAME, fsync, rename into new/,
fsync new/. NAME is Dovecot-style `SECS.MUSECSPPID_QCOUNT.HOST,S=SIZE`.

Invariants: a function either stores the whole message durably or raises MailboxError and
leaves the mailbox as it was. Size limits (mailbox_size_limit / virtual_mailbox_limit)
refuse before anything is written to the final place.
Security: paths come from configuration and the password file, never from the message;
callers drop privileges before calling these (roost.delivery.privileges).
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import re
import socket
import time
from typing import BinaryIO, Iterator

CHUNK = 64 * 1024
DOTLOCK_STALE = 300
DOTLOCK_WAIT = 30
_counter = itertools.count(1)
_FROM_LINE = re.compile(rb"(?m)^From ")


class MailboxError(Exception):
    """Delivery into the mailbox failed. `dsn` and `temporary` say how to report it."""

    def __init__(self, text: str, dsn: str = "4.2.0", temporary: bool = True):
        super().__init__(text)
        self.text = text
        self.dsn = dsn
        self.temporary = temporary


def delivery_headers(sender: str, original: str | None, delivered_to: str | None) -> bytes:
    lines = [f"Return-Path: <{sender}>"]
    if original:
        lines.append(f"X-Original-To: {original}")
    if delivered_to:
        lines.append(f"Delivered-To: {delivered_to}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def lf_chunks(source: BinaryIO) -> Iterator[bytes]:
    """The message with CRLF turned into LF, in chunks (a CR split from its LF is handled)."""
    carry = b""
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            if carry:
                yield carry
            return
        data = carry + chunk
        carry = b""
        if data.endswith(b"\r"):
            data, carry = data[:-1], b"\r"
        yield data.replace(b"\r\n", b"\n")


def _mbox_body(source: BinaryIO) -> Iterator[bytes]:
    """LF content with RFC 4155 `From ` quoting; across chunks, lines are re-joined."""
    pending = b""
    for chunk in lf_chunks(source):
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        complete = data[:cut]
        if complete:
            yield _FROM_LINE.sub(b">From ", complete)
    if pending:
        yield _FROM_LINE.sub(b">From ", pending) + b"\n"


def mbox_separator(sender: str, when: float | None = None) -> bytes:
    stamp = time.asctime(time.localtime(when if when is not None else time.time()))
    return f"From {sender or 'MAILER-DAEMON'}  {stamp}\n".encode("utf-8", "surrogateescape")


class _Dotlock:
    def __init__(self, path: str):
        self.path = path + ".lock"
        self.held = False

    def acquire(self) -> None:
        deadline = time.monotonic() + DOTLOCK_WAIT
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
                self.held = True
                return
            except FileExistsError:
                try:
                    if time.time() - os.stat(self.path).st_mtime > DOTLOCK_STALE:
                        os.unlink(self.path)
                        continue
                except FileNotFoundError:
                    continue
            except PermissionError:
                return   # a spool directory we may not write: fcntl alone (Postfix warns too)
            if time.monotonic() > deadline:
                raise MailboxError(f"unable to lock for exclusive access: {self.path}: file exists", "4.2.0")
            time.sleep(0.1)

    def release(self) -> None:
        if self.held:
            try:
                os.unlink(self.path)
            except OSError:
                pass
            self.held = False


def append_mbox(path: str, sender: str, headers: bytes, source: BinaryIO, *, size_limit: int = 0,
                owner: tuple[int, int] | None = None, dotlock: bool = True) -> int:
    """Append one message to the mbox at `path`; returns bytes written."""
    lock = _Dotlock(path) if dotlock else None
    try:
        if lock:
            lock.acquire()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise MailboxError(f"cannot open file: {exc.strerror}", "5.2.0" if exc.errno in (errno.ELOOP,) else "4.2.0",
                               exc.errno not in (errno.ELOOP,)) from None
        try:
            st = os.fstat(fd)
            if not _regular(st.st_mode):
                raise MailboxError(f"cannot append message to file {path}: file is not a regular file", "5.2.0", False)
            if owner is not None and st.st_size == 0 and os.geteuid() == 0:
                os.fchown(fd, owner[0], owner[1])
            fcntl.lockf(fd, fcntl.LOCK_EX)
            start = os.lseek(fd, 0, os.SEEK_END)
            written = 0
            try:
                for piece in itertools.chain([mbox_separator(sender), headers], _mbox_body(source), [b"\n"]):
                    written += len(piece)
                    if size_limit and start + written > size_limit:
                        raise MailboxError("cannot update mailbox " + path + " for user: file too large", "5.2.2", False)
                    _write_all(fd, piece)
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, start)
                raise
            return written
        finally:
            os.close(fd)
    except OSError as exc:
        raise MailboxError(f"cannot update mailbox {path}: {exc.strerror or exc}", "4.2.0") from None
    finally:
        if lock:
            lock.release()


def _regular(mode: int) -> bool:
    import stat
    return stat.S_ISREG(mode)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        done = os.write(fd, view)
        view = view[done:]


def ensure_maildir(root: str, owner: tuple[int, int] | None = None) -> None:
    for sub in ("", "tmp", "new", "cur"):
        path = os.path.join(root, sub)
        try:
            os.mkdir(path, 0o700)
            if owner is not None and os.geteuid() == 0:
                os.chown(path, owner[0], owner[1])
        except FileExistsError:
            pass


def _unique_name() -> str:
    now = time.time()
    secs = int(now)
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return f"{secs}.M{int((now - secs) * 1e6)}P{os.getpid()}Q{next(_counter)}.{host}"


def deliver_maildir(root: str, headers: bytes, source: BinaryIO, *, size_limit: int = 0,
                    owner: tuple[int, int] | None = None) -> str:
    """Store one message in the Maildir `root` (created if missing); returns the new/ path."""
    try:
        os.makedirs(os.path.dirname(root.rstrip("/")) or ".", exist_ok=True)
        ensure_maildir(root, owner)
        base = _unique_name()
        tmp = os.path.join(root, "tmp", base)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        size = 0
        try:
            for piece in itertools.chain([headers], lf_chunks(source)):
                size += len(piece)
                if size_limit and size > size_limit:
                    raise MailboxError(f"cannot create maildir file {tmp}: file too large", "5.2.2", False)
                _write_all(fd, piece)
            os.fsync(fd)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, owner[0], owner[1])
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        final = os.path.join(root, "new", f"{base},S={size}")
        os.rename(tmp, final)
        directory = os.open(os.path.join(root, "new"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return final
    except OSError as exc:
        raise MailboxError(f"create maildir file {root}: {exc.strerror or exc}", "4.2.0") from None
