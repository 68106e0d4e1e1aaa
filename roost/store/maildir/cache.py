"""roost.cache: cached header blocks, so ENVELOPE / HEADER.FIELDS fetches need no file open.

Implements the "cached header fields" part of the per-mailbox index (Dovecot keeps the same
kind of data in dovecot.index.cache): for each message whose header was asked for, the
header block (RFC 5322 §2.1: up to and including the empty line) with CRLF line ends.
Append-only records `H <uid> <base> <length>\n<length bytes>\n`; later records win; a
record whose base name is not the message's any more is ignored; the file is rewritten
without dead records when they outnumber the live ones.

Writes: one append per record, or, while `deferring` (roost.net.imap sets it around each
command through MaildirStore.deferred_cache_writes), one append per FLUSH_RECORDS records and
at the end of the command: a first `FETCH 1:* ENVELOPE` of n messages is n/FLUSH_RECORDS
writes, not n opens and writes. Records not yet written are only lost work (the cache is
rebuilt from the files on demand).

Invariants: never raises on a damaged file (the valid records before the damage are kept and
the file is rewritten); headers larger than MAX_HEADER are not cached; each flush is a single
write(2) of whole records with O_APPEND, so appends of several processes never interleave
inside a record.
Security: lengths are bounded (MAX_HEADER) before anything is read into memory.
"""

from __future__ import annotations

import io
import os

FILE_NAME = "roost.cache"
MAX_HEADER = 64 * 1024
FLUSH_RECORDS = 512  # while deferring: records held before one append
FLUSH_BYTES = 512 * 1024  # ... or bytes


def parse(data: bytes) -> tuple[dict[int, tuple[str, bytes]], bool]:
    """(uid -> (base, header), damaged)."""
    found: dict[int, tuple[str, bytes]] = {}
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos, pos + 600)
        if end < 0:
            return found, True
        parts = data[pos:end].split(b" ")
        if (len(parts) != 4 or parts[0] != b"H" or not parts[1].isdigit()
                or not parts[3].isdigit() or int(parts[3]) > MAX_HEADER):
            return found, True
        length = int(parts[3])
        start = end + 1
        if data[start + length:start + length + 1] != b"\n":
            return found, True
        found[int(parts[1])] = (parts[2].decode("utf-8", "surrogateescape"),
                                data[start:start + length])
        pos = start + length + 1
    return found, False


def record(uid: int, base: str, header: bytes) -> bytes:
    return b"H %d %s %d\n%s\n" % (uid, base.encode("utf-8", "surrogateescape"), len(header),
                                   header)


class HeaderCache:
    def __init__(self, directory: str | None, owner: tuple[int, int] | None = None):
        self.path = None if directory is None else os.path.join(directory, FILE_NAME)
        self.owner = owner
        self.records: dict[int, tuple[str, bytes]] | None = None
        self.count = 0  # records in the file
        self.deferring = False  # hold appends until flush() (or FLUSH_RECORDS/FLUSH_BYTES)
        self._pending: list[bytes] = []  # records in `records` not yet appended to the file
        self._pending_size = 0
        self._live = None  # the latest `live` handed to put(), for the rewrite check

    def _load(self) -> dict[int, tuple[str, bytes]]:
        if self.records is None:
            self.records = {}
            if self.path is not None:
                try:
                    with open(self.path, "rb") as handle:
                        data = handle.read()
                except FileNotFoundError:
                    data = b""
                self.records, damaged = parse(data)
                self.count = data.count(b"\nH ") + (1 if data.startswith(b"H ") else 0)
                if damaged:
                    self._rewrite({})
        return self.records

    def get(self, uid: int, base: str) -> bytes | None:
        found = self._load().get(uid)
        return found[1] if found is not None and found[0] == base else None

    def put(self, uid: int, base: str, header: bytes, live) -> None:
        """Remember `header`; `live` (uid -> base of the current messages: len() and get())
        lets a rewrite drop records of expunged messages."""
        if len(header) > MAX_HEADER:
            return
        records = self._load()
        records[uid] = (base, header)
        if self.path is None:
            return
        self._live = live
        item = record(uid, base, header)
        self._pending.append(item)
        self._pending_size += len(item)
        if (not self.deferring or len(self._pending) >= FLUSH_RECORDS
                or self._pending_size >= FLUSH_BYTES):
            self.flush()

    def flush(self) -> None:
        """Append the records put() held back, in one write."""
        if not self._pending:
            return
        pending, live = self._pending, self._live
        self._pending, self._pending_size, self._live = [], 0, None
        if self.count > 2 * len(live) + 100:
            self._rewrite(live)  # writes every record, the pending ones included
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            if self.owner is not None and self.count == 0:
                os.fchown(fd, *self.owner)
            os.write(fd, b"".join(pending))
            self.count += len(pending)
        except OSError:
            pass  # a short or failed append is damage the next load() repairs
        finally:
            os.close(fd)

    def _rewrite(self, live) -> None:
        self._pending, self._pending_size, self._live = [], 0, None
        records = self.records or {}
        if live:
            records = {uid: item for uid, item in records.items() if live.get(uid) == item[0]}
        self.records = records
        if self.path is None:
            return
        temp = self.path + ".tmp"
        try:
            with open(temp, "wb") as handle:
                if self.owner is not None:
                    os.fchown(handle.fileno(), *self.owner)
                for uid, (base, header) in records.items():
                    handle.write(record(uid, base, header))
            os.rename(temp, self.path)
            self.count = len(records)
        except OSError:
            pass


HEAD_READ = 8192  # one read serves the whole header of almost every message


def read_header(stream) -> bytes:
    """The header block of a CRLF message stream, through the empty line (or all of a
    message without a body). One read and a find for a header within HEAD_READ bytes; a
    longer one line by line, at most MAX_HEADER plus one line (the stream is left
    anywhere after the header)."""
    head = stream.read(HEAD_READ)
    end = _header_end(head)
    if end >= 0:
        return head[:end]
    if len(head) < HEAD_READ:
        return head  # the whole message, and no empty line in it
    return _header_lines(io.BytesIO(head + stream.read(2 * MAX_HEADER + 2)))


def _header_end(data: bytes) -> int:
    """Offset just past the first empty line (b"\r\n" or b"\n" after a line end, or at
    the start), or -1."""
    if data.startswith(b"\r\n"):
        return 2
    if data.startswith(b"\n"):
        return 1
    crlf, lf = data.find(b"\n\r\n"), data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf + 3
    return lf + 2 if lf >= 0 else -1


def _header_lines(stream) -> bytes:
    lines = []
    size = 0
    while True:
        line = stream.readline(MAX_HEADER + 1)
        if not line:
            break
        lines.append(line)
        size += len(line)
        if line in (b"\r\n", b"\n") or size > MAX_HEADER:
            break
    return b"".join(lines)
