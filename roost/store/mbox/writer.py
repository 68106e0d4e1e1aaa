"""Changing an mbox file: appending a message, and rewriting it (expunge, flags, UIDs).

Implements delivery into an mbox as Postfix local(8) and Dovecot do (under the dotlock and
an exclusive fcntl lock: `From ` line, the message with `>From ` escaping, Dovecot's metadata
headers, an empty separator line, then fsync), and rewrites (expunge, flag changes, giving
UIDs to messages another program appended) written to a temporary file beside the mbox,
fsynced, then renamed over it: a crash at any moment leaves the old or the new file, never a
half-rewritten one. Other writers (Postfix, Dovecot, roost) take the dotlock before opening
the file, and readers re-check the inode after locking, so the rename is safe for them.

Invariants: UIDs ascend in file order and are never reused (UIDNEXT only grows; X-IMAPbase
keeps UIDVALIDITY); appending keeps every byte already in the file; the file keeps its
mode and owner across a rewrite.
Security: the temporary file is created O_EXCL with mode 0600 in the mbox's own directory.
"""

from __future__ import annotations

import mmap
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable

from roost.store.mbox import format as mboxfmt
from roost.store.mbox.format import Entry

COPY_CHUNK = 256 * 1024


@dataclass
class MboxState:
    """What a scan of the locked file found."""
    size: int
    identity: tuple[int, int, int]  # (device, inode, mtime_ns)
    entries: list[Entry]
    uidvalidity: int | None
    uidnext: int
    needs_uids: bool  # a message without a usable X-UID, or no X-IMAPbase to keep UIDNEXT in
    uidnext_span: tuple[int, int] | None = None  # the 10 last-UID digits in X-IMAPbase
    base_line: tuple[int, int] | None = None  # the X-IMAPbase header line
    base_keywords: tuple[str, ...] = ()
    last_uid: int = 0
    last_start: int | None = None  # offset of the last message's From_ line


def read_state(fd: int) -> MboxState:
    """Scan the file open on `fd` (the caller holds at least a shared lock)."""
    info = os.fstat(fd)
    identity = (info.st_dev, info.st_ino, info.st_mtime_ns)
    if info.st_size == 0:
        return MboxState(0, identity, [], None, 1, False)
    with mmap.mmap(fd, info.st_size, prot=mmap.PROT_READ) as data:
        entries = mboxfmt.scan(data)
    base = entries[0].imapbase if entries else None
    uidvalidity = base[0] if base else None
    uidnext = base[1] + 1 if base else 1  # the header holds the last UID used (UW-IMAP, Dovecot)
    needs = base is None or entries[0].uidnext_span is None
    previous = 0
    for entry in entries:
        if entry.pseudo:
            continue
        if entry.uid is None or entry.uid <= previous:
            needs = True
            break
        previous = entry.uid
    uidnext = max(uidnext, previous + 1)
    span = entries[0].uidnext_span if entries else None
    line = next(((start, end) for start, end in entries[0].hidden
                 if span and start <= span[0] < end), None) if entries else None
    return MboxState(info.st_size, identity, entries, uidvalidity, uidnext, needs, span, line,
                     base[2] if base else (), previous, entries[-1].start if entries else None)


def assign_uids(state: MboxState) -> None:
    """Give messages without an ascending X-UID the next UIDs (Dovecot's mbox sync)."""
    previous = 0
    uidnext = state.uidnext
    for entry in state.entries:
        if entry.pseudo:
            continue
        if entry.uid is None or entry.uid <= previous or entry.uid >= uidnext + 1_000_000:
            entry.uid = uidnext
            uidnext += 1
        previous = entry.uid
        uidnext = max(uidnext, previous + 1)
    state.uidnext = uidnext
    if state.uidvalidity is None:
        state.uidvalidity = int(time.time())


@dataclass
class Prepared:
    """An incoming message converted to the stored form (LF lines, escaped), in a temp file."""
    header: bytes  # the header block without metadata headers, each line ending in LF
    body: BinaryIO  # positioned at 0; the escaped body
    body_length: int
    has_blank: bool  # the message had an empty line ending its header

    def close(self) -> None:
        self.body.close()


