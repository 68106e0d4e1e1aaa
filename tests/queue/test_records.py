"""The record decoder and the queue file parser: byte at a time, and fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.queue import records as rec
from roost.queue.reader import QueueFileError, parse_bytes


def build(recipients=("b@example.net",), content=b"Subject: x\n\nbody\n", end=True) -> bytes:
    out = bytearray(rec.record(rec.SIZE, rec.size_payload(0, 0, 0)))
    out += rec.record(rec.TIME, b"1795471962 5")
    out += rec.record(rec.ATTR, b"rewrite_context=local")
    out += rec.record(rec.SENDER, b"a@example.org")
    for recipient in recipients:
        out += rec.record(rec.ORIG_RCPT, recipient.encode())
        out += rec.record(rec.RCPT, recipient.encode())
    data_offset = len(out)
    out += rec.record(rec.MESSAGE, b"")
    out += rec.content_records(content)
    out += rec.record(rec.XTRA, b"")
    if end:
        out += rec.record(rec.END, b"")
    size = rec.size_payload(len(content), data_offset, len(recipients))
    out[2:2 + len(size)] = size
    return bytes(out)


def test_varint_round_trip():
    decoder = rec.RecordDecoder()
    for length in (0, 1, 127, 128, 300, 70000):
        data = rec.record(rec.CONTENT, b"x" * length)
        assert decoder.feed(data)[0][2] == b"x" * length


def test_parse_valid_file():
    qf = parse_bytes(build(recipients=("b@example.net", "c@example.net")))
    assert qf.sender == "a@example.org"
    assert [r.address for r in qf.recipients] == ["b@example.net", "c@example.net"]
    assert qf.recipients[0].original == "b@example.net"
    assert qf.attributes == {"rewrite_context": "local"}
    assert qf.arrival == pytest.approx(1795471962.000005)


def test_byte_at_a_time_gives_the_same_records():
    data = build(content=b"Subject: x\n\n" + b"y" * 200000)
    whole = rec.RecordDecoder().feed(data)
    decoder = rec.RecordDecoder()
    pieces = []
    for index in range(len(data)):
        pieces += decoder.feed(data[index:index + 1])
    assert pieces == whole and decoder.pending == 0


def test_every_truncation_is_invalid():
    data = build()
    for cut in range(len(data)):
        with pytest.raises(QueueFileError):
            parse_bytes(data[:cut])


def test_missing_end_record_is_invalid():
    with pytest.raises(QueueFileError, match="end record"):
        parse_bytes(build(end=False))


def test_unknown_type_and_huge_length_are_errors():
    with pytest.raises(QueueFileError):
        parse_bytes(b"\x01\x00")
    with pytest.raises(QueueFileError):
        parse_bytes(b"C\xff\xff\xff\xff\x7f")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_is_a_clean_error(data):
    try:
        parse_bytes(data)
    except QueueFileError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.binary(min_size=1, max_size=8))
def test_corrupted_valid_file_is_a_clean_error_or_valid(position, junk):
    data = bytearray(build(content=b"Subject: x\n\n" + b"z" * 3000))
    position %= len(data)
    data[position:position + len(junk)] = junk
    try:
        parse_bytes(bytes(data))
    except QueueFileError:
        pass


def test_notify_mask():
    assert rec.notify_mask("SUCCESS,FAILURE") == 6
    assert rec.notify_words(6) == "SUCCESS,FAILURE"
    with pytest.raises(ValueError):
        rec.notify_mask("SOMETIMES")
