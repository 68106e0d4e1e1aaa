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
fsync new/ (MaildirJob splits these steps so roost.delivery.commit_thread can write every
file of a batch before fsyncing them, their write-back started at once, and share the fsync
of new/ among them). NAME is Dovecot-style
`SECS.MUSECSPPID_QCOUNT.HOST,S=SIZE`. The Maildir's directories are made at the first
delivery of a process (and again when they have gone), not checked at every one.

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
import sys
import time
from typing import BinaryIO, Callable, Iterator

from roost.log import current_pid
from roost.store.maildir.deliver import fsync_dir as fsync_directory

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


def content_chunks(request) -> Callable[[], Iterator[bytes]]:
    """A DeliveryRequest's message with LF line ends, as a callable giving chunks: the
    queue's own form when the request carries it (lf_content), else content() converted."""
    if request.lf_content is not None:
        return request.lf_content

    def chunks() -> Iterator[bytes]:
        with request.content() as source:
            yield from lf_chunks(source)
    return chunks


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


_SYNC_FILE_RANGE_WRITE = 2   # <linux/fs.h>: start write-out of dirty pages, do not wait
_sync_file_range = None      # libc's sync_file_range once looked up; False: not available


def start_writeback(fd: int) -> None:
    """Start writing the file's dirty pages to the device now, without waiting
    (sync_file_range(2), SYNC_FILE_RANGE_WRITE). When several files are written before any
    of them is fsynced (roost.delivery.commit_thread), their data and block allocations go
    out together, and each fsync then finds most of its device round trips done (the inode
    table and tmp/ blocks they share are written once). A hint only: durability comes from
    the fsync that follows; where the call does not exist nothing happens."""
    global _sync_file_range
    function = _sync_file_range
    if function is None:
        function = _sync_file_range = _find_sync_file_range()
    if function:
        function(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)   # an error changes nothing: fsync follows


def _find_sync_file_range():
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (ImportError, OSError, AttributeError):
        return False
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


_hostname: str | None = None
_known_maildirs: set[str] = set()   # made (or found) complete by this process already


def _unique_name() -> str:
    global _hostname
    if _hostname is None:   # Postfix too learns its host name once per process
        _hostname = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    now = time.time()
    secs = int(now)
    return f"{secs}.M{int((now - secs) * 1e6)}P{current_pid()}Q{next(_counter)}.{_hostname}"


class MaildirJob:
    """One Maildir delivery in its durable steps, so that several can share their device
    round trips and the directory fsync (roost.delivery.commit_thread): `write()` makes
    tmp/NAME (owner set) and starts its write-back; `sync()` fsyncs and closes it;
    `publish()` renames it into new/ (syncing first if sync() was not called) and returns
    the directory whose fsync must follow; the delivery is durable once that fsync has
    completed. `chunks()` yields the message with LF line ends; `owner`: chown the file (and
    directories made) when running as root."""

    def __init__(self, root: str, headers: bytes, chunks, *, size_limit: int = 0,
                 owner: tuple[int, int] | None = None):
        self.root = root
        self.headers = headers
        self.chunks = chunks
        self.size_limit = size_limit
        self.owner = owner
        self.tmp = ""
        self.final = ""
        self.fd: int | None = None   # the tmp file between write() and sync()

    def _prepare(self) -> None:
        os.makedirs(os.path.dirname(self.root.rstrip("/")) or ".", exist_ok=True)
        ensure_maildir(self.root, self.owner)
        _known_maildirs.add(self.root)

    def _open_tmp(self, base: str) -> int:
        self.tmp = os.path.join(self.root, "tmp", base)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        if self.root not in _known_maildirs:
            self._prepare()
        try:
            return os.open(self.tmp, flags, 0o600)
        except FileNotFoundError:   # removed since: make it again, as the first time
            self._prepare()
            return os.open(self.tmp, flags, 0o600)

    def write(self) -> None:
        try:
            base = _unique_name()
            fd = self._open_tmp(base)
            size = len(self.headers)
            chunks = iter(self.chunks())
            try:
                # pieces are gathered up to CHUNK bytes per write: a small message, its
                # delivery headers included, is one write
                pending = [self.headers]
                gathered = size
                for piece in itertools.chain((b"",), chunks):   # b"": the headers' own check
                    size += len(piece)
                    if self.size_limit and size > self.size_limit:
                        raise MailboxError(f"cannot create maildir file {self.tmp}: file too large",
                                           "5.2.2", False)
                    pending.append(piece)
                    gathered += len(piece)
                    if gathered >= CHUNK:
                        _write_all(fd, b"".join(pending))
                        pending, gathered = [], 0
                if pending:
                    _write_all(fd, b"".join(pending))
                if self.owner is not None and os.geteuid() == 0:   # before the fsync covers it
                    os.fchown(fd, self.owner[0], self.owner[1])
                start_writeback(fd)
            except BaseException:
                os.close(fd)
                os.unlink(self.tmp)
                raise
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            self.fd = fd
            self.final = os.path.join(self.root, "new", f"{base},S={size}")
        except OSError as exc:
            raise MailboxError(f"create maildir file {self.root}: {exc.strerror or exc}", "4.2.0") from None

    def sync(self) -> None:
        """fsync the written tmp file and close it (nothing to do when done already); on
        failure the file is removed."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            self.discard()
            raise MailboxError(f"create maildir file {self.root}: {exc.strerror or exc}", "4.2.0") from None
        os.close(fd)

    def publish(self) -> str:
        self.sync()   # never a name in new/ for a file not on disk yet
        try:
            try:
                os.rename(self.tmp, self.final)
            except FileNotFoundError:
                if not os.path.exists(self.tmp):
                    raise
                self._prepare()   # new/ went away under us
                os.rename(self.tmp, self.final)
        except OSError as exc:
            self.discard()
            raise MailboxError(f"create maildir file {self.root}: {exc.strerror or exc}", "4.2.0") from None
        return os.path.join(self.root, "new")

    def discard(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def deliver_maildir(root: str, headers: bytes, source: BinaryIO, *, size_limit: int = 0,
                    owner: tuple[int, int] | None = None) -> str:
    """Store one message in the Maildir `root` (created if missing); returns the new/ path."""
    job = MaildirJob(root, headers, lambda: lf_chunks(source), size_limit=size_limit, owner=owner)
    job.write()
    job.sync()
    directory = job.publish()
    try:
        fsync_directory(directory)
    except OSError as exc:
        raise MailboxError(f"create maildir file {root}: {exc.strerror or exc}", "4.2.0") from None
    return job.final
