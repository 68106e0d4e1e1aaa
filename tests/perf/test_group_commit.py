"""Group commit of queue-directory fsyncs (roost.queue.writer.DirectorySync): concurrent
finishers share directory fsyncs, and none returns before an fsync that started after its
own call has completed; a failed fsync is never taken as covering anyone."""

from __future__ import annotations

import os
import threading
import time

import pytest

from roost.queue import writer as writer_module
from roost.queue.layout import QueueLayout
from roost.queue.reader import read_content, read_envelope
from roost.queue.writer import DirectorySync, QueueFileWriter


class FsyncRecorder:
    """Stands in for os.fsync: records when each fsync of a directory started and ended."""

    def __init__(self, real, directory_fds: set[int], delay: float = 0.01, fail_first: int = 0):
        self.real = real
        self.directory_fds = directory_fds
        self.delay = delay
        self.fail_left = fail_first
        self.lock = threading.Lock()
        self.spans: list[tuple[float, float]] = []

    def __call__(self, fd: int) -> None:
        if fd not in self.directory_fds:
            return self.real(fd)
        started = time.monotonic()
        time.sleep(self.delay)  # a slow disk: others arrive while this one runs
        with self.lock:
            if self.fail_left:
                self.fail_left -= 1
                raise OSError(5, "Input/output error")
        self.real(fd)
        with self.lock:
            self.spans.append((started, time.monotonic()))


def directory_fds_of(dirsync: DirectorySync) -> set[int]:
    return {commit.fd for commit in dirsync._commits.values()}


def run_concurrently(count: int, target) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        called = time.monotonic()
        try:
            target(index)
            results[index] = ("ok", called, time.monotonic())
        except OSError as exc:
            results[index] = ("error", called, exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_directory_fsyncs_are_shared_and_each_covers_its_caller(tmp_path, monkeypatch):
    dirsync = DirectorySync()
    dirsync.fsync(str(tmp_path))  # opens the descriptor
    recorder = FsyncRecorder(os.fsync, directory_fds_of(dirsync))
    monkeypatch.setattr(writer_module.os, "fsync", recorder)
    results = run_concurrently(20, lambda index: dirsync.fsync(str(tmp_path)))
    dirsync.close()
    assert all(result[0] == "ok" for result in results)
    assert 1 <= len(recorder.spans) < 20  # shared: fewer fsyncs than callers
    for _, called, returned in results:  # durable: an fsync begun after the call ended before the return
        assert any(called <= start and end <= returned for start, end in recorder.spans)


def test_failed_directory_fsync_covers_nobody(tmp_path, monkeypatch):
    dirsync = DirectorySync()
    dirsync.fsync(str(tmp_path))
    recorder = FsyncRecorder(os.fsync, directory_fds_of(dirsync), fail_first=1)
    monkeypatch.setattr(writer_module.os, "fsync", recorder)
    results = run_concurrently(8, lambda index: dirsync.fsync(str(tmp_path)))
    dirsync.close()
    errors = [result for result in results if result[0] == "error"]
    assert len(errors) == 1  # the caller whose fsync failed sees the failure ...
    for result in results:  # ... and everybody else waited for a later fsync that worked
        if result[0] == "ok":
            assert any(result[1] <= start and end <= result[2] for start, end in recorder.spans)


def test_concurrent_writers_finish_complete_readable_files(tmp_path):
    layout = QueueLayout(str(tmp_path / "queue"))
    layout.ensure()
    dirsync = DirectorySync()
    ids: list[str] = [""] * 16

    def one(index: int) -> None:
        writer = QueueFileWriter(layout, dirsync=dirsync)
        writer.sender("a@example.org")
        writer.recipient(f"r{index}@example.net")
        writer.start_content()
        writer.content(f"Subject: {index}\n\nbody {index}\n".encode())
        writer.finish()
        ids[index] = writer.queue_id

    results = run_concurrently(16, one)
    dirsync.close()
    assert all(result[0] == "ok" for result in results)
    for index, queue_id in enumerate(ids):
        _, path = layout.find(queue_id)
        assert os.stat(path).st_mode & 0o777 == 0o700
        assert read_content(read_envelope(path)) == f"Subject: {index}\n\nbody {index}\n".encode()


@pytest.mark.parametrize("callers", [1, 3])
def test_a_lone_caller_always_runs_its_own_fsync(tmp_path, monkeypatch, callers):
    dirsync = DirectorySync()
    dirsync.fsync(str(tmp_path))
    recorder = FsyncRecorder(os.fsync, directory_fds_of(dirsync), delay=0)
    monkeypatch.setattr(writer_module.os, "fsync", recorder)
    for _ in range(callers):  # one after the other: nothing to share
        dirsync.fsync(str(tmp_path))
    dirsync.close()
    assert len(recorder.spans) == callers
