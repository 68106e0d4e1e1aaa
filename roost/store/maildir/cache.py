"""roost.cache: cached header blocks, so ENVELOPE / HEADER.FIELDS fetches need no file open.

Implements the "cached header fields" part of the per-mailbox index (Dovecot keeps the same
kind of data in dovecot.index.cache): for each message whose header was asked for, the
header block (RFC 5322 §2.1: up to and including the empty line) with CRLF line ends.
Append-only records `H <uid> <base> <length>\n<length bytes>\n`; later records win; a
record whose base name is not the message's any more is ignored; the file is rewritten
without dead records when they outnumber the live ones.

Invariants: never raises on a damaged file (the valid records before the damage are kept and
the file is rewritten); headers larger than MAX_HEADER are not cached.
Security: lengths are bounded (MAX_HEADER) before anything is read into memory.
"""

from __future__ import annotations

import os

FILE_NAME = "roost.cache"
MAX_HEADER = 64 * 1024


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

    def put(self, uid: int, base: str, header: bytes, live: dict[int, str]) -> None:
        """Remember `header`; `live` (uid -> base of the current messages) lets a rewrite
        drop records of expunged messages."""
        if len(header) > MAX_HEADER:
            return
        records = self._load()
        records[uid] = (base, header)
        if self.path is None:
            return
        if self.count > 2 * len(live) + 100:
            self._rewrite(live)
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            return
        try:
            if self.owner is not None and self.count == 0:
                os.fchown(fd, *self.owner)
            os.write(fd, record(uid, base, header))
            self.count += 1
        finally:
            os.close(fd)

    def _rewrite(self, live: dict[int, str]) -> None:
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


def read_header(stream) -> bytes:
    """The header block of a CRLF message stream, through the empty line (or all of a
    message without a body)."""
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
