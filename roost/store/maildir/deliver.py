"""Saving a message into a Maildir folder, durably, and giving it its UID.

Implements Maildir delivery (cr.yp.to/proto/maildir.html, DESIGN.md durability contract):
write tmp/<name> -> fsync -> (under the dovecot-uidlist lock, as Dovecot does) rename into
new/ (cur/ with `:2,<flags>` when flags or keywords are given, as Dovecot saves) -> fsync the
directory. Lines are stored with LF (Dovecot's mail_save_crlf=no); the name carries
`,S=<stored size>,W=<CRLF size>` so RFC822.SIZE needs no read. The UID is assigned by
appending one record to dovecot-uidlist (reading only the file's ends), so a delivery never
rewrites an index; the next sync records MODSEQ and the rest in roost.index.

Group commit: inside `deferred_directory_syncs()` (the queue manager's commit thread, see
roost.delivery.commit_thread and roost.delivery.store) commit() collects the directories
instead of fsyncing them, and the caller fsyncs each once for all the deliveries of its batch
before any of them is reported.

Invariants: when save() returns the file is durable (unless mail_fsync=never), or, inside
deferred_directory_syncs(), will be once the collected directories are fsynced; the tmp file
is removed on every failure; the base name is unique (time, microseconds, pid, host).
Security: file names are generated here, never taken from the message or the caller.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

from roost.store.maildir import uidlist as uidlist_file
from roost.store.maildir.folder import MaildirFolder
from roost.store.maildir.names import filename_with, new_base
from roost.store.maildir.stream import CHUNK, LFWriter


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_deferred = threading.local()


@contextmanager
def deferred_directory_syncs() -> Iterator[set]:
    """In this thread, until the block ends, commit() adds the directories it would fsync to
    the yielded set instead: the caller must fsync every one of them before it reports any
    delivery made in the block as durable."""
    collected: set = set()
    previous = getattr(_deferred, "directories", None)
    _deferred.directories = collected
    try:
        yield collected
    finally:
        _deferred.directories = previous


def _sync_directory(path: str) -> None:
    collected = getattr(_deferred, "directories", None)
    if collected is None:
        fsync_dir(path)
    else:
        collected.add(path)


def write_temp(folder: MaildirFolder, source: BinaryIO, internal_date: float | None,
               check_size: Callable[[int], None] | None = None) -> tuple[str, str]:
    """Write `source` into tmp/ (LF line ends, fsynced); (temp path, base name with S= W=).
    `check_size(virtual size)` may raise (quota): the temp file is removed."""
    mail = folder.paths.mail
    temp_base = new_base(0, 0).split(",S=")[0]
    temp_path = os.path.join(mail, "tmp", temp_base)
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        writer = LFWriter()
        with os.fdopen(fd, "wb", closefd=True) as out:
            read = getattr(source, "read1", None) or source.read
            while chunk := read(CHUNK):
                out.write(writer.feed(chunk))
            out.write(writer.finish())
            out.flush()
            if folder.owner is not None:
                os.fchown(out.fileno(), *folder.owner)
            if folder.fsync:
                os.fdatasync(out.fileno())
        if internal_date is not None:
            os.utime(temp_path, (internal_date, internal_date))
        if check_size is not None:
            check_size(writer.virtual_size)
    except BaseException:
        discard(temp_path)
        raise
    return temp_path, f"{temp_base},S={writer.stored},W={writer.virtual_size}"


def discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def commit(folder: MaildirFolder, items: list[tuple[str, str, str | None]]) -> list[int]:
    """Move (temp path, base, info letters or None) into new/ or cur/ and number them.

    The renames happen under the dovecot-uidlist lock, as Dovecot does, so no sync can see a
    file before its record is appended (it would give it a second UID)."""
    subs = set()
    placed = []
    try:
        with folder.lock():
            token = folder.delivery_start()
            for temp_path, base, letters in items:
                sub, name = ("new", base) if letters is None else ("cur",
                                                                   filename_with(base, letters))
                os.rename(temp_path, os.path.join(folder.paths.mail, sub, name))
                subs.add(sub)
                placed.append((sub, name))
            uids = _append_records(folder, [base for _temp, base, _letters in items])
            # an IMAP session's folder keeps its index current (the next sync needs no lock)
            folder.record_delivered(token, [(uid, item[1], location) for uid, item, location
                                            in zip(uids, items, placed)])
    except BaseException:
        for temp_path, _base, _letters in items:
            discard(temp_path)
        raise
    if folder.fsync:
        for sub in subs:
            _sync_directory(os.path.join(folder.paths.mail, sub))
    return uids


def _append_records(folder: MaildirFolder, bases: list[str]) -> list[int]:
    state = uidlist_file.tail_state(folder.paths.uidlist)
    if state is None:  # missing or damaged: a full sync records them (and everything else)
        found = folder.sync_locked()
        by_base = {entry.base: uid for uid, entry in found.entries.items()}
        return [by_base.get(base, 0) for base in bases]
    first = state[1]
    pairs = list(zip(range(first, first + len(bases)), bases))
    uidlist_file.append(folder.paths.uidlist, uidlist_file.record_lines(pairs))
    return [uid for uid, _base in pairs]


def save(folder: MaildirFolder, source: BinaryIO, letters: str | None,
         internal_date: float | None,
         check_size: Callable[[int], None] | None = None) -> tuple[int, str]:
    """Store and number one message: (UID, base name), durable when this returns."""
    temp_path, base = write_temp(folder, source, internal_date, check_size)
    return commit(folder, [(temp_path, base, letters)])[0], base
