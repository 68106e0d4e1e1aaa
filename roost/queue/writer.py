"""Writes one queue file durably (Postfix cleanup(8) / mail_stream(3) behaviour).

Life of a file: created in `incoming/` (or `maildrop/`) under a temporary name with
O_CREAT|O_EXCL and mode 0600; renamed to its queue ID, which needs the inode
(roost.queue.ids); records are appended through one buffer; `finish()` writes the
extracted section and the end record, rewrites the size and pointer records in place,
sets mode 0700 (Postfix's "complete" mark, which pickup and qmgr look for), fsyncs the
file, then fsyncs the directory, and only then returns. `abort()` unlinks the file; both
are idempotent.

`anonymous=True` (cleanup's choice, Linux O_TMPFILE): the file is created without a name
in its directory, gets its queue ID from its inode all the same, and is linked under that
ID (linkat(2), never replacing an existing name) only once it is complete, directly into
the queue it ends in (`hold` for a held message) with mode 0700; then fsync of the file and
of that one directory, as above. No temporary name, no rename, no chmod, and an aborted
message leaves nothing to unlink: a crash before the link leaves no file at all. Where the
file system or /proc cannot do this (probed once per process and directory), the named
scheme above is used.

Invariants: the end record is the last thing written; until `finish()` has returned the
file has no end record on disk that a reader could trust (mode 0600, and a crash leaves
no E record unless all records before it were written). One fsync of the file per message,
then an fsync of its directory that started after the file was complete (group commit:
messages finishing at the same time in one process share that directory fsync; see
DirectorySync); content goes to disk in large writes, never line by line.
Security: files are 0600/0700, opened with O_NOFOLLOW|O_EXCL in the queue directory only.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import threading
import time

from roost.log import current_pid
from roost.queue import records as rec
from roost.queue.ids import make_queue_id
from roost.queue.layout import QueueLayout

FLUSH_AT = 1 << 18
MODE_WRITING = 0o600
MODE_COMPLETE = 0o700
_counter = itertools.count()


SMTPD_LINE_LIMIT = 2048
# a newline followed by 128 bytes without one: a line that costs more than len + 2 bytes
_LONG_LINE = re.compile(rb"\n[^\n]{128}")


def _line_extra(length: int) -> int:
    """Postfix's record bytes for a line of `length`, minus the length + 2 counted already."""
    if length < 128:
        return 0
    cost, rest = 0, length
    while rest >= SMTPD_LINE_LIMIT:
        cost += 1 + len(rec.varint(SMTPD_LINE_LIMIT)) + SMTPD_LINE_LIMIT
        rest -= SMTPD_LINE_LIMIT
    cost += 1 + len(rec.varint(rest)) + rest
    return cost - (length + 2)


class QueueWriteError(OSError):
    pass


