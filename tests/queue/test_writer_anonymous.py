"""QueueFileWriter(anonymous=True): the O_TMPFILE queue file cleanup writes (no name until it
is complete, then linked under its queue ID with mode 0700), its fallback to the named scheme,
and the size accounting's fast path for short lines."""

from __future__ import annotations

import os
import random
import stat

import pytest

from roost.queue import writer as writer_module
from roost.queue.layout import QueueLayout
from roost.queue.reader import read_content, read_envelope
from roost.queue.writer import MODE_COMPLETE, DirectorySync, QueueFileWriter

from tests.queue.test_writer import postfix_message_size, record_fsyncs


@pytest.fixture
def layout(tmp_path):
    layout = QueueLayout(str(tmp_path / "queue"))
    layout.ensure()
    return layout


def anonymous_writer(layout, **kwargs) -> QueueFileWriter:
    writer = QueueFileWriter(layout, anonymous=True, dirsync=DirectorySync(), **kwargs)
    assert not writer._linked, "this file system should take O_TMPFILE files (ext4, tmpfs)"
    return writer


def fill(writer: QueueFileWriter, content: bytes = b"Subject: x\n\nbody\n") -> None:
    writer.sender("a@example.org")
    writer.recipient("b@example.net")
    writer.start_content()
    writer.content(content)


def test_no_name_until_complete_then_linked_with_mode_0700(layout):
    writer = anonymous_writer(layout)
    fill(writer)
    assert os.listdir(layout.queue_dir("incoming")) == []  # nothing a reader could find
    writer.finish()
    assert os.listdir(layout.queue_dir("incoming")) == [writer.queue_id]
    info = os.stat(writer.path)
    assert stat.S_IMODE(info.st_mode) == MODE_COMPLETE
    assert writer.queue_id.endswith(f"{info.st_ino:X}")  # the ID still comes from the inode
    qf = read_envelope(writer.path)
    assert qf.complete and [r.address for r in qf.recipients] == ["b@example.net"]
    assert read_content(qf) == b"Subject: x\n\nbody\n"


def test_held_message_is_linked_straight_into_hold(layout):
    writer = anonymous_writer(layout)
    fill(writer)
    directories = writer.prepare_commit("hold")
    assert directories == (layout.queue_dir("hold"),)  # one directory to fsync, not two
    writer.commit(directories)
    assert os.listdir(layout.queue_dir("incoming")) == []
    assert os.listdir(layout.queue_dir("hold")) == [writer.queue_id]
    assert read_envelope(writer.path).complete


def test_fsync_order_file_then_its_one_directory(layout, monkeypatch):
    writer = anonymous_writer(layout)
    fill(writer)
    calls = record_fsyncs(monkeypatch)
    writer.finish()
    assert calls == [os.stat(writer.path).st_ino, os.stat(layout.queue_dir("incoming")).st_ino]


def test_abort_leaves_nothing_behind(layout):
    writer = anonymous_writer(layout)
    fill(writer)
    writer.abort()
    writer.abort()
    assert os.listdir(layout.queue_dir("incoming")) == []


def test_failed_commit_removes_the_linked_file(layout, monkeypatch):
    writer = anonymous_writer(layout)
    fill(writer)
    directories = writer.prepare_commit()
    assert os.path.exists(writer.path)

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        writer.commit(directories)
    writer.abort()
    assert os.listdir(layout.queue_dir("incoming")) == []


def test_link_never_replaces_an_existing_name(layout):
    writer = anonymous_writer(layout)
    fill(writer)
    squatter = os.path.join(layout.queue_dir("incoming"), writer.queue_id)
    with open(squatter, "wb") as handle:
        handle.write(b"someone else's")
    with pytest.raises(FileExistsError):
        writer.prepare_commit()
    with open(squatter, "rb") as handle:
        assert handle.read() == b"someone else's"  # untouched: a rename would have replaced it
    assert os.listdir(layout.queue_dir("incoming")) == [writer.queue_id]


def test_falls_back_to_the_named_scheme_where_o_tmpfile_fails(layout, monkeypatch):
    monkeypatch.setattr(writer_module, "_ANONYMOUS", {})
    real_open = os.open

    def no_tmpfile(path, flags, *args, **kwargs):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(95, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)
    monkeypatch.setattr(os, "open", no_tmpfile)
    writer = QueueFileWriter(layout, anonymous=True, dirsync=DirectorySync())
    assert writer._linked
    assert os.listdir(layout.queue_dir("incoming")) == [writer.queue_id]  # named at once, 0600
    assert stat.S_IMODE(os.stat(writer.path).st_mode) == 0o600
    fill(writer)
    writer.finish()
    assert stat.S_IMODE(os.stat(writer.path).st_mode) == MODE_COMPLETE
    assert read_envelope(writer.path).complete


def test_probe_is_asked_once_per_process_and_directory(layout, monkeypatch):
    monkeypatch.setattr(writer_module, "_ANONYMOUS", {})
    anonymous_writer(layout).abort()
    anonymous_writer(layout).abort()
    assert list(writer_module._ANONYMOUS.values()) == [True]
    assert os.listdir(layout.queue_dir("incoming")) == []  # the probe file is gone too


@pytest.mark.parametrize("seed", range(4))
def test_size_accounting_fast_path_agrees_with_postfix_for_any_split(layout, seed):
    """Short lines take the one-search path, long ones (first, middle, last, partial) the
    line-by-line one: the size record is the same either way."""
    rng = random.Random(seed)
    for _ in range(40):
        lengths = [rng.choice([0, 1, 17, 126, 127, 128, 129, 300, 2047, 2048, 2049, 5000])
                   if rng.random() < 0.3 else rng.randrange(0, 40) for _ in range(rng.randrange(1, 60))]
        content = b"\n".join(b"z" * n for n in lengths) + rng.choice([b"", b"\n"])
        writer = QueueFileWriter(layout)
        writer.recipient("b@example.net")
        writer.start_content()
        position = 0
        while position < len(content):
            step = rng.choice([1, 2, 127, 128, 129, rng.randrange(1, 4000)])
            writer.content(content[position:position + step])
            position += step
        writer.finish()
        assert writer.content_size == postfix_message_size(content), lengths
        os.unlink(writer.path)
