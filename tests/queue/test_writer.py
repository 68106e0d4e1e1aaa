"""The queue file writer: naming, modes, durability order, abort, in-place done marks."""

from __future__ import annotations

import os
import stat

import pytest

from roost.queue import records as rec
from roost.queue.layout import QueueLayout
from roost.queue.reader import QueueFileError, iter_content, mark_done, read_content, read_envelope
from roost.queue.writer import QueueFileWriter


@pytest.fixture
def layout(tmp_path):
    layout = QueueLayout(str(tmp_path / "queue"))
    layout.ensure()
    return layout


def write_one(layout, content=b"Subject: x\n\nbody\n", **kwargs) -> QueueFileWriter:
    writer = QueueFileWriter(layout, **kwargs)
    writer.sender("a@example.org")
    writer.recipient("b@example.net", original="B@example.net", orcpt="rfc822;B@example.net", notify=6)
    writer.start_content()
    writer.content(content)
    writer.end_content()
    writer.recipient("bcc@example.net")
    writer.finish()
    return writer


@pytest.mark.parametrize("long_ids", [False, True])
def test_name_is_a_queue_id_from_the_inode(layout, long_ids):
    writer = write_one(layout, long_ids=long_ids)
    assert os.path.basename(writer.path) == writer.queue_id
    inode = os.stat(writer.path).st_ino
    if not long_ids:
        assert writer.queue_id.endswith(f"{inode:X}")
    assert os.listdir(layout.queue_dir("incoming")) == [writer.queue_id]


def test_modes_0600_while_writing_0700_when_complete(layout):
    writer = QueueFileWriter(layout)
    assert stat.S_IMODE(os.stat(writer.path).st_mode) == 0o600
    with pytest.raises(QueueFileError):
        read_envelope(writer.path)  # no end record yet
    writer.start_content()
    writer.recipient("b@example.net")
    writer.finish()
    assert stat.S_IMODE(os.stat(writer.path).st_mode) == 0o700
    assert read_envelope(writer.path).complete


def test_round_trip_and_size_record(layout):
    content = b"Subject: big\n\n" + bytes(range(256)) * 1000
    writer = write_one(layout, content)
    qf = read_envelope(writer.path)
    assert qf.content_size == postfix_message_size(content)
    assert qf.sender == "a@example.org"
    first, bcc = qf.recipients
    assert (first.address, first.original, first.orcpt, first.notify, first.extracted) == \
        ("b@example.net", "B@example.net", "rfc822;B@example.net", 6, False)
    assert bcc.extracted and bcc.address == "bcc@example.net"
    assert read_content(qf) == content
    assert all(len(chunk) <= rec.MAX_CHUNK for chunk in iter_content(qf))


def test_mark_done_in_place(layout):
    writer = write_one(layout)
    qf = read_envelope(writer.path)
    size_before = os.path.getsize(writer.path)
    mark_done(writer.path, qf.recipients[1].offset)
    again = read_envelope(writer.path)
    assert [r.done for r in again.recipients] == [False, True]
    assert [r.address for r in again.pending_recipients] == ["b@example.net"]
    assert os.path.getsize(writer.path) == size_before
    with pytest.raises(QueueFileError):
        mark_done(writer.path, 0)


def test_abort_leaves_no_file_and_is_idempotent(layout):
    writer = QueueFileWriter(layout)
    writer.start_content()
    writer.content(b"x" * 500000)
    writer.abort()
    writer.abort()
    assert os.listdir(layout.queue_dir("incoming")) == []
    finished = write_one(layout)
    finished.abort()  # after finish: nothing happens
    assert os.path.exists(finished.path)


def test_finish_into_hold(layout):
    writer = QueueFileWriter(layout)
    writer.recipient("b@example.net")
    writer.finish("hold")
    assert os.path.dirname(writer.path) == layout.queue_dir("hold")
    assert os.listdir(layout.queue_dir("incoming")) == []
    assert read_envelope(writer.path).complete


def record_fsyncs(monkeypatch) -> list[int]:
    """The inode numbers os.fsync is called on, in order, from now on."""
    calls: list[int] = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        calls.append(os.fstat(fd).st_ino)
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    return calls


