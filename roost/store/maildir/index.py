"""roost.index: the per-mailbox cache beside dovecot-uidlist (MODSEQ, dates, sizes, flags seen).

What IMAP needs that file names do not carry: each message's MODSEQ (RFC 7162 §3.1) and the
mailbox's HIGHESTMODSEQ, the internal date and RFC822.SIZE (so listing 10,000 messages needs
no stat() per file), and the info letters last seen (a difference means another program
changed the flags: a new MODSEQ). UIDs and UIDVALIDITY stay owned by dovecot-uidlist; this
file repeats them so it can check it still describes the same mailbox, and so a lost or
damaged dovecot-uidlist can be rebuilt with the same UIDs.

Text, append-mostly, one record a line, later lines win:
  `R1 V<uidvalidity> G<mailbox guid>`           header (first line)
  `<uid> <modseq> <date> <size> <letters|-> <base>`   a message as last seen
  `X <uid> <modseq>`                              the message was expunged
  `F <modseq>`                                    expunges up to this MODSEQ are forgotten
  `U <dev>:<ino>:<size>:<mtime_ns>`               the dovecot-uidlist this file agrees with
  `N <uidnext>`                                   UIDNEXT (kept if dovecot-uidlist is lost)
  `K <uid> [<keyword>...]`                        keywords beyond the 26 file-name letters
Rewritten (tmp + rename) when appended lines outnumber live messages. The `X` records are
the expunge history QRESYNC answers from (RFC 7162 §3.2.5.2, §3.2.6: which UIDs vanished
since a MODSEQ); a rewrite keeps the newest of them (at most half the live messages + 500, so
rewrites stay rare) and records in `F` the MODSEQ below which the history is incomplete
(callers then report every absent UID, which §3.2.5.2 allows).

Invariants: parse() never raises; any malformed line marks the file damaged (the caller
rebuilds it from the Maildir and logs a warning); a final line without newline (crash during
an append) is ignored. Only written under the index lock (roost.store.maildir.indexlock;
the lock order is in roost.store.maildir.folder). A parsed Index a process's sessions share
(`shared_as` set) is never changed.
Security: base names containing '/' or NUL make the file damaged (never followed).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

from roost.store.maildir.keywords import valid_keyword

FILE_NAME = "roost.index"


class Entry(NamedTuple):  # a tuple: 10,000 of them are built per parse
    uid: int
    modseq: int
    date: int
    size: int
    letters: str
    base: str


@dataclass(slots=True, weakref_slot=True)  # shared by a process's sessions of a mailbox
class Index:
    uidvalidity: int
    guid: str
    entries: dict[int, Entry] = field(default_factory=dict)
    highestmodseq: int = 1
    uidlist_signature: str = ""
    uidnext: int = 1  # as dovecot-uidlist last said: survives the loss of that file
    lines: int = 1  # lines in the file (decides when to rewrite)
    # keywords beyond the 26 file-name letters (Dovecot keeps those in its index only)
    extra: dict[int, frozenset[str]] = field(default_factory=dict)
    expunged: dict[int, int] = field(default_factory=dict)  # uid -> MODSEQ of its expunge
    # expunges with a MODSEQ up to this one are not all in `expunged`; None: a new index,
    # which knows nothing from before its HIGHESTMODSEQ
    forgotten: int | None = None
    # the signature of the file version this object is, once it is shared between the
    # folder objects of a process (roost.store.maildir.folder): then it is never changed
    shared_as: str = ""

    def __post_init__(self) -> None:
        if self.forgotten is None:
            self.forgotten = self.highestmodseq

    def expunged_since(self, modseq: int) -> set[int] | None:
        """UIDs expunged with a MODSEQ above `modseq`; None when the history does not reach
        back that far (RFC 7162 §3.2.5.2 then lets the caller report every absent UID)."""
        if modseq < self.forgotten:
            return None
        return {uid for uid, when in self.expunged.items() if when > modseq}


def signature(st: os.stat_result | None) -> str:
    if st is None:
        return ""
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def parse(data: bytes) -> tuple[Index | None, str | None]:
    end = data.rfind(b"\n")
    if end < 0:
        return None, "empty"
    lines = data[:end].decode("utf-8", "surrogateescape").split("\n")
    head = lines[0].split()
    if len(head) != 3 or head[0] != "R1" or not head[1][:1] == "V" or not head[1][1:].isdigit():
        return None, "bad header"
    index = Index(int(head[1][1:]), head[2][1:], lines=len(lines))
    entries = index.entries
    expunged = index.expunged
    highest = 1
    forgotten = None  # an `F` record, or the first `X 0` (an older rewrite kept no history)
    for number, line in enumerate(lines[1:], start=2):
        if line.startswith("U "):
            index.uidlist_signature = line[2:]
            continue
        if line.startswith("N "):
            if not line[2:].isdigit():
                return None, f"line {number}: bad uidnext record"
            index.uidnext = max(index.uidnext, int(line[2:]))
            continue
        if line.startswith("K "):
            parts = line.split()
            if not parts[1].isdigit() or not all(valid_keyword(k) for k in parts[2:]):
                return None, f"line {number}: bad keywords record"
            if len(parts) > 2:
                index.extra[int(parts[1])] = frozenset(parts[2:])
            else:
                index.extra.pop(int(parts[1]), None)
            continue
        if line.startswith("X "):
            parts = line.split()
            if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
                return None, f"line {number}: bad expunge record"
            uid, modseq = int(parts[1]), int(parts[2])
            entries.pop(uid, None)
            index.extra.pop(uid, None)
            if uid:
                expunged[uid] = modseq
            elif forgotten is None:
                forgotten = modseq
            highest = max(highest, modseq)
            continue
        if line.startswith("F "):
            if not line[2:].isdigit():
                return None, f"line {number}: bad history record"
            forgotten = max(forgotten or 0, int(line[2:]))
            continue
        parts = line.split(" ", 5)
        try:
            uid_text, modseq_text, date_text, size_text, letters, base = parts
            if not (uid_text.isdigit() and modseq_text.isdigit() and date_text.isdigit()
                    and size_text.isdigit()):
                raise ValueError
        except ValueError:
            return None, f"line {number}: bad record"
        uid, modseq = int(uid_text), int(modseq_text)
        if not base or "/" in base or "\0" in base or uid == 0:
            return None, f"line {number}: bad file name"
        entries[uid] = Entry(uid, modseq, int(date_text), int(size_text),
                             "" if letters == "-" else letters, base)
        highest = max(highest, modseq)
    index.highestmodseq = highest
    if forgotten is None:  # never rewritten: everything since the first record is here
        lowest = min(min((e.modseq for e in entries.values()), default=highest),
                     min(expunged.values(), default=highest))
        forgotten = lowest - 1 if entries or expunged else highest
    index.forgotten = forgotten
    if entries:
        index.entries = dict(sorted(entries.items()))
    return index, None


def keywords_line(uid: int, names) -> str:
    return " ".join(["K", str(uid), *sorted(names)]) + "\n"


def entry_line(entry: Entry) -> str:
    return (f"{entry.uid} {entry.modseq} {entry.date} {entry.size} "
            f"{entry.letters or '-'} {entry.base}\n")


def keep_history(index: Index) -> None:
    """Forget the oldest expunges beyond the bound (see the module docstring), raising
    `forgotten` to the newest MODSEQ dropped."""
    bound = len(index.entries) // 2 + 500
    if len(index.expunged) <= bound:
        return
    ordered = sorted(index.expunged.items(), key=lambda item: item[1])
    cut = len(ordered) - bound
    index.forgotten = max(index.forgotten, ordered[cut - 1][1])
    index.expunged = dict(ordered[cut:])


def serialize(index: Index) -> bytes:
    keep_history(index)
    parts = [f"R1 V{index.uidvalidity} G{index.guid}\n", f"F {index.forgotten}\n"]
    parts.extend(entry_line(e) for e in index.entries.values())
    parts.extend(keywords_line(uid, names) for uid, names in index.extra.items()
                 if names and uid in index.entries)
    parts.extend(f"X {uid} {modseq}\n" for uid, modseq in index.expunged.items())
    parts.append(f"X 0 {index.highestmodseq}\n")  # keeps HIGHESTMODSEQ when it was an expunge
    parts.append(f"N {index.uidnext}\n")
    if index.uidlist_signature:
        parts.append(f"U {index.uidlist_signature}\n")
    return "".join(parts).encode("utf-8", "surrogateescape")


def read(path: str) -> tuple[Index | None, str | None, os.stat_result | None]:
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return None, None, None
    found, problem = parse(data)
    return found, problem, st


def write(path: str, index: Index) -> os.stat_result:
    """Rewrite the whole file (no fsync: it is a cache that can be rebuilt), keeping the
    expunge history the file on disk has."""
    _merge_history(path, index)
    data = serialize(index)
    temp = path + ".tmp"
    with open(temp, "wb") as handle:
        handle.write(data)
        st = os.fstat(handle.fileno())
    os.rename(temp, path)
    index.lines = data.count(b"\n")
    return st


def _merge_history(path: str, index: Index) -> None:
    """Carry the expunges of the file being replaced into `index` (under the lock): its
    `X` records, and its live messages that `index` no longer has — expunged by the sync
    that rewrites, whose records were never appended — at `index`'s HIGHESTMODSEQ, an upper
    bound of their real MODSEQ (reporting an expunge as later than it was only repeats a
    VANISHED (EARLIER) the client may get anyway, RFC 7162 §3.2.5.2)."""
    previous, _problem, _st = read(path)
    if previous is None or previous.uidvalidity != index.uidvalidity:
        return
    for uid, modseq in previous.expunged.items():
        if uid not in index.entries:
            index.expunged.setdefault(uid, modseq)
    for uid in previous.entries.keys() - index.entries.keys() - index.expunged.keys():
        index.expunged[uid] = index.highestmodseq
    index.forgotten = max(index.forgotten, min(previous.forgotten, index.highestmodseq))


def _note_expunges(index: Index, text: str) -> None:
    """Keep `index.expunged` in step with the `X` records being appended."""
    if "X " not in text:
        return
    for line in text.split("\n"):
        if line.startswith("X "):
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() and parts[1] != "0":
                index.expunged[int(parts[1])] = int(parts[2])


def append(path: str, index: Index, text: str) -> os.stat_result:
    """Append lines; a file whose last line was cut short is rewritten instead."""
    _note_expunges(index, text)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
    except FileNotFoundError:
        return write(path, index)
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) != b"\n":
            os.close(fd)
            fd = -1
            return write(path, index)
        data = text.encode("utf-8", "surrogateescape")
        os.write(fd, data)
        index.lines += data.count(b"\n")
        return os.fstat(fd)
    finally:
        if fd >= 0:
            os.close(fd)
