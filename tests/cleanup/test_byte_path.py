"""The byte path's shortcuts store exactly what the general path stores: the same queue
file, record for record (queue ID and arrival time aside), for
`write(data, crlf_only=True, lf_after_cr=True)` (line count taken from the CR deletion)
against `write(data)`, on DATA content cut anywhere; and QueueFileWriter.content appending a
B record in place equals rec.content_records."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.smtp.data import DataDecoder
from roost.queue import records as rec
from roost.queue.records import RecordDecoder
from tests.cleanup.test_service import client, make_service

_SERVICE = {}


def _service(tmp_path_factory):
    if "service" not in _SERVICE:
        _SERVICE["service"] = make_service(tmp_path_factory.mktemp("bytepath"))[0]
    return _SERVICE["service"]


# the Received header's date: two stores a second apart differ there and nowhere else
RECEIVED_DATE = re.compile(rb"; [A-Z][a-z]{2}, [ \d]?\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}(?: \([^)]*\))?")


def queue_file_records(service, queue_id: str) -> list[tuple[int, bytes]]:
    """The file's records without the arrival time (nor the data offset, which counts its
    digits), the queue ID replaced by a constant and the Received date by DATE."""
    _queue, path = service.layout.find(queue_id)
    with open(path, "rb") as handle:
        data = handle.read()
    out = []
    for _offset, rtype, payload in RecordDecoder().feed(data):
        if rtype == rec.TIME:
            continue
        if rtype == rec.POINTER:  # a file offset: it counts the arrival time's digits too
            payload = b"OFFSET"
        if rtype == rec.SIZE:  # the data offset counts the arrival time's digits: left out
            fields = payload.split()
            payload = b" ".join(fields[:1] + fields[2:])
        out.append((rtype, RECEIVED_DATE.sub(b"; DATE", payload.replace(queue_id.encode(), b"QUEUEID"))))
    return out


def store(service, pieces, hints: bool):
    msg = service.open(origin="smtpd", client=client(), sender="a@example.net", envelope={})
    msg.add_recipient("b@example.test")
    for data, crlf_only in pieces:
        if hints and crlf_only:
            msg.write(data, crlf_only=True, lf_after_cr=True)
        else:
            msg.write(data)
    result = msg.finish()
    assert result.reply.code == 250, result
    return result, queue_file_records(service, result.queue_id)


def decoded_pieces(raw: bytes, cuts) -> list[tuple[bytes, bool]]:
    """What smtpd hands cleanup: the DATA decoder's pieces with their crlf_only flags."""
    decoder = DataDecoder()
    pieces = []
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    for start, end in zip([0, *points], [*points, len(raw)]):
        content, leftover = decoder.feed(raw[start:end])
        if content:
            # the decoder's promise the hint relies on: every LF follows a CR
            assert content.count(b"\n") == content.count(b"\r\n")
            pieces.append((content, decoder.crlf_only))
        if leftover is not None:
            break
    return pieces


TOKENS = [b"\r\n", b"\n", b"\r", b".", b"a", b"Subject: x", b"X-Y: z", b" folded", b"body line", b":",
          b"x" * 130, b"y" * 2100, b"\r\n\r\n", b"\r\r\n"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40), st.lists(st.integers(0, 3000), max_size=6))
def test_hinted_writes_store_the_same_file(tmp_path_factory, tokens, cuts):
    service = _service(tmp_path_factory)
    raw = b"".join(tokens) + b"\r\n.\r\n"
    pieces = decoded_pieces(raw, cuts)
    for _attempt in range(10):
        plain, hinted = store(service, pieces, False), store(service, pieces, True)
        # the sizes and offsets of the C record count the queue ID's characters, and the ID
        # ends with the inode number: compare two files whose IDs are equally long
        if len(plain[0].queue_id) == len(hinted[0].queue_id):
            break
    assert plain[1] == hinted[1]
    assert plain[0].size == hinted[0].size


def test_hinted_writes_large_messages(tmp_path):
    service, _ = make_service(tmp_path)
    rng = random.Random(5)
    line = b"La de da de da 1.\r\n"
    for size in (1024, 70000, 140000):
        body = bytearray()
        while len(body) < size:
            body += rng.choice([line, line, line, b"z" * rng.randrange(100, 3000) + b"\r\n", b"..x\r\n"])
        raw = b"Subject: big\r\nFrom: a@b\r\n\r\n" + bytes(body) + b".\r\n"
        for cuts in ([], [65536], [7, 65536, 65537, 131072], sorted(rng.sample(range(1, len(raw)), 5))):
            pieces = decoded_pieces(raw, cuts)
            plain, hinted = store(service, pieces, False), store(service, pieces, True)
            assert plain[1] == hinted[1], (size, cuts)


def test_record_header_plus_payload_is_a_record():
    for length in (0, 1, 0x7F, 0x80, 0x81, 0x3FFF, 0x4000, 0x4001, rec.MAX_CHUNK, 0x1FFFFF, 0x200000):
        payload = b"p" * length
        for rtype in (rec.CONTENT, rec.ATTR, rec.SENDER, rec.RCPT):
            assert rec.record_header(rtype, length) + payload == rec.record(rtype, payload)


def test_writer_content_appends_what_content_records_gives(tmp_path):
    from roost.queue.layout import QueueLayout
    from roost.queue.writer import QueueFileWriter
    layout = QueueLayout(str(tmp_path / "q"))
    layout.ensure()
    rng = random.Random(3)
    for sizes in ([1], [127, 128, 129], [rec.MAX_CHUNK], [rec.MAX_CHUNK + 1], [5, 200000, 3], [70000, 70000]):
        writer = QueueFileWriter(layout)
        writer.start_content()
        start = len(writer._buffer) + writer._offset
        expected = b""
        for size in sizes:
            data = bytes(rng.randrange(256) for _ in range(size))
            writer.content(data)
            expected += rec.content_records(data)
        writer._flush()
        with open(writer.path, "rb") as handle:
            assert handle.read()[start:] == expected
        writer.abort()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\n", b"a", b"b" * 127, b"c" * 128, b"d" * 2049, b"\n\n"]), max_size=30),
       st.lists(st.integers(0, 5000), max_size=4))
def test_newline_hint_gives_the_counted_size(tmp_path_factory, tokens, cuts):
    from roost.queue.layout import QueueLayout
    from roost.queue.writer import QueueFileWriter
    layout = QueueLayout(str(tmp_path_factory.mktemp("hint")))
    layout.ensure()
    data = b"".join(tokens)
    points = sorted({c for c in cuts if 0 < c < len(data)})
    sizes = []
    for hinted in (False, True):
        writer = QueueFileWriter(layout)
        writer.start_content()
        for start, end in zip([0, *points], [*points, len(data)]):
            piece = data[start:end]
            writer.content(piece, piece.count(b"\n") if hinted else None)
        writer.end_content()
        sizes.append(writer.content_size)
        writer.abort()
    assert sizes[0] == sizes[1]