def test_fsync_order_file_then_directory(layout, monkeypatch):
    calls = record_fsyncs(monkeypatch)
    writer = QueueFileWriter(layout)
    writer.recipient("b@example.net")
    writer.start_content()
    writer.content(b"x" * 1000)
    writer.finish()
    assert calls == [os.stat(writer.path).st_ino, os.stat(layout.queue_dir("incoming")).st_ino]


def test_one_write_syscall_for_a_small_message(layout, monkeypatch):
    writes = []
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(len(data)) or real_write(fd, data))
    writer = QueueFileWriter(layout)
    writer.recipient("b@example.net")
    writer.start_content()
    for _ in range(100):
        writer.content(b"line of text\n")
    writer.finish()
    assert len(writes) == 1


def postfix_message_size(content: bytes) -> int:
    """Postfix's message_size, computed the slow obvious way: one record per line (split
    every 2048 bytes), each costing type byte + length varint + text."""
    from roost.queue.records import varint
    lines = content.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    total = 0
    for line in lines:
        while len(line) >= 2048:
            total += 1 + len(varint(2048)) + 2048
            line = line[2048:]
        total += 1 + len(varint(len(line))) + len(line)
    return total


def test_message_size_matches_postfix_accounting_for_any_split(layout):
    import random
    rng = random.Random(7)
    for _ in range(30):
        lines = [b"y" * rng.choice([0, 5, 127, 128, 129, 2047, 2048, 2049, 4096, 5000]) for _ in range(rng.randrange(1, 6))]
        content = b"\n".join(lines) + rng.choice([b"", b"\n"])
        writer = QueueFileWriter(layout)
        writer.recipient("b@example.net")
        writer.start_content()
        position = 0
        while position < len(content):
            step = rng.randrange(1, 3000)
            writer.content(content[position:position + step])
            position += step
        writer.finish()
        assert writer.content_size == postfix_message_size(content), lines


def test_stale_temp_name_from_a_crashed_process_is_skipped(layout):
    from roost.queue import writer as writer_module
    upcoming = next(writer_module._counter) + 1
    stale = os.path.join(layout.queue_dir("incoming"), f"t.{os.getpid()}.{upcoming}")
    open(stale, "w").close()
    writer = QueueFileWriter(layout)
    writer.recipient("b@example.net")
    writer.finish()
    assert read_envelope(writer.path).complete and os.path.exists(stale)


def test_envelope_reader_skips_the_content(layout):
    """A damaged content record is not even read by read_envelope (it seeks past the
    content) while reading the content itself notices it."""
    writer = write_one(layout, b"Subject: big\n\n" + b"0123456789\n" * 200000)
    data = bytearray(open(writer.path, "rb").read())
    content_records = [offset for offset, rtype, _ in rec.RecordDecoder().feed(bytes(data)) if rtype == rec.CONTENT]
    data[content_records[len(content_records) // 2]] = 0x01  # an unknown record type mid-content
    open(writer.path, "wb").write(bytes(data))
    qf = read_envelope(writer.path)
    assert [r.address for r in qf.recipients] == ["b@example.net", "bcc@example.net"]
    with pytest.raises(QueueFileError):
        read_content(qf)


@pytest.mark.parametrize("position", ["pointer", "middle"])
def test_damaged_pointer_is_detected(layout, position):
    writer = write_one(layout, b"Subject: x\n\n" + b"y" * 50000)
    data = bytearray(open(writer.path, "rb").read())
    start = data.index(b"p\x0f") + 2
    bad = 30000 if position == "middle" else len(data) + 100
    data[start:start + 15] = b"%15d" % bad
    open(writer.path, "wb").write(bytes(data))
    with pytest.raises(QueueFileError):
        read_envelope(writer.path)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=3000), st.binary(min_size=1, max_size=16), st.booleans())
def test_corrupt_files_on_disk_are_clean_errors(layout, position, junk, truncate):
    writer = write_one(layout, b"Subject: x\n\n" + b"q" * 2000)
    data = bytearray(open(writer.path, "rb").read())
    position %= len(data)
    if truncate:
        del data[position:]
    else:
        data[position:position + len(junk)] = junk
    open(writer.path, "wb").write(bytes(data))
    try:
        qf = read_envelope(writer.path)
        read_content(qf)
    except QueueFileError:
        pass
    os.unlink(writer.path)
