"""The queue file's record format: typed records, like Postfix's record(3) / rec_type.h.

A record is one type byte, its payload length as a base-128 varint (low 7 bits first, high
bit set on every byte but the last), then the payload. A queue file is, in order:

    C  size record, fixed width as Postfix's: "%15d %15d %15d %15d %15d %15d" = content
       size (as Postfix counts it: stored bytes plus one per line end, i.e. with CRLF),
       offset of the M record, recipient count, flags, content length, smtputf8
    T  arrival time "seconds microseconds"        F  sender full name (optional)
    A  named attribute "name=value" (client_name, client_address, helo_name, protocol,
       sasl_method, sasl_username, log_ident, rewrite_context, envid, ret, body, smtputf8,
       origin, filter, redirect, ...)
    S  envelope sender ("" = null sender)
    for each recipient: O original recipient (before rewriting, optional),
       o DSN ORCPT (optional), n DSN NOTIFY mask (optional), then R recipient
    p  pointer "%15d": file offset of the X record (filled in by finish), so readers of the
       envelope can skip the content (Postfix's REC_TYPE_PTR idea)
    M  start of content, then B records: message content as stored (LF line ends),
       chunks of up to MAX_CHUNK bytes, with no relation to line boundaries
    X  start of extracted information, then W/A records written after the content
    E  end record: the file is valid only when this is its last record

Per-recipient status in place: a delivery agent marks a recipient done by overwriting the
R type byte with D (one byte, atomic), as Postfix does; `RecordDecoder` reports both.

Invariants: the decoder is sans-IO (fed bytes in any split; emits (offset, type, payload));
a length over MAX_RECORD or an unknown type is a `RecordError`, never another exception.
Security: payload sizes are bounded before anything is buffered.
"""

from __future__ import annotations

SIZE = ord("C")
TIME = ord("T")
FULLNAME = ord("F")
ATTR = ord("A")
SENDER = ord("S")
ORIG_RCPT = ord("O")
DSN_ORCPT = ord("o")
DSN_NOTIFY = ord("n")
RCPT = ord("R")
DONE = ord("D")
MESSAGE = ord("M")
CONTENT = ord("B")
XTRA = ord("X")
POINTER = ord("p")
WARN = ord("W")
END = ord("E")

KNOWN_TYPES = frozenset((SIZE, TIME, FULLNAME, ATTR, SENDER, ORIG_RCPT, DSN_ORCPT, DSN_NOTIFY,
                         RCPT, DONE, MESSAGE, CONTENT, XTRA, WARN, END, POINTER))
MAX_CHUNK = 1 << 16
MAX_RECORD = 1 << 20
SIZE_FORMAT = "%15d %15d %15d %15d %15d %15d"
SIZE_PAYLOAD_LEN = len(SIZE_FORMAT % (0, 0, 0, 0, 0, 0))

# DSN NOTIFY mask (RFC 3461 section 4.1), stored as a decimal number like Postfix's.
NOTIFY_BITS = {"NEVER": 1, "SUCCESS": 2, "FAILURE": 4, "DELAY": 8}


class RecordError(ValueError):
    """The bytes are not a well-formed queue file."""


def varint(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def record(rtype: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 0x80:  # the common case: a one-byte length
        return bytes((rtype, length)) + payload
    return bytes((rtype,)) + varint(length) + payload


def record_header(rtype: int, length: int) -> bytes:
    """The bytes before a payload of `length`: record(t, p) == record_header(t, len(p)) + p."""
    if length < 0x80:
        return bytes((rtype, length))
    return bytes((rtype,)) + varint(length)


def content_records(data: bytes | memoryview) -> bytes:
    """`data` as B records (one per MAX_CHUNK bytes)."""
    if len(data) <= MAX_CHUNK:
        return record(CONTENT, bytes(data))
    view = memoryview(data)
    return b"".join(record(CONTENT, bytes(view[i:i + MAX_CHUNK])) for i in range(0, len(view), MAX_CHUNK))


def size_payload(content_size: int, data_offset: int, nrcpt: int, flags: int = 0, smtputf8: int = 0) -> bytes:
    return (SIZE_FORMAT % (content_size, data_offset, nrcpt, flags, content_size, smtputf8)).encode()


def parse_size_payload(payload: bytes) -> tuple[int, ...]:
    """(content size, data offset, recipient count, flags, content length, smtputf8)."""
    fields = payload.split()
    if len(payload) != SIZE_PAYLOAD_LEN or len(fields) != 6 or not all(f.isdigit() for f in fields):
        raise RecordError("bad size record")
    return tuple(int(f) for f in fields)  # type: ignore[return-value]


POINTER_FORMAT = b"%15d"


def notify_mask(notify: str | None) -> int:
    if not notify:
        return 0
    mask = 0
    for word in notify.upper().split(","):
        if word.strip() not in NOTIFY_BITS:
            raise ValueError(f"bad NOTIFY keyword: {word}")
        mask |= NOTIFY_BITS[word.strip()]
    return mask


def notify_words(mask: int) -> str:
    return ",".join(name for name, bit in NOTIFY_BITS.items() if mask & bit)


class RecordDecoder:
    """Sans-IO record splitter: `feed(bytes)` returns completed (offset, type, payload)."""

    def __init__(self, max_record: int = MAX_RECORD, start_offset: int = 0) -> None:
        self._buffer = bytearray()    # an incomplete record, kept for the next feed
        self._needed = 0              # its whole size once its length is known, else 0
        self._offset = start_offset   # file offset of _buffer[0]
        self.max_record = max_record

    def feed(self, data: bytes) -> list[tuple[int, int, bytes]]:
        pending = self._buffer
        if pending:
            pending += data
            if len(pending) < self._needed:   # that record is still incomplete: no parse
                return []
            buf = bytes(pending)
        else:
            buf = bytes(data)
        out = []
        append = out.append
        end = len(buf)
        base = self._offset
        limit = self.max_record
        known = KNOWN_TYPES
        pos = 0
        needed = 0
        while pos < end:
            rtype = buf[pos]
            if rtype not in known:
                raise RecordError(f"unknown record type {rtype!r} at offset {base + pos}")
            cursor = pos + 1
            if cursor >= end:
                break                      # length not complete yet
            byte = buf[cursor]
            cursor += 1
            if byte < 0x80:                # the usual one-byte length
                length = byte
                if length > limit:
                    raise RecordError(f"record too long at offset {base + pos}")
            else:
                length = byte & 0x7F
                shift = 7
                complete = False
                while cursor < end:
                    byte = buf[cursor]
                    cursor += 1
                    length |= (byte & 0x7F) << shift
                    shift += 7
                    if length > limit or shift > 35:
                        raise RecordError(f"record too long at offset {base + pos}")
                    if not byte & 0x80:
                        complete = True
                        break
                if not complete:
                    break                  # length not complete yet
            if cursor + length > end:
                needed = cursor + length - pos
                break                      # payload not complete yet
            append((base + pos, rtype, buf[cursor:cursor + length]))
            pos = cursor + length
        self._buffer = bytearray(buf[pos:]) if pos < end else bytearray()
        self._needed = needed
        self._offset = base + pos
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete record still buffered (0 at a clean end)."""
        return len(self._buffer)
