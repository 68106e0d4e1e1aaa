"""The Maildir commit thread (roost.delivery.commit_thread) and MaildirJob: group commit of
new/ fsyncs, the durability order, and failures that stay with their own job."""

from __future__ import annotations

import asyncio
import io
import os
import threading

import pytest

from roost.delivery import commit_thread as ct
from roost.delivery import mailbox
from roost.delivery.mailbox import MailboxError, MaildirJob, deliver_maildir, lf_chunks

HEADERS = b"Return-Path: <a@x.test>\nDelivered-To: b@y.test\n"
CRLF_MESSAGE = b"Subject: hi\r\n\r\nline one\r\nbare\rCR\r\n" + b"x" * 70000 + b"\r\nend\r\n"


def lf(message: bytes):
    return lambda: lf_chunks(io.BytesIO(message))


class Blocker:
    """A job that holds the thread until released: the jobs queued meanwhile join its batch."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def write(self):
        self.started.set()
        assert self.release.wait(10)

    def publish(self):
        return None


def run_batched(thread: ct.CommitThread, jobs: list) -> list:
    """Submit `jobs` while the thread is held, then let it go: they run as one batch."""
    async def scenario():
        blocker = Blocker()
        first = asyncio.ensure_future(thread.run(blocker))
        await asyncio.to_thread(blocker.started.wait, 10)
        waiting = [asyncio.ensure_future(thread.run(job)) for job in jobs]
        await asyncio.sleep(0)   # every job is queued before the thread may take the next batch
        blocker.release.set()
        await first
        return await asyncio.gather(*waiting, return_exceptions=True)
    return asyncio.run(scenario())


def trace_syscalls(monkeypatch) -> list:
    """(call, path) of every fsync and rename the jobs and the thread make, in order."""
    events: list = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def rename(src, dst):
        events.append(("rename", str(dst)))
        return real_rename(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    return events


def test_batch_shares_one_fsync_of_new_after_every_file_and_rename(tmp_path, monkeypatch):
    root = str(tmp_path / "Maildir") + "/"
    thread = ct.CommitThread()
    events = trace_syscalls(monkeypatch)
    jobs = [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE)) for _ in range(5)]
    results = run_batched(thread, jobs)
    new = os.path.join(root, "new")
    assert results == [new] * 5
    assert thread.batches == 1 and thread.dir_syncs == 1   # they joined the held batch
    assert sorted(os.listdir(new)) == sorted(os.path.basename(job.final) for job in jobs)
    assert os.listdir(os.path.join(root, "tmp")) == []
    # every file fsynced before any rename, every rename before the one fsync of new/
    kinds = [kind for kind, _path in events]
    assert kinds == ["fsync"] * 5 + ["rename"] * 5 + ["fsync"]
    assert events[-1] == ("fsync", new.rstrip("/"))
    assert all("/tmp/" in path for _kind, path in events[:5])


def test_stored_bytes_equal_the_single_delivery_path(tmp_path):
    """The queue's LF content through the commit thread gives the file deliver_maildir
    writes from the CRLF stream, name suffix (S=) included."""
    one = deliver_maildir(str(tmp_path / "a") + "/", HEADERS, io.BytesIO(CRLF_MESSAGE))
    [other] = run_batched(ct.CommitThread(), [MaildirJob(str(tmp_path / "b") + "/", HEADERS,
                                                         lf(CRLF_MESSAGE))])
    [name] = os.listdir(other)
    with open(one, "rb") as first, open(os.path.join(other, name), "rb") as second:
        assert first.read() == second.read()
    assert one.rpartition(",S=")[2] == name.rpartition(",S=")[2]


def test_a_failing_job_fails_alone_and_leaves_no_temp_file(tmp_path):
    root = str(tmp_path / "Maildir") + "/"
    good = [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE)) for _ in range(2)]
    too_big = MaildirJob(root, HEADERS, lf(CRLF_MESSAGE), size_limit=1000)
    results = run_batched(ct.CommitThread(), [good[0], too_big, good[1]])
    assert results[0] == results[2] == os.path.join(root, "new")
    assert isinstance(results[1], MailboxError) and results[1].dsn == "5.2.2" and not results[1].temporary
    assert len(os.listdir(os.path.join(root, "new"))) == 2
    assert os.listdir(os.path.join(root, "tmp")) == []


def test_a_failed_directory_fsync_fails_every_job_published_there(tmp_path, monkeypatch):
    bad_root, good_root = str(tmp_path / "bad") + "/", str(tmp_path / "good") + "/"
    real = ct.fsync_directory

    def failing(path):
        if path.startswith(bad_root):
            raise OSError(5, "Input/output error")
        real(path)
    monkeypatch.setattr(ct, "fsync_directory", failing)
    results = run_batched(ct.CommitThread(), [MaildirJob(bad_root, HEADERS, lf(CRLF_MESSAGE)),
                                             MaildirJob(good_root, HEADERS, lf(CRLF_MESSAGE)),
                                             MaildirJob(bad_root, HEADERS, lf(CRLF_MESSAGE))])
    assert isinstance(results[0], OSError) and isinstance(results[2], OSError)
    assert results[1] == os.path.join(good_root, "new")


def test_missing_maildir_is_made_again_after_it_was_removed(tmp_path):
    root = str(tmp_path / "Maildir") + "/"
    thread = ct.CommitThread()
    run_batched(thread, [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))])
    for sub in ("tmp", "new", "cur"):
        for name in os.listdir(os.path.join(root, sub)):
            os.unlink(os.path.join(root, sub, name))
        os.rmdir(os.path.join(root, sub))
    assert root in mailbox._known_maildirs
    [result] = run_batched(thread, [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))])
    assert result == os.path.join(root, "new") and len(os.listdir(result)) == 1
    assert os.path.isdir(os.path.join(root, "cur"))


def test_new_directory_removed_between_write_and_rename(tmp_path):
    root = str(tmp_path / "Maildir") + "/"
    job = MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))
    job.write()
    os.rmdir(os.path.join(root, "new"))
    assert job.publish() == os.path.join(root, "new")
    assert os.path.exists(job.final)


def test_cancelled_waiter_does_not_stop_its_job(tmp_path):
    root = str(tmp_path / "Maildir") + "/"
    thread = ct.CommitThread()

    async def scenario():
        blocker = Blocker()
        held = asyncio.ensure_future(thread.run(blocker))
        await asyncio.to_thread(blocker.started.wait, 10)
        waiter = asyncio.ensure_future(thread.run(MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))))
        await asyncio.sleep(0)
        waiter.cancel()
        blocker.release.set()
        await held
        with pytest.raises(asyncio.CancelledError):
            await waiter
        for _ in range(200):   # the job still completes on the thread
            if thread.dir_syncs:
                break
            await asyncio.sleep(0.01)
    asyncio.run(scenario())
    assert len(os.listdir(os.path.join(root, "new"))) == 1


def count_writes(monkeypatch) -> list:
    """The size of every os.write the job makes."""
    sizes: list = []
    real_write = os.write

    def write(fd, data):
        sizes.append(len(data))
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", write)
    return sizes


def test_small_message_is_one_write_and_a_large_one_goes_in_chunks(tmp_path, monkeypatch):
    """Headers and content are gathered up to mailbox.CHUNK bytes per write: a small message is
    one system call; a large one is written in pieces of at least CHUNK (the last excepted),
    with the same bytes and the same S= size either way."""
    small = b"Subject: s\n\n" + b"line\n" * 10
    pieces = [small[:5], small[5:17], small[17:]]
    sizes = count_writes(monkeypatch)
    job = MaildirJob(str(tmp_path / "a") + "/", HEADERS, lambda: iter(pieces))
    job.write()
    assert sizes == [len(HEADERS) + len(small)]
    job.publish()
    with open(job.final, "rb") as stored:
        assert stored.read() == HEADERS + small
    assert job.final.endswith(f",S={len(HEADERS) + len(small)}")

    sizes.clear()
    large = [b"x" * 40000 + b"\n" for _ in range(5)]
    job = MaildirJob(str(tmp_path / "b") + "/", HEADERS, lambda: iter(large))
    job.write()
    total = len(HEADERS) + sum(map(len, large))
    assert sum(sizes) == total and len(sizes) < len(large)
    assert all(size >= mailbox.CHUNK for size in sizes[:-1])
    job.publish()
    with open(job.final, "rb") as stored:
        assert stored.read() == HEADERS + b"".join(large)
    assert job.final.endswith(f",S={total}")


def test_size_limit_counts_the_delivery_headers(tmp_path):
    """virtual_mailbox_limit / mailbox_size_limit apply to the file as written, headers
    included: an empty message whose headers alone pass the limit is refused, no file left."""
    root = str(tmp_path / "Maildir") + "/"
    job = MaildirJob(root, HEADERS, lambda: iter(()), size_limit=len(HEADERS) - 1)
    with pytest.raises(MailboxError) as refused:
        job.write()
    assert refused.value.dsn == "5.2.2" and not refused.value.temporary
    assert os.listdir(os.path.join(root, "tmp")) == []
    fits = MaildirJob(root, HEADERS, lambda: iter((b"a\n",)), size_limit=len(HEADERS) + 2)
    fits.write()
    fits.publish()
    assert os.path.getsize(fits.final) == len(HEADERS) + 2


def test_batch_writes_every_file_before_the_first_fsync(tmp_path, monkeypatch):
    """The files of a batch are all written (write-back started) before any is fsynced, and
    each is fsynced before any rename: the device gets the batch's data at once."""
    root = str(tmp_path / "Maildir") + "/"
    events = trace_syscalls(monkeypatch)
    real_write, started = os.write, []

    def write(fd, data):
        events.append(("write", os.readlink(f"/proc/self/fd/{fd}")))
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(mailbox, "start_writeback", lambda fd: started.append(fd))
    jobs = [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE)) for _ in range(4)]
    results = run_batched(ct.CommitThread(), jobs)
    assert results == [os.path.join(root, "new")] * 4
    kinds = [kind for kind, _path in events]
    assert kinds == ["write"] * 8 + ["fsync"] * 4 + ["rename"] * 4 + ["fsync"]   # 2 writes a file
    assert len(started) == 4 and all(job.fd is None for job in jobs)