class _DirectoryCommit:
    """Group commit for one directory: callers that ask while an fsync is running wait for
    the next one, and a single fsync then covers all of them."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.cond = threading.Condition()
        self.requested = 0   # tickets handed out
        self.synced = 0      # every ticket up to this one is covered by a completed fsync
        self.running = False

    def fsync(self) -> None:
        with self.cond:
            self.requested += 1
            ticket = self.requested
            while True:
                if self.synced >= ticket:
                    return
                if not self.running:
                    break
                self.cond.wait()
            # every caller holding a ticket so far changed the directory before asking, so a
            # fsync that starts now makes all of their entries durable
            self.running = True
            covers = self.requested
        failed = True
        try:
            os.fsync(self.fd)
            failed = False
        finally:
            with self.cond:
                self.running = False
                if not failed:
                    self.synced = max(self.synced, covers)
                self.cond.notify_all()  # on failure a waiter runs its own fsync (and sees the error)


class DirectorySync:
    """Keeps one read-only descriptor per queue directory for fsync (opened once; shared by
    the threads asyncio.to_thread runs finish() in). Directory fsyncs are group-committed:
    `fsync(dir)` returns only after an fsync of `dir` that *started after the call was made*
    has completed, but concurrent callers share one such fsync instead of queueing one each
    (the file's own fsync is never shared)."""

    def __init__(self) -> None:
        self._commits: dict[str, _DirectoryCommit] = {}
        self._lock = threading.Lock()

    def _commit(self, directory: str) -> _DirectoryCommit:
        commit = self._commits.get(directory)
        if commit is None:
            with self._lock:
                commit = self._commits.get(directory)
                if commit is None:
                    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    commit = self._commits[directory] = _DirectoryCommit(fd)
        return commit

    def fsync(self, directory: str) -> None:
        self._commit(directory).fsync()

    def descriptor(self, directory: str) -> int:
        """The kept read-only descriptor of `directory` (for linkat into it)."""
        return self._commit(directory).fd

    def close(self) -> None:
        with self._lock:
            for commit in self._commits.values():
                os.close(commit.fd)
            self._commits.clear()


_ANONYMOUS: dict[tuple[int, str], bool] = {}  # (pid, directory) -> O_TMPFILE + linkat works there
_PROC_FD = "/proc/self/fd/{}"


def _anonymous_works(directory: str, dirfd: int) -> bool:
    """Whether an O_TMPFILE file can be made in `directory` and linked into it by name
    through /proc (kernel, file system and /proc all allowing it); asked once per process
    and directory, with a probe file that is removed again."""
    key = (current_pid(), directory)
    known = _ANONYMOUS.get(key)
    if known is not None:
        return known
    works = False
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        probe = f"t.{current_pid()}.{next(_counter)}"  # a temp name recovery knows
        try:
            fd = os.open(directory, os.O_WRONLY | tmpfile | os.O_CLOEXEC, MODE_WRITING)
        except OSError:
            fd = None
        if fd is not None:
            try:
                os.link(_PROC_FD.format(fd), probe, dst_dir_fd=dirfd, follow_symlinks=True)
                works = True
                os.unlink(probe, dir_fd=dirfd)
            except OSError:
                pass
            finally:
                os.close(fd)
    _ANONYMOUS[key] = works
    return works


class QueueFileWriter:
    def __init__(self, layout: QueueLayout, *, long_ids: bool = False, queue: str = "incoming",
                 dirsync: DirectorySync | None = None, anonymous: bool = False) -> None:
        self.layout = layout
        self.queue = queue
        self._dirsync = dirsync or DirectorySync()
        self._buffer = bytearray()
        self._fd: int | None = None
        self._offset = 0          # file offset of _buffer[0]
        self.finished = self.aborted = False
        self.nrcpt = 0
        self.content_size = 0
        self.smtputf8 = 0
        self._partial = 0           # length of the content's unterminated last line so far
        self._data_offset = 0
        self._section = "envelope"   # envelope -> content -> extracted
        self._pending_recipients: list[bytes] = []
        self.flags = 0
        self._linked = True  # the file has its name (only an anonymous file is made without)
        directory = layout.queue_dir(queue)
        if anonymous and self._create_anonymous(directory, long_ids):
            return
        for _attempt in range(100):  # a name left by a crashed process with our pid is skipped
            temp = os.path.join(directory, f"t.{current_pid()}.{next(_counter)}")
            try:
                self._fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                   MODE_WRITING)
                break
            except FileExistsError:
                continue
        else:
            raise QueueWriteError(f"cannot create a queue file in {directory}")
        now = time.time_ns()
        self.arrival_seconds, self.arrival_usec = now // 1_000_000_000, (now // 1000) % 1_000_000
        try:
            inode = os.fstat(self._fd).st_ino
            # (time, inode) is unique among live files: the inode cannot be shared, so the
            # rename never replaces another message (Postfix names its files the same way)
            self.queue_id = make_queue_id(self.arrival_seconds, self.arrival_usec, inode, long_ids)
            self.directory = layout.ensure_directory(queue, self.queue_id)
            self.path = os.path.join(self.directory, self.queue_id)
            os.rename(temp, self.path)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
        self._start_records()

    def _start_records(self) -> None:
        self._buffer += rec.record(rec.SIZE, rec.size_payload(0, 0, 0))
        self._buffer += rec.record(rec.TIME, f"{self.arrival_seconds} {self.arrival_usec}".encode())

    def _create_anonymous(self, directory: str, long_ids: bool) -> bool:
        """The O_TMPFILE start (see the module docstring); False when not possible here."""
        try:
            dirfd = self._dirsync.descriptor(directory)
        except OSError:
            return False
        if not _anonymous_works(directory, dirfd):
            return False
        try:
            # mode 0700 from the start: nobody can see the file before it is complete
            fd = os.open(directory, os.O_WRONLY | os.O_TMPFILE | os.O_CLOEXEC, MODE_COMPLETE)
        except OSError:
            return False
        try:
            info = os.fstat(fd)
            now = time.time_ns()
            self.arrival_seconds, self.arrival_usec = now // 1_000_000_000, (now // 1000) % 1_000_000
            # (time, inode) is unique among live files, and this inode lives until the link
            self.queue_id = make_queue_id(self.arrival_seconds, self.arrival_usec, info.st_ino, long_ids)
            self.directory = self.layout.ensure_directory(self.queue, self.queue_id)
            self.path = os.path.join(self.directory, self.queue_id)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._linked = False
        self._needs_chmod = stat.S_IMODE(info.st_mode) != MODE_COMPLETE  # a umask took bits away
        self._start_records()
        return True

    def _link(self, final_queue: str | None) -> None:
        """Give the complete anonymous file its name, in `final_queue` when given."""
        if final_queue and final_queue != self.queue:
            self.directory = self.layout.ensure_directory(final_queue, self.queue_id)
            self.path = os.path.join(self.directory, self.queue_id)
            self.queue = final_queue
        if self._needs_chmod:
            os.fchmod(self._fd, MODE_COMPLETE)
        # linkat never replaces an existing name (EEXIST), where rename would
        os.link(_PROC_FD.format(self._fd), self.queue_id, dst_dir_fd=self._dirsync.descriptor(self.directory),
                follow_symlinks=True)
        self._linked = True

    # ------------------------------------------------------------------ envelope
    def _add(self, rtype: int, payload: bytes) -> None:
        self._buffer += rec.record(rtype, payload)
        if len(self._buffer) >= FLUSH_AT:
            self._flush()

    def fullname(self, name: str) -> None:
        self._add(rec.FULLNAME, name.encode("utf-8", "surrogateescape"))

    def attribute(self, name: str, value: str) -> None:
        self._add(rec.ATTR, f"{name}={value}".encode("utf-8", "surrogateescape"))

    def sender(self, address: str) -> None:
        self._add(rec.SENDER, address.encode("utf-8", "surrogateescape"))

    def recipient(self, address: str, *, original: str | None = None, orcpt: str | None = None,
                  notify: int = 0) -> None:
        """Before the content: an envelope recipient; after it: an extracted one."""
        data = b""
        if original is not None:
            data += rec.record(rec.ORIG_RCPT, original.encode("utf-8", "surrogateescape"))
        if orcpt:
            data += rec.record(rec.DSN_ORCPT, orcpt.encode("utf-8", "surrogateescape"))
        if notify:
            data += rec.record(rec.DSN_NOTIFY, str(notify).encode())
        data += rec.record(rec.RCPT, address.encode("utf-8", "surrogateescape"))
        self.nrcpt += 1
        if self._section == "content":  # no records inside the content: they go after it
            self._pending_recipients.append(data)
        else:
            self._buffer += data

    # ------------------------------------------------------------------ content
    def start_content(self) -> None:
        if self._section != "envelope":
            return
        self._section = "content"
        self._pointer_offset = self._offset + len(self._buffer) + 2  # payload of the p record
        self._add(rec.POINTER, rec.POINTER_FORMAT % 0)
        self._data_offset = self._offset + len(self._buffer)
        self._add(rec.MESSAGE, b"")

    def content(self, data: bytes, newlines: int | None = None) -> None:
        """Append stored content (LF lines). `newlines`: data.count(b"\\n") when the caller
        knows it already (it saves a pass over the data); None to have it counted."""
        if not data:
            return
        if self._section != "content":
            raise QueueWriteError("content outside the content section")
        self._account(data, newlines)
        if len(data) >= FLUSH_AT:
            self._flush()
            self._write(rec.content_records(data))
            return
        buffer = self._buffer
        if len(data) <= rec.MAX_CHUNK:  # one B record, appended without building it apart
            buffer += rec.record_header(rec.CONTENT, len(data))
            buffer += data
        else:
            buffer += rec.content_records(data)
        if len(buffer) >= FLUSH_AT:
            self._flush()

    def _account(self, data: bytes, newlines: int | None = None) -> None:
        """message_size as Postfix counts it: the bytes its content records would take (one
        record per line, type byte + length + text; lines split every 2048 bytes as smtpd
        does). A line shorter than 128 bytes costs exactly len + 2, which the first line
        counts; whether a complete line of 128 bytes or more exists is asked first with one
        C-level search (no object per line); only then are the lines split and measured."""
        if newlines is None:
            newlines = data.count(b"\n")
        self.content_size += len(data) + newlines
        if newlines:
            first = data.find(b"\n")
            last = data.rfind(b"\n")
            if (first + self._partial < 128
                    and _LONG_LINE.search(data, first, last + 1) is None):  # every line is short
                self._partial = len(data) - last - 1
                return
        lines = data.split(b"\n")
        if len(lines) == 1:
            self._partial += len(data)
            return
        lengths = list(map(len, lines))
        lengths[0] += self._partial
        self._partial = lengths.pop()
        if max(lengths) >= 128:
            self.content_size += sum(map(_line_extra, filter((127).__lt__, lengths)))

    def end_content(self) -> None:
        if self._partial:  # a last line without line end is still one record
            self.content_size += 2 + _line_extra(self._partial)
            self._partial = 0
        if self._section == "envelope":
            self.start_content()
        if self._section != "content":
            return
        self._section = "extracted"
        self._xtra_offset = self._offset + len(self._buffer)
        self._add(rec.XTRA, b"")
        for data in self._pending_recipients:
            self._buffer += data
        self._pending_recipients = []

    # ------------------------------------------------------------------ completion
    def _write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._offset += len(data)

    def _flush(self) -> None:
        if self._buffer:
            self._write(self._buffer)
            self._buffer = bytearray()

    def finish(self, final_queue: str | None = None) -> None:
        """Write the end record and make the file durable (see the module docstring).
        `final_queue` (e.g. "hold"): move the complete file there before returning."""
        if self.finished:
            return
        directories = self.prepare_commit(final_queue)
        try:
            self.commit(directories)
        except BaseException:
            self.abort()
            raise

    def prepare_commit(self, final_queue: str | None = None) -> tuple[str, ...]:
        """finish() up to its fsyncs (no blocking on the disk): the end record is written and
        the file is complete (mode 0700), in `final_queue` when given. Returns the directories
        whose fsync must follow the file's; `commit()` (or roost.queue.committer) does that.
        On failure the file is removed."""
        if self.aborted or self._fd is None:
            raise QueueWriteError("queue file already aborted")
        try:
            self.end_content()
            self._add(rec.END, b"")
            size = rec.size_payload(self.content_size, self._data_offset, self.nrcpt, self.flags,
                                    self.smtputf8)
            pointer = rec.POINTER_FORMAT % self._xtra_offset
            if len(size) != rec.SIZE_PAYLOAD_LEN or len(pointer) != len(rec.POINTER_FORMAT % 0):
                raise QueueWriteError("queue file too large for its size record")
            if self._offset == 0:  # nothing written yet (most messages): fill in, one write
                self._buffer[2:2 + len(size)] = size
                self._buffer[self._pointer_offset:self._pointer_offset + len(pointer)] = pointer
                self._flush()
            else:
                self._flush()
                os.pwrite(self._fd, size, 2)     # payload after the type byte and 1-byte length
                os.pwrite(self._fd, pointer, self._pointer_offset)
            if not self._linked:  # anonymous: complete now, named where it ends up
                self._link(final_queue)
                return (self.directory,)
            written_in = self.directory
            if final_queue and final_queue != self.queue:
                # moved before it is marked complete: a crash never leaves it deliverable
                target_dir = self.layout.ensure_directory(final_queue, self.queue_id)
                target = os.path.join(target_dir, self.queue_id)
                os.rename(self.path, target)
                self.path, self.directory, self.queue = target, target_dir, final_queue
            os.fchmod(self._fd, MODE_COMPLETE)
        except BaseException:
            self.abort()
            raise
        return (self.directory,) if written_in == self.directory else (self.directory, written_in)

    def commit(self, directories: tuple[str, ...]) -> None:
        """The blocking half of finish(): fsync the file, close it, fsync `directories` (file
        first: a directory fsync must start after the file is complete). Does not abort."""
        self.sync_file()
        for directory in directories:
            self._dirsync.fsync(directory)
        self.finished = True

    def sync_file(self) -> None:
        """fsync and close the file; the descriptor is closed even when fsync fails."""
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        """Remove the file; safe to call twice and after finish (then it does nothing)."""
        if self.finished or self.aborted:
            return
        self.aborted = True
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if not self._linked:  # never named: closing the descriptor freed it
            return
        try:
            os.unlink(self.path)
        except (OSError, AttributeError):
            pass
