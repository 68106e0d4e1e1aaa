"""roost.queue.committer: the group-commit thread smtpd finishes queue files through.

The durability contract (DESIGN.md §3): a commit returns only after the file's fsync and then
a directory fsync that started after it; batches share directory fsyncs; a failed fsync fails
its jobs and removes their files before anyone hears of it; a cancelled waiter does not stop
the commit it started."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from roost.cleanup import ClientInfo
from roost.queue.committer import Committer
from roost.queue.layout import QueueLayout
from roost.queue.reader import read_envelope
from roost.queue.writer import DirectorySync, QueueFileWriter
from tests.cleanup.test_service import make_service


class FsyncLog:
    """Stands in for os.fsync in the writer and DirectorySync: an ordered record of which
    descriptor (file or directory) was fsynced, and when each call started and ended."""

    def __init__(self, real, delay: float = 0.0, fail_fds: set | None = None):
        self.real = real
        self.delay = delay
        self.fail_fds = fail_fds or set()
        self.lock = threading.Lock()
        self.events: list[tuple[str, int, float]] = []

    def __call__(self, fd: int) -> None:
        with self.lock:
            self.events.append(("start", fd, time.monotonic()))
        if self.delay:
            time.sleep(self.delay)
        if fd in self.fail_fds:
            raise OSError(5, "Input/output error")
        self.real(fd)
        with self.lock:
            self.events.append(("end", fd, time.monotonic()))


def _writer(layout: QueueLayout, dirsync: DirectorySync) -> QueueFileWriter:
    writer = QueueFileWriter(layout, dirsync=dirsync)
    writer.sender("a@example.test")
    writer.recipient("b@example.test")
    writer.start_content()
    writer.content(b"Subject: x\n\nbody\n")
    return writer


def _layout(tmp_path) -> QueueLayout:
    layout = QueueLayout(str(tmp_path / "spool"))
    layout.ensure()
    return layout


def test_commit_returns_after_file_then_directory_fsync(tmp_path, monkeypatch):
    layout = _layout(tmp_path)
    log = FsyncLog(os.fsync, delay=0.005)
    monkeypatch.setattr("roost.queue.writer.os.fsync", log)
    committer = Committer(DirectorySync())
    writers = [_writer(layout, committer.dirsync) for _ in range(8)]
    fds = {w.queue_id: w._fd for w in writers}
    resolved: dict[str, float] = {}

    async def main() -> None:
        async def one(writer):
            directories = writer.prepare_commit()
            await committer.commit(writer, directories)
            resolved[writer.queue_id] = time.monotonic()
        await asyncio.gather(*(one(w) for w in writers))

    asyncio.run(main())
    committer.close()
    directory_fd = next(iter(committer.dirsync._commits.values())).fd
    dir_ends = [t for kind, fd, t in log.events if kind == "end" and fd == directory_fd]
    dir_starts = [t for kind, fd, t in log.events if kind == "start" and fd == directory_fd]
    for writer in writers:
        assert writer.finished and writer._fd is None
        file_end = next(t for kind, fd, t in log.events if kind == "end" and fd == fds[writer.queue_id])
        done = resolved[writer.queue_id]
        assert file_end <= done
        # some directory fsync started after this file was durable and ended before the reply
        assert any(start >= file_end and end <= done for start, end in zip(dir_starts, dir_ends))
        envelope = read_envelope(writer.path)
        assert envelope.recipients and os.stat(writer.path).st_mode & 0o777 == 0o700
    # 8 messages arriving together need fewer directory fsyncs than messages
    assert len(dir_starts) < len(writers)
    assert committer.batches < len(writers)


def test_failed_file_fsync_fails_only_that_job_and_removes_its_file(tmp_path, monkeypatch):
    layout = _layout(tmp_path)
    committer = Committer(DirectorySync())
    good, bad = _writer(layout, committer.dirsync), _writer(layout, committer.dirsync)
    log = FsyncLog(os.fsync, fail_fds={bad._fd})
    monkeypatch.setattr("roost.queue.writer.os.fsync", log)

    async def main():
        async def one(writer):
            await committer.commit(writer, writer.prepare_commit())
        return await asyncio.gather(one(good), one(bad), return_exceptions=True)

    outcomes = asyncio.run(main())
    committer.close()
    assert outcomes[0] is None
    assert isinstance(outcomes[1], OSError)
    assert os.path.exists(good.path) and good.finished
    assert not os.path.exists(bad.path) and bad.aborted


def test_failed_directory_fsync_fails_every_job_of_the_directory(tmp_path, monkeypatch):
    layout = _layout(tmp_path)
    dirsync = DirectorySync()
    dirsync.fsync(layout.queue_dir("incoming"))  # opens the directory descriptor
    directory_fd = next(iter(dirsync._commits.values())).fd
    monkeypatch.setattr("roost.queue.writer.os.fsync", FsyncLog(os.fsync, fail_fds={directory_fd}))
    committer = Committer(dirsync)
    writers = [_writer(layout, dirsync) for _ in range(3)]

    async def main():
        async def one(writer):
            await committer.commit(writer, writer.prepare_commit())
        return await asyncio.gather(*(one(w) for w in writers), return_exceptions=True)

    outcomes = asyncio.run(main())
    committer.close()
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    assert not any(os.path.exists(w.path) for w in writers)


def test_cancelled_waiter_does_not_interrupt_its_commit(tmp_path, monkeypatch):
    layout = _layout(tmp_path)
    monkeypatch.setattr("roost.queue.writer.os.fsync", FsyncLog(os.fsync, delay=0.05))
    committer = Committer(DirectorySync())
    writer = _writer(layout, committer.dirsync)

    async def main():
        task = asyncio.create_task(committer.commit(writer, writer.prepare_commit()))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    committer.close()  # waits for the thread: the job ran to its end
    assert writer.finished and writer._fd is None
    assert read_envelope(writer.path).recipients


def test_thread_is_started_again_in_a_forked_child(tmp_path):
    layout = _layout(tmp_path)
    committer = Committer(DirectorySync())
    writer = _writer(layout, committer.dirsync)

    async def commit(w):
        await committer.commit(w, w.prepare_commit())

    asyncio.run(commit(writer))
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread does not exist here
        status = 1
        try:
            child_writer = _writer(layout, committer.dirsync)
            asyncio.run(commit(child_writer))
            status = 0 if child_writer.finished else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    committer.close()
    assert os.waitstatus_to_exitcode(status) == 0


def test_cleanup_finish_async_queues_like_finish(tmp_path):
    service, _log = make_service(tmp_path)
    client = ClientInfo("client.test", "192.0.2.1", 1234, "client.test", "ESMTP", None, None, None)

    def submit(message):
        message.add_recipient("bob@example.test")
        message.write(b"Subject: hello\r\n\r\nbody\r\n")

    blocking = service.open(origin="smtpd", client=client, sender="alice@example.test", envelope={})
    submit(blocking)
    expected = blocking.finish()
    grouped = service.open(origin="smtpd", client=client, sender="alice@example.test", envelope={})
    submit(grouped)
    result = asyncio.run(grouped.finish_async(service.committer))
    service.close()
    assert (result.status, result.reply.code, result.nrcpt) == (expected.status, 250, expected.nrcpt)
    assert result.reply.text == f"Ok: queued as {grouped.queue_id}"
    mine, theirs = service.layout.find(grouped.queue_id)[1], service.layout.find(blocking.queue_id)[1]
    assert [r.address for r in read_envelope(mine).recipients] == [r.address for r in read_envelope(theirs).recipients]
    assert os.stat(mine).st_mode & 0o777 == 0o700



def test_a_failing_batch_still_answers_its_waiters(tmp_path, monkeypatch):
    layout = _layout(tmp_path)
    committer = Committer(DirectorySync())
    writer = _writer(layout, committer.dirsync)

    def broken(self, batch):
        raise RuntimeError("bug in the committer")

    monkeypatch.setattr(Committer, "_commit_batch", broken)

    async def main():
        with pytest.raises(RuntimeError, match="bug in the committer"):
            await asyncio.wait_for(committer.commit(writer, writer.prepare_commit()), 5)

    asyncio.run(main())
    committer.close()
    writer.abort()  # the broken batch never touched the file: the caller's to remove
    assert not os.path.exists(writer.path)
