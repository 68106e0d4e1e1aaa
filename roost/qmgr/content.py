"""The message of a queue file as a delivery agent reads it.

The queue stores content with LF line ends (roost.queue.reader.iter_content); delivery
agents speak SMTP/LMTP and take CRLF (roost.delivery.DeliveryRequest.content): `open_crlf`
converts chunk by chunk. Agents that write files take the stored LF form as it is
(DeliveryRequest.lf_content: `lf_chunks`), which saves converting there and back.

`load(path, queue_id)` reads a small queue file (up to SMALL_FILE bytes) with one read and
parses it from memory (roost.queue.reader.parse_stream), keeping the content records'
payloads on the way; its content is kept with the message while it is active (`decoded`:
those LF chunks, from that one parse; bounded by the queue manager, which drops them when
over budget), so its deliveries read the content without opening the file or decoding its
records again. Larger files are parsed with read_envelope
(the content skipped) and streamed from the file.

Invariants: the bytes read equal the stored content (every LF replaced by CRLF for
open_crlf); a file that is not complete (no owner-execute bit) is not loaded (None).
Security: reads only the queue file it was given; symbolic links are not followed.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator

from roost.queue import QueueFile, iter_content
from roost.queue import records as rec
from roost.queue.reader import parse_stream, read_envelope

SMALL_FILE = 256 * 1024  # queue files up to this size are read once and kept while active


class CrlfStream(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk.replace(b"\n", b"\r\n")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def lf_chunks(qf: QueueFile, held: bytes | None = None) -> Iterator[bytes]:
    """The stored content (LF line ends), from `held` (the file's bytes) when given."""
    if held is None:
        yield from iter_content(qf)
        return
    decoder = rec.RecordDecoder(start_offset=qf.content_offset)
    for _offset, rtype, payload in decoder.feed(held[qf.content_offset:qf.end_offset]):
        if rtype != rec.CONTENT:
            return
        yield payload


def open_crlf(qf: QueueFile, held: bytes | None = None) -> io.BufferedReader:
    return open_crlf_chunks(lf_chunks(qf, held))


def decoded(qf: QueueFile, held: bytes) -> tuple[bytes, ...]:
    """The content of a loaded small file's bytes as its LF chunks, decoded once for all the
    message's deliveries: those `load` kept while it parsed the file (taken from the
    QueueFile, which then no longer holds them), else decoded from `held`."""
    chunks = qf.content_chunks
    if chunks is not None:
        qf.content_chunks = None
        return chunks
    return tuple(lf_chunks(qf, held))


def open_crlf_chunks(chunks) -> io.BufferedReader:
    """LF chunks (an iterable) as a CRLF stream."""
    return io.BufferedReader(CrlfStream(iter(chunks)), buffer_size=1 << 16)


def load(path: str, queue_id: str) -> tuple[QueueFile, bytes | None] | None:
    """(parsed file, its bytes when small) of a complete queue file; None when the file
    is not complete yet. Raises QueueFileError (also for a file that went away)."""
    from roost.queue import QueueFileError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise QueueFileError(f"{path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not info.st_mode & stat.S_IXUSR:
            return None
        if info.st_size > SMALL_FILE:
            qf = read_envelope(path, queue_id)
            return (qf, None) if qf.complete else None
        data = os.read(fd, info.st_size)
        while len(data) < info.st_size:   # a short read: the rest follows
            more = os.read(fd, info.st_size - len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        raise QueueFileError(f"{path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    qf = QueueFile(path, queue_id)
    qf.mode = info.st_mode
    chunks = iter((data,))
    kept: list = []
    parse_stream(lambda _size: next(chunks, b""), qf, kept)
    qf.content_chunks = tuple(kept)   # what `decoded` hands out (the same parse, not another)
    return qf, data
