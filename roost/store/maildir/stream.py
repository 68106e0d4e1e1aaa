"""Line-ending conversion while streaming: LF files out as CRLF, CRLF input stored as LF.

Implements what Dovecot does with mail_save_crlf=no: messages are stored with bare LF line
ends and served with CRLF (RFC 5322 §2.3, RFC 3501 §2.3.1 "message text ... CRLF"); a CR
already before an LF is kept, never doubled. Sizes: the served (virtual) size is the stored
size plus one per LF not preceded by CR.

Invariants: both directions work chunk by chunk with a one-byte carry (a CR at a chunk's end),
so messages of any size are never read whole; a file smaller than CHUNK is read and converted
at open (one read, one replace: the common case of POP3 RETR / IMAP FETCH) and served from
memory, so its bytes do not change if the file is replaced or removed afterwards.
Security: no parsing of content beyond CR/LF; bounded buffers (CHUNK).
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO

CHUNK = 64 * 1024


def to_crlf(data: bytes, previous_cr: bool) -> bytes:
    """`data` with every LF not preceded by CR (looking back into the previous chunk) made CRLF."""
    if b"\r" not in data:  # LF-only text, as stored (mail_save_crlf=no): one 1-octet replace
        out = data.replace(b"\n", b"\r\n")  # (memchr-driven; a 2-octet needle is ~5x slower)
    elif b"\n" not in data:
        return data
    else:
        out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if previous_cr and data.startswith(b"\n"):
        out = out[1:]  # the CR ended the previous chunk
    return out


class CRLFReader(io.RawIOBase):
    """A read-only stream of a LF (or mixed) file with CRLF line ends."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.pending = b""
        self.previous_cr = False
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending and not self.eof:
            chunk = self.raw.read(CHUNK)
            if not chunk:
                self.eof = True
                break
            self.pending = to_crlf(chunk, self.previous_cr)
            self.previous_cr = chunk.endswith(b"\r")
        count = min(len(buffer), len(self.pending))
        buffer[:count] = self.pending[:count]
        self.pending = self.pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self.raw.close()
        super().close()


def open_crlf(path: str) -> BinaryIO:
    """The file at `path` with CRLF line ends, as a readable binary stream (FileNotFoundError
    when it is gone). Small files are converted whole at once, larger ones chunk by chunk."""
    raw = open(path, "rb", buffering=0)
    try:
        if os.fstat(raw.fileno()).st_size < CHUNK:
            data = raw.readall()  # to EOF whatever the size turned out to be: never truncated
            if len(data) <= CHUNK:
                raw.close()
                return io.BytesIO(to_crlf(data, False))
            raw.seek(0)
        return io.BufferedReader(CRLFReader(raw), CHUNK)
    except BaseException:
        raw.close()
        raise


class LFWriter:
    """Feeds chunks of CRLF/LF input, yields LF-only output and counts both sizes."""

    def __init__(self):
        self.held_cr = False
        self.stored = 0  # bytes written
        self.lines = 0  # LFs without CR before them (each becomes CRLF when served)

    def feed(self, chunk: bytes) -> bytes:
        if self.held_cr:
            chunk = b"\r" + chunk
            self.held_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self.held_cr = True
        out = chunk.replace(b"\r\n", b"\n")
        self.stored += len(out)
        self.lines += out.count(b"\n") - out.count(b"\r\n")  # "\r\r\n" keeps one CRLF
        return out

    def finish(self) -> bytes:
        out = b"\r" if self.held_cr else b""
        self.held_cr = False
        self.stored += len(out)
        return out

    @property
    def virtual_size(self) -> int:
        return self.stored + self.lines


def virtual_size_of(path: str) -> int:
    """RFC822.SIZE of a stored file: its size plus one per LF not preceded by CR."""
    total = 0
    previous_cr = False
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            total += len(chunk) + chunk.count(b"\n") - chunk.count(b"\r\n")
            if previous_cr and chunk.startswith(b"\n"):
                total -= 1
            previous_cr = chunk.endswith(b"\r")
    return total
