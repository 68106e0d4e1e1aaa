"""The message of a queue file as a delivery agent reads it: a stream with CRLF line ends.

The queue stores content with LF line ends (roost.queue.reader.iter_content); delivery
agents speak SMTP/LMTP or write files and take CRLF (roost.delivery.DeliveryRequest.content).
`open_crlf(qf)` converts chunk by chunk, never holding the whole message.

Invariants: the bytes read equal the stored content with every LF replaced by CRLF.
Security: reads only the queue file it was given.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

from roost.queue import QueueFile, iter_content


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


def open_crlf(qf: QueueFile) -> io.BufferedReader:
    return io.BufferedReader(CrlfStream(iter_content(qf)), buffer_size=1 << 16)