HEADER_LIMIT = 1024 * 1024  # a longer "header" is treated as body (no memory blow-up)
LONG_LINE = 64 * 1024  # a line longer than this is written in pieces


def prepare(source: BinaryIO, spool_max: int = 1024 * 1024) -> Prepared:
    """Read `source` (CRLF or LF lines) once: the header (at most HEADER_LIMIT) in memory,
    the body escaped into a spooled temporary file; memory stays bounded whatever the input."""
    header_lines: list[bytes] = []
    header_size = 0
    body = tempfile.SpooledTemporaryFile(max_size=spool_max)
    in_header, has_blank, length = True, False, 0
    at_line_start = True  # the pending bytes begin a body line (From_ escaping applies)
    pending = b""

    def body_write(data: bytes) -> None:
        nonlocal length
        body.write(data)
        length += len(data)

    def body_line(line: bytes) -> None:
        nonlocal at_line_start
        body_write(mboxfmt.escape_body_line(line) if at_line_start else line)
        at_line_start = True

    while True:
        chunk = source.read(COPY_CHUNK)
        if not chunk:
            break
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        for raw in lines:
            line = (raw[:-1] if raw.endswith(b"\r") else raw) + b"\n"
            if in_header:
                if line == b"\n":
                    in_header, has_blank = False, True
                    continue
                header_size += len(line)
                if header_size <= HEADER_LIMIT:
                    header_lines.append(line)
                    continue
                in_header = False
            body_line(line)
        if len(pending) > LONG_LINE:
            in_header = False  # no header line is that long: the rest is body
            piece, pending = pending[:-1], pending[-1:]  # keep a possible CR of CRLF
            body_write(mboxfmt.escape_body_line(piece) if at_line_start else piece)
            at_line_start = False
    if pending:
        line = pending[:-1] if pending.endswith(b"\r") else pending
        line += b"\n"  # a message must end in a line ending before the separator
        if in_header:
            header_lines.append(line)
        else:
            body_line(line)
    body.seek(0)
    return Prepared(mboxfmt.clean_header_block(b"".join(header_lines)), body, length, has_blank)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def copy_stream(fd: int, stream: BinaryIO) -> None:
    while True:
        chunk = stream.read(COPY_CHUNK)
        if not chunk:
            return
        write_all(fd, chunk)


def new_message_head(prepared: Prepared, uid: int, flags, keywords, sender: str,
                            when: float, imapbase) -> bytes:
    return (mboxfmt.from_line(sender, when) + prepared.header
            + mboxfmt.metadata_headers(uid, flags, keywords, prepared.body_length, imapbase)
            + b"\n")


def can_append_fast(state: MboxState, keywords) -> bool:
    """UIDs in order and every keyword already named in X-IMAPbase (Dovecot only honours
    X-Keywords words listed there)."""
    if state.needs_uids:
        return False
    return state.size == 0 or (state.uidnext_span is not None
                               and set(keywords) <= set(state.base_keywords))


