"""One delivery thread per process with group commit of Maildir directory fsyncs.

Delivery agents running in the queue manager's event loop hand their Maildir writes
(roost.delivery.mailbox.MaildirJob) to `await run(job)` instead of a thread-pool hop per
message. The thread takes every job that is waiting as one batch and, in this order:
writes and fsyncs each job's tmp/ file (`job.write()`, then `job.sync()` when the job has
that step; jobs arriving meanwhile join the batch, up to MAX_BATCH), renames each into new/
(`job.publish()`, which names the directory to sync), fsyncs each directory named in the
batch once, and then resolves the batch's futures with a single `call_soon_threadsafe` per
event loop. A batch of N deliveries into one Maildir costs N file fsyncs, one directory
fsync, one thread wake-up and one loop wake-up. Batches begin at least GROUP_WINDOW apart
unless GROUP_ENOUGH jobs wait already (a job waits at most that long, and only while jobs
keep coming), so that under a steady stream they are not made of one job each. Jobs with a
`sync()` step (MaildirJob) write their files first, each starting its write-back, and are
fsynced together after (at most SYNC_GROUP open at once): the data of the batch goes to the
device at once, and the blocks its files share (inode table, tmp/) are written by the first
fsync instead of by each.

Deliveries into roost's own store (StoreJob) run here too, their directory fsyncs joined to
the batch's (roost.store.maildir.deliver.deferred_directory_syncs).

Invariants (DESIGN.md §3, maildir(5)): a job succeeds only after its file was fsynced,
renamed into new/ (never before its fsync returned), and an fsync of new/ that started after
the rename completed; a failing write, fsync or rename fails that job only (its tmp file
is removed by the job); a failing directory fsync fails every job of the batch published
into that directory (the queue manager then keeps the message: at worst delivered twice,
never lost). A submitted job always runs to its end, even when its waiter is cancelled.
Security: runs only jobs built by the delivery agents; never changes the process's ids
(deliveries that need another uid keep forking through roost.delivery.privileges).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
import time
from typing import Any

from roost.delivery.mailbox import fsync_directory

MAX_BATCH = 256   # jobs per batch: bounds the wait of the first one
# batches begin at least this many seconds apart: under a steady stream of deliveries a job
# that comes right after a batch began waits for the rest of the window, and the jobs of
# the window share their device round trips; a job after a quiet spell starts at once, and
# so does a batch that has GROUP_ENOUGH jobs already (no cap on the rate of deliveries)
GROUP_WINDOW = 0.005
GROUP_ENOUGH = 8
SYNC_GROUP = 64   # written files fsynced together at most (each holds a descriptor meanwhile)


class CommitThread:
    """Started at the first job (and again in a forked child, whose parent thread is gone)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.batches = 0     # batches run so far (tests and benchmarks)
        self.dir_syncs = 0   # directory fsyncs done so far

    async def run(self, job: Any) -> Any:
        """Run `job` (write, publish, directory fsync); its publish() result on success,
        else the exception of the failed step is raised here."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_thread()
        self._jobs.put((job, loop, future))
        # a cancelled waiter cancels only this future: the thread still runs the job to its
        # end and then finds the future done
        return await future

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._thread is not None and self._pid == pid:
            return
        with self._lock:
            if self._thread is None or self._pid != pid:
                if self._pid != pid:
                    self._jobs = queue.SimpleQueue()
                self._pid = pid
                self._thread = threading.Thread(target=self._serve, name="maildir-commit",
                                                daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        jobs = self._jobs
        started = -GROUP_WINDOW   # monotonic time the last batch began
        while True:
            first = jobs.get()
            pause = started + GROUP_WINDOW - time.monotonic()
            if pause > 0 and jobs.qsize() + 1 < GROUP_ENOUGH:
                time.sleep(pause)   # jobs keep coming: those of the rest of the window join
            started = time.monotonic()
            batch = [first]
            _drain(jobs, batch, MAX_BATCH)   # everything already waiting joins this batch
            try:
                self.run_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - never leave a waiter hanging
                _resolve([(loop, future, None, exc) for _job, loop, future in batch])

    def run_batch(self, batch: list) -> None:
        """Write, sync, publish and fsync the directories of `batch` [(job, loop, future)]
        (in this thread). Jobs that arrive while the batch's files are written join it (up
        to MAX_BATCH): they share its fsyncs at no extra wait."""
        self.batches += 1
        outcome: list = []   # exception per job, or None
        unsynced: list[int] = []   # written jobs whose sync() is still to come
        index = 0
        while index < len(batch):
            job = batch[index][0]
            try:
                job.write()
                outcome.append(None)
                if getattr(job, "sync", None) is not None:
                    unsynced.append(index)
            except BaseException as exc:  # noqa: BLE001 - reported to that job's waiter
                outcome.append(exc)
            index += 1
            if len(unsynced) >= SYNC_GROUP:   # bounds the files open at once
                _sync(batch, unsynced, outcome)
            if index == len(batch) and len(batch) < MAX_BATCH:
                _drain(self._jobs, batch, MAX_BATCH)
        # every file written (write-back started) is fsynced now, one after the other: each
        # finds the blocks it shares with the others written already. Jobs that come from
        # now on wait for the next batch, where they are written together in turn.
        _sync(batch, unsynced, outcome)
        published: dict[str, list[int]] = {}
        values: list = [None] * len(batch)
        for index, (job, _loop, _future) in enumerate(batch):
            if outcome[index] is not None:
                continue
            try:
                directory = job.publish()
                values[index] = directory
                # None: nothing to sync (the job was durable already); a collection: several
                for name in (() if directory is None else
                             (directory,) if isinstance(directory, str) else directory):
                    published.setdefault(name, []).append(index)
            except BaseException as exc:  # noqa: BLE001
                outcome[index] = exc
        for directory, members in published.items():
            try:
                fsync_directory(directory)
                self.dir_syncs += 1
            except OSError as exc:
                for index in members:
                    outcome[index] = exc
        _resolve([(loop, future, values[index], outcome[index])
                  for index, (_job, loop, future) in enumerate(batch)])


def _sync(batch: list, unsynced: list[int], outcome: list) -> None:
    for index in unsynced:
        try:
            batch[index][0].sync()
        except BaseException as exc:  # noqa: BLE001 - reported to that job's waiter
            outcome[index] = exc
    unsynced.clear()


def _drain(jobs: queue.SimpleQueue, batch: list, most: int) -> None:
    while len(batch) < most:
        try:
            batch.append(jobs.get_nowait())
        except queue.Empty:
            return


def _resolve(items: list) -> None:
    by_loop: dict = {}
    for loop, future, value, error in items:
        by_loop.setdefault(loop, []).append((future, value, error))
    for loop, settled in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, settled)
        except RuntimeError:   # that loop is closed: nobody waits any more
            pass


def _settle(settled: list) -> None:
    for future, value, error in settled:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class StoreJob:
    """A delivery into roost's own store (roost.delivery.store) on the commit thread: the call
    runs in the write step with the store's directory fsyncs deferred
    (roost.store.maildir.deliver.deferred_directory_syncs), and publish() hands those
    directories to the batch, which fsyncs each once before any job of it is answered.
    `value` is the call's result."""

    def __init__(self, function, *args):
        self.function = function
        self.args = args
        self.value = None
        self.directories: set = set()

    def write(self) -> None:
        from roost.store.maildir.deliver import deferred_directory_syncs

        with deferred_directory_syncs() as directories:
            try:
                self.value = self.function(*self.args)
            finally:
                self.directories = set(directories)

    def publish(self) -> tuple:
        return tuple(sorted(self.directories))


_shared = CommitThread()


async def run(job: Any) -> Any:
    """Run `job` on the process's one commit thread."""
    return await _shared.run(job)


def shared() -> CommitThread:
    return _shared