def test_sync_groups_bound_the_open_files(tmp_path, monkeypatch):
    monkeypatch.setattr(ct, "SYNC_GROUP", 2)
    root = str(tmp_path / "Maildir") + "/"
    open_at_once, real_sync = [], MaildirJob.sync
    jobs = [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE)) for _ in range(5)]

    def sync(self):
        open_at_once.append(sum(job.fd is not None for job in jobs))
        real_sync(self)
    monkeypatch.setattr(MaildirJob, "sync", sync)
    results = run_batched(ct.CommitThread(), jobs)
    assert results == [os.path.join(root, "new")] * 5
    assert max(open_at_once) <= 2 and len(os.listdir(os.path.join(root, "new"))) == 5


def test_a_failed_file_fsync_fails_that_job_alone(tmp_path, monkeypatch):
    root = str(tmp_path / "Maildir") + "/"
    jobs = [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE)) for _ in range(3)]
    real_fsync = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}") == jobs[1].tmp:
            raise OSError(5, "Input/output error")
        return real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    results = run_batched(ct.CommitThread(), jobs)
    assert results[0] == results[2] == os.path.join(root, "new")
    assert isinstance(results[1], MailboxError) and results[1].temporary
    assert len(os.listdir(os.path.join(root, "new"))) == 2
    assert os.listdir(os.path.join(root, "tmp")) == [] and jobs[1].fd is None


