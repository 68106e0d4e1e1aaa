"""dovecot-uidlist: the UID <-> file map Dovecot keeps in every Maildir.

Implements the format Dovecot 2.3 reads and writes (observed with Debian's Dovecot 2.3.19 and
documented in doc.dovecot.org "Maildir Mailbox Format"):
  version 3 header `3 V<uidvalidity> N<nextuid> G<mailbox guid, 32 hex>[ <key><value>...]`
  records `<uid>[ <key><value>...] :<base name>` (the name without its `:2,` info part),
  uids strictly ascending; records may be appended after the header was written, so the next
  uid is max(N, last uid + 1).
  version 1 (Courier-compatible) `1 <uidvalidity> <nextuid>` / `<uid> <name>` is read too.
Writers hold `dovecot-uidlist.lock` (roost.store.maildir.dotlock); a full rewrite goes through
`dovecot-uidlist.tmp` and rename, an append adds whole lines with one write().

Invariants: parse() never raises: a damaged file gives `None` (caller rebuilds) and a logged
reason; a trailing line without its newline (a crashed append) is ignored.
Security: a record whose name contains '/' or NUL is treated as damage (it could point
outside the mailbox).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field

FILE_NAME = "dovecot-uidlist"
MAX_UID = 0xFFFFFFFE


@dataclass
class UidList:
    uidvalidity: int
    next_uid: int
    guid: str
    records: dict[int, str] = field(default_factory=dict)  # uid -> base name, ascending
    extensions: dict[int, str] = field(default_factory=dict)  # uid -> " K.. K.." as written
    header_extra: str = ""
    version: int = 3
    parsed_size: int = 0  # bytes of the file the records came from (whole lines)

    @property
    def uidnext(self) -> int:
        last = next(reversed(self.records), 0) if self.records else 0
        return max(self.next_uid, last + 1)


def new_guid() -> str:
    return secrets.token_hex(16)


def parse(data: bytes) -> tuple[UidList | None, str | None]:
    """(UidList, None) or (None, why it is damaged). Empty data is damage too."""
    end = data.rfind(b"\n")
    if end < 0:
        return None, "empty or truncated header"
    try:
        text = data[:end].decode("utf-8", "surrogateescape")
    except UnicodeDecodeError:  # pragma: no cover - surrogateescape never fails
        return None, "undecodable"
    lines = text.split("\n")
    header = lines[0]
    uidlist = _parse_header(header)
    if uidlist is None:
        return None, f"Corrupted header: {header[:80]!r}"
    problem = _parse_records(uidlist, lines[1:], 2)
    if problem:
        return None, problem
    uidlist.parsed_size = end + 1
    return uidlist, None


def parse_appended(uidlist: UidList, data: bytes) -> UidList | None:
    """`uidlist` plus the records in `data` (what was appended since it was parsed), as a
    new object; None when they do not continue it properly (parse the whole file then)."""
    end = data.rfind(b"\n")
    if end < 0:
        return uidlist
    copy = UidList(uidlist.uidvalidity, uidlist.next_uid, uidlist.guid, dict(uidlist.records),
                   dict(uidlist.extensions), uidlist.header_extra, uidlist.version)
    lines = data[:end].decode("utf-8", "surrogateescape").split("\n")
    if _parse_records(copy, lines, 0):
        return None
    copy.parsed_size = uidlist.parsed_size + end + 1
    return copy


def _parse_records(uidlist: UidList, lines: list[str], first_number: int) -> str | None:
    records = uidlist.records
    previous = next(reversed(records), 0) if records else 0
    for number, line in enumerate(lines, start=first_number):
        uid_text, space, rest = line.partition(" ")
        if not space or not uid_text.isdigit():
            return f"line {number}: Invalid data: {line[:80]!r}"
        uid = int(uid_text)
        if uid <= previous or uid > MAX_UID:
            return f"line {number}: UIDs not ordered ({uid} >= {previous})"
        previous = uid
        if uidlist.version == 3:
            colon = rest.find(":")
            if colon < 0:
                return f"line {number}: Invalid extended fields: {rest[:80]!r}"
            ext, name = rest[:colon].strip(), rest[colon + 1:]
            if ext and any(not item[:1].isupper() for item in ext.split()):
                return f"line {number}: Invalid extension record: {ext[:80]!r}"
            if ext:
                uidlist.extensions[uid] = ext
        else:
            name = rest.strip()
        if not name or "/" in name or "\0" in name:
            return f"line {number}: Broken filename: {name[:80]!r}"
        records[uid] = name
    return None


def _parse_header(header: str) -> UidList | None:
    if len(header) < 2 or not header[0].isdigit() or header[1] != " ":
        return None
    version = int(header[0])
    if version == 1:
        parts = header[2:].split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None
        validity, next_uid = int(parts[0]), int(parts[1])
        guid, extra = "", ""
    elif version == 3:
        validity = next_uid = 0
        guid = ""
        extras = []
        for item in header[2:].split():
            key, value = item[0], item[1:]
            if key == "V" and value.isdigit():
                validity = int(value)
            elif key == "N" and value.isdigit():
                next_uid = int(value)
            elif key == "G":
                if len(value) != 32 or any(c not in "0123456789abcdefABCDEF" for c in value):
                    return None
                guid = value.lower()
            else:
                extras.append(item)
        extra = " ".join(extras)
    else:
        return None
    if not 0 < validity <= 0xFFFFFFFF or not 0 < next_uid <= MAX_UID + 1:
        return None
    return UidList(validity, next_uid, guid, header_extra=extra, version=version)


def serialize(uidlist: UidList) -> bytes:
    guid = uidlist.guid or new_guid()
    head = f"3 V{uidlist.uidvalidity} N{uidlist.uidnext} G{guid}"
    if uidlist.header_extra:
        head += " " + uidlist.header_extra
    lines = [head]
    for uid, name in uidlist.records.items():
        ext = uidlist.extensions.get(uid)
        lines.append(f"{uid} {ext} :{name}" if ext else f"{uid} :{name}")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def record_lines(pairs) -> bytes:
    """Lines to append for (uid, base name) pairs."""
    return "".join(f"{uid} :{name}\n" for uid, name in pairs).encode("utf-8", "surrogateescape")


def read(path: str) -> tuple[UidList | None, str | None, os.stat_result | None]:
    """(uidlist or None, damage reason or None, stat) of the file at `path`; a missing file
    is (None, None, None)."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return None, None, None
    uidlist, problem = parse(data)
    return uidlist, problem, st