def append_fast(fd: int, state: MboxState, prepared: Prepared, flags, keywords,
                sender: str, when: float, fsync: bool = True) -> int:
    """Append to a file whose UIDs are all in order: bump UIDNEXT in place, write at EOF."""
    uid = state.uidnext
    imapbase = None
    if state.size == 0:
        imapbase = (state.uidvalidity or int(time.time()), uid, tuple(sorted(keywords)))
        separator = b""
    else:
        start, _end = state.uidnext_span  # type: ignore[misc]
        os.pwrite(fd, f"{uid:0{mboxfmt.UIDNEXT_WIDTH}d}".encode(), start)  # the last UID used
        tail = os.pread(fd, 2, state.size - 2) if state.size >= 2 else b"\n"
        separator = b"" if tail == b"\n\n" else (b"\n" if tail.endswith(b"\n") else b"\n\n")
    os.lseek(fd, 0, os.SEEK_END)
    head = new_message_head(prepared, uid, flags, keywords, sender, when, imapbase)
    try:
        write_all(fd, separator + head)
        copy_stream(fd, prepared.body)
        write_all(fd, b"\n")
        if fsync:
            os.fsync(fd)
    except OSError:
        os.ftruncate(fd, state.size)  # Postfix local(8): a failed delivery leaves no trace
        raise
    if imapbase is not None:  # a new file: where its X-IMAPbase line and last UID now are
        line_start = len(mboxfmt.from_line(sender, when)) + len(prepared.header)
        assert head[line_start:line_start + 12] == b"X-IMAPbase: "
        line_end = head.index(b"\n", line_start) + 1
        digits = line_start + len(f"X-IMAPbase: {imapbase[0]} ")
        state.base_line = (line_start, line_end)
        state.uidnext_span = (digits, digits + mboxfmt.UIDNEXT_WIDTH)
        state.base_keywords = imapbase[2]
        state.uidvalidity = imapbase[0]
    state.last_start = state.size + len(separator)
    state.last_uid = uid
    state.uidnext = uid + 1
    info = os.fstat(fd)
    state.size = info.st_size
    state.identity = (info.st_dev, info.st_ino, info.st_mtime_ns)
    state.entries = None  # type: ignore[assignment]  # no longer a full scan
    return uid


@dataclass
class Edit:
    """What a rewrite keeps of one message: its entry with (possibly) new flags/keywords."""
    entry: Entry
    flags: frozenset[str]
    keywords: frozenset[str]
    recent: bool


def rewrite(path: str, fd: int, state: MboxState, edits: list[Edit],
            appended: Callable[[int, bool], None] | None = None, fsync: bool = True,
            extra_keywords: frozenset[str] = frozenset()) -> None:
    """Write the kept messages to a temporary file beside `path`, then `appended(tmp_fd,
    anything_written)` (a new message at the end), then rename it over `path`."""
    directory = os.path.dirname(path) or "."
    info = os.fstat(fd)
    tmp_fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                        dir=directory)
    try:
        keyword_list = sorted({word for edit in edits for word in edit.keywords}
                              | set(extra_keywords))
        with mmap.mmap(fd, state.size, prot=mmap.PROT_READ) if state.size else _Empty() as data:
            for index, edit in enumerate(edits):
                entry = edit.entry
                if index:
                    write_all(tmp_fd, b"\n")
                imapbase = ((state.uidvalidity, state.uidnext - 1, tuple(keyword_list))
                            if index == 0 else None)
                write_all(tmp_fd, data[entry.start:entry.header_start])
                for start, end in entry.visible_ranges():
                    if start >= entry.header_end:
                        break
                    write_all(tmp_fd, data[start:min(end, entry.header_end)])
                write_all(tmp_fd, mboxfmt.metadata_headers(
                    entry.uid or 0, edit.flags, edit.keywords, entry.end - entry.body_start,
                    imapbase, recent=edit.recent) + b"\n")
                for offset in range(entry.body_start, entry.end, COPY_CHUNK):
                    write_all(tmp_fd, data[offset:min(offset + COPY_CHUNK, entry.end)])
            if edits:
                write_all(tmp_fd, b"\n")
        if appended is not None:
            appended(tmp_fd, bool(edits))
        elif not edits and state.uidvalidity is not None:
            # every message expunged: keep UIDVALIDITY/UIDNEXT in a pseudo message
            write_all(tmp_fd, mboxfmt.pseudo_message(state.uidvalidity, state.uidnext - 1,
                                                     tuple(keyword_list), time.time(),
                                                     socket.gethostname()))
        if fsync:
            os.fsync(tmp_fd)
        os.fchmod(tmp_fd, info.st_mode & 0o7777)
        if os.geteuid() == 0 and (info.st_uid, info.st_gid) != (0, 0):
            os.fchown(tmp_fd, info.st_uid, info.st_gid)
        os.rename(tmp_path, path)
        tmp_path = ""
        if fsync:
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    finally:
        os.close(tmp_fd)
        if tmp_path:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass


class _Empty:
    def __enter__(self) -> bytes:
        return b""

    def __exit__(self, *exc_info) -> None:
        return None