def test_publish_without_sync_fsyncs_first(tmp_path, monkeypatch):
    """A caller that skips sync() still gets the durable order: fsync, then rename."""
    root = str(tmp_path / "Maildir") + "/"
    job = MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))
    job.write()
    events = trace_syscalls(monkeypatch)
    job.publish()
    assert [kind for kind, _path in events] == ["fsync", "rename"] and job.fd is None


def test_without_sync_file_range_the_delivery_is_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(mailbox, "_sync_file_range", False)
    root = str(tmp_path / "Maildir") + "/"
    [result] = run_batched(ct.CommitThread(), [MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))])
    [name] = os.listdir(result)
    with open(os.path.join(result, name), "rb") as stored:
        assert stored.read() == HEADERS + CRLF_MESSAGE.replace(b"\r\n", b"\n")


def test_delivered_to_values_are_found_in_any_case_and_only_in_the_header():
    from roost.delivery.local import delivered_to_values

    message = (b"Received: x\nDELIVERED-TO: Boss@Example.TEST\nX-Note: delivered-to: not a field\n"
               b"delivered-to:  two@example.test \n\nDelivered-To: body@example.test\n")
    assert delivered_to_values(lambda: iter((message[:20], message[20:]))) == \
        {"boss@example.test", "two@example.test"}
    assert delivered_to_values(lambda: iter((b"Subject: x\n\nDelivered-To: a@b\n",))) == set()


def test_jobs_that_follow_a_batch_closely_wait_for_the_window_and_go_together(tmp_path, monkeypatch):
    """Batches begin GROUP_WINDOW apart while jobs keep coming: two jobs sent just after a
    batch began share the next batch instead of making one each; a job after a quiet
    spell, or a batch with GROUP_ENOUGH jobs waiting, starts at once."""
    import time

    monkeypatch.setattr(ct, "GROUP_WINDOW", 0.3)
    root = str(tmp_path / "Maildir") + "/"
    thread = ct.CommitThread()

    async def scenario():
        began = time.monotonic()
        await thread.run(MaildirJob(root, HEADERS, lf(CRLF_MESSAGE)))   # after quiet: at once
        first_took = time.monotonic() - began
        second = asyncio.ensure_future(thread.run(MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))))
        await asyncio.sleep(0.05)
        third = asyncio.ensure_future(thread.run(MaildirJob(root, HEADERS, lf(CRLF_MESSAGE))))
        await asyncio.gather(second, third)
        return first_took, time.monotonic() - began
    first_took, all_took = asyncio.run(scenario())
    assert first_took < 0.25 and all_took >= 0.29
    assert thread.batches == 2 and thread.dir_syncs == 2

    monkeypatch.setattr(ct, "GROUP_ENOUGH", 1)   # enough waiting at once: no pause at all
    busy = ct.CommitThread()

    async def no_pause():
        began = time.monotonic()
        for _ in range(2):
            await busy.run(MaildirJob(root, HEADERS, lf(CRLF_MESSAGE)))
        return time.monotonic() - began
    assert asyncio.run(no_pause()) < 0.25 and busy.batches == 2
