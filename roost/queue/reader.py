"""Reads queue files for the queue manager, postcat and mailq (format: roost.queue.records).

`read_envelope(path)` returns a `QueueFile` (envelope, extracted section, recipients with
their record offsets and done marks, where the content is) without loading the content;
`iter_content(qf)` streams the stored content in chunks; `mark_done(path, offset)` flips a
recipient's R byte to D in place and fsyncs (what a delivery agent does after a final
delivery status). A file is valid only when its last record is the end record and every
record parses; anything else raises `QueueFileError` (the queue manager moves such files to
`corrupt`), never another exception.

Invariants: reading never modifies a file (mark_done is the one writer, one byte).
Security: record sizes are bounded (records.MAX_RECORD) before being read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Iterator

from roost.queue import records as rec

READ_SIZE = 1 << 16


class QueueFileError(ValueError):
    """Not a complete, well-formed queue file."""


@dataclass
class Recipient:
    address: str
    offset: int                      # file offset of the R/D type byte
    done: bool = False
    original: str | None = None      # before rewriting (orig_to=)
    orcpt: str | None = None         # DSN ORCPT
    notify: int = 0                  # DSN NOTIFY mask
    extracted: bool = False          # listed after the content (always_bcc, sendmail -t)


@dataclass
class QueueFile:
    path: str
    queue_id: str
    content_size: int = 0
    data_offset: int = 0
    smtputf8: int = 0
    flags: int = 0
    arrival: float = 0.0
    sender: str | None = None
    fullname: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    recipients: list[Recipient] = field(default_factory=list)
    content_offset: int = 0          # file offset of the first record after M
    end_offset: int = 0              # file offset of the E record
    records: list[tuple[int, int, bytes]] = field(default_factory=list)  # envelope+extracted, for postcat
    mode: int = 0
    # the content records' payloads, when the parse was asked to keep them (roost.qmgr.content)
    content_chunks: tuple[bytes, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def complete(self) -> bool:
        return bool(self.mode & stat.S_IXUSR)

    @property
    def pending_recipients(self) -> list[Recipient]:
        return [r for r in self.recipients if not r.done]


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", "surrogateescape")


class _Builder:
    def __init__(self, qf: QueueFile, content: list | None = None) -> None:
        self.qf = qf
        self.pending: dict[str, object] = {}
        self.section = "envelope"    # envelope -> content -> extracted -> end
        self.seen_size = False
        self.pointer = 0             # offset of the X record, from the p record
        self.content = content       # collects the content records' payloads when given

    def add(self, offset: int, rtype: int, payload: bytes) -> None:
        self.feed(((offset, rtype, payload),))

    def feed(self, events) -> None:
        """Every (offset, type, payload) of `events` in order: the one loop every parse goes
        through (a small file's records in one call, no call per record)."""
        qf = self.qf
        records = qf.records
        content = self.content
        section = self.section
        for offset, rtype, payload in events:
            if section == "content":
                if rtype == _CONTENT:   # the bulk of a file: kept or skipped, nothing else
                    if content is not None:
                        content.append(payload)
                    continue
                if rtype != _XTRA:
                    raise QueueFileError(f"unexpected record {chr(rtype)} in the content")
                section = self.section = "extracted"
            elif section == "end":
                raise QueueFileError("data after the end record")
            elif not self.seen_size:
                if rtype != _SIZE:
                    raise QueueFileError("first record is not the size record")
                try:
                    (qf.content_size, qf.data_offset, _nrcpt, qf.flags, _length,
                     qf.smtputf8) = rec.parse_size_payload(payload)
                except rec.RecordError as exc:
                    raise QueueFileError(str(exc)) from None
                self.seen_size = True
                records.append((offset, rtype, payload))
                continue
            if rtype == _CONTENT or rtype == _SIZE:
                raise QueueFileError(f"unexpected record {chr(rtype)} in the {section} section")
            records.append((offset, rtype, payload))
            if rtype == _ATTR:   # the most frequent envelope record first
                name, sep, value = payload.decode("utf-8", "surrogateescape").partition("=")
                if not sep or not name:
                    raise QueueFileError("bad attribute record")
                qf.attributes[name] = value
            elif rtype == _TIME:
                parts = payload.split()
                if len(parts) != 2 or not all(p.isdigit() for p in parts):
                    raise QueueFileError("bad time record")
                qf.arrival = int(parts[0]) + int(parts[1]) / 1e6
            elif rtype == _FULLNAME:
                qf.fullname = _text(payload)
            elif rtype == _SENDER:
                qf.sender = _text(payload)
            elif rtype == _ORIG_RCPT:
                self.pending["original"] = _text(payload)
            elif rtype == _DSN_ORCPT:
                self.pending["orcpt"] = _text(payload)
            elif rtype == _DSN_NOTIFY:
                if not payload.isdigit() or int(payload) > 15:
                    raise QueueFileError("bad notify record")
                self.pending["notify"] = int(payload)
            elif rtype == _RCPT or rtype == _DONE:
                qf.recipients.append(Recipient(_text(payload), offset, rtype == _DONE,
                                               extracted=section == "extracted", **self.pending))
                self.pending = {}
            elif rtype == _POINTER:
                if section != "envelope" or len(payload) != 15 or not payload.strip().isdigit():
                    raise QueueFileError("bad pointer record")
                self.pointer = int(payload)
            elif rtype == _MESSAGE:
                if section != "envelope" or offset != qf.data_offset:
                    raise QueueFileError("misplaced message content record")
                section = self.section = "content"
                qf.content_offset = offset + 2
            elif rtype == _END:
                if section != "extracted":
                    raise QueueFileError("end record before the content")
                qf.end_offset = offset
                section = self.section = "end"


_SIZE, _TIME, _FULLNAME, _ATTR, _SENDER = rec.SIZE, rec.TIME, rec.FULLNAME, rec.ATTR, rec.SENDER
_ORIG_RCPT, _DSN_ORCPT, _DSN_NOTIFY, _RCPT, _DONE = (rec.ORIG_RCPT, rec.DSN_ORCPT, rec.DSN_NOTIFY,
                                                    rec.RCPT, rec.DONE)
_POINTER, _MESSAGE, _CONTENT, _XTRA, _END = rec.POINTER, rec.MESSAGE, rec.CONTENT, rec.XTRA, rec.END


def read_envelope(path: str, queue_id: str | None = None) -> QueueFile:
    """Parse and validate the file's records; the content is skipped with one seek when the
    pointer record says where the extracted section starts (content records not kept)."""
    qf = QueueFile(path, queue_id or os.path.basename(path))
    try:
        with open(path, "rb", buffering=0) as handle:
            qf.mode = os.fstat(handle.fileno()).st_mode
            _parse_seeking(handle, qf)
    except OSError as exc:
        raise QueueFileError(f"{path}: {exc.strerror or exc}") from None
    return qf


def _parse_seeking(handle, qf: QueueFile) -> None:
    decoder = rec.RecordDecoder()
    builder = _Builder(qf)
    skipped = False
    try:
        while True:
            data = handle.read(READ_SIZE)
            if not data:
                break
            for offset, rtype, payload in decoder.feed(data):
                builder.add(offset, rtype, payload)
                if rtype == rec.MESSAGE and builder.pointer > offset and not skipped:
                    skipped = True
                    handle.seek(builder.pointer)
                    decoder = rec.RecordDecoder(start_offset=builder.pointer)
                    break
    except rec.RecordError as exc:
        raise QueueFileError(str(exc)) from None
    if decoder.pending or builder.section != "end":
        raise QueueFileError("file has no end record (incomplete)")


def parse_stream(read, qf: QueueFile, content: list | None = None) -> QueueFile:
    """Parse and validate a whole file from `read(size)`; `content`, when given, receives
    the content records' payloads (the stored content, LF line ends) on the way."""
    decoder = rec.RecordDecoder()
    builder = _Builder(qf, content)
    try:
        while True:
            data = read(READ_SIZE)
            if not data:
                break
            builder.feed(decoder.feed(data))
    except rec.RecordError as exc:
        raise QueueFileError(str(exc)) from None
    if decoder.pending or builder.section != "end":
        raise QueueFileError("file has no end record (incomplete)")
    return qf


def parse_bytes(data: bytes, queue_id: str = "") -> QueueFile:
    """Parse an in-memory queue file (tests, fuzzing)."""
    chunks = iter([data])
    return parse_stream(lambda _n: next(chunks, b""), QueueFile("", queue_id))


def iter_content(qf: QueueFile) -> Iterator[bytes]:
    """The stored content (LF line ends) in chunks, from the file's content records."""
    with open(qf.path, "rb", buffering=0) as handle:
        handle.seek(qf.content_offset)
        decoder = rec.RecordDecoder()
        remaining = qf.end_offset - qf.content_offset
        while remaining > 0:
            data = handle.read(min(READ_SIZE * 4, remaining))
            if not data:
                raise QueueFileError("queue file shrank while reading")
            remaining -= len(data)
            try:
                events = decoder.feed(data)
            except rec.RecordError as exc:
                raise QueueFileError(str(exc)) from None
            for _offset, rtype, payload in events:
                if rtype == rec.CONTENT:
                    yield payload
                else:
                    return


def read_content(qf: QueueFile) -> bytes:
    return b"".join(iter_content(qf))


def mark_done(path: str, offset: int) -> None:
    """Mark the recipient whose R record starts at `offset` as done (in place, fsynced)."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        current = os.pread(fd, 1, offset)
        if current not in (b"R", b"D"):
            raise QueueFileError(f"no recipient record at offset {offset}")
        os.pwrite(fd, b"D", offset)
        os.fsync(fd)
    finally:
        os.close(fd)