def write(path: str, uidlist: UidList, *, fsync: bool = True) -> os.stat_result:
    """Rewrite the whole file (caller holds the dotlock): tmp file, fdatasync, rename."""
    uidlist.guid = uidlist.guid or new_guid()
    temp = path + ".tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        data = serialize(uidlist)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if fsync:
            os.fdatasync(fd)
        st = os.fstat(fd)
    finally:
        os.close(fd)
    os.rename(temp, path)
    return st


def tail_state(path: str) -> tuple[int, int] | None:
    """(uidvalidity, next uid) from the header and the last record, reading only the file's
    ends; None when missing, version 1, or the ends look damaged (then parse it whole)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        small = size <= 8192
        head = os.pread(fd, 8192 if small else 1024, 0)
        tail = head if small else os.pread(fd, 4096, size - 4096)
    finally:
        os.close(fd)
    first = head.find(b"\n")
    if first < 0 or not tail.endswith(b"\n"):
        return None
    header = _parse_header(head[:first].decode("utf-8", "replace"))
    if header is None or header.version != 3:
        return None
    body = tail[:-1]
    cut = body.rfind(b"\n")
    if cut < 0 and not small:
        return None
    last_uid = 0
    if cut >= 0:
        uid_text = body[cut + 1:].split(b" ", 1)[0]
        if not uid_text.isdigit():
            return None
        last_uid = int(uid_text)
    return header.uidvalidity, max(header.next_uid, last_uid + 1)


def append(path: str, data: bytes) -> None:
    """Append whole lines with one write (caller holds the dotlock)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
