"""Group commit of finished queue files for an asyncio server (Postfix cleanup(8)'s fsync
before `250 queued`, done for many sessions at once).

The event loop does the cheap part of finishing a queue file itself (end record written,
mode 0700: QueueFileWriter.prepare_commit) and hands the blocking part to one dedicated
thread per process: `await committer.commit(writer, directories)`. The thread takes every
job that is waiting as one batch, fsyncs (and closes) each file, then fsyncs each directory
named in the batch once, and only then resolves the batch's futures, all of them through a
single `call_soon_threadsafe` per event loop. One thread wake-up and one loop wake-up serve a
whole batch, where `asyncio.to_thread` costs a pool hand-off per message.

Invariants (DESIGN.md §3 durability contract): a job's future succeeds only after the fsync
of its file and then an fsync of each of its directories that started after the file's own
fsync completed (so after the directory entry was made: the rename happened before commit()
was called); a failed file fsync fails that job only, a failed directory fsync fails every
job of the batch in that directory; a failed job's file is removed before its waiter hears
of it (no `250`, no delivery).
A job that was submitted always runs to its end, even when its waiter is cancelled: the file
descriptor belongs to the thread until then.
Security: no file names are built here; the writer's descriptors and paths are used as given.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any

from roost.log import current_pid
from roost.queue.writer import DirectorySync


class Committer:
    """One fsync thread, started at the first commit (and again in a forked child)."""

    def __init__(self, dirsync: DirectorySync | None = None) -> None:
        self.dirsync = dirsync or DirectorySync()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.batches = 0  # batches committed (for tests and benchmarks)

    async def commit(self, writer: Any, directories: tuple[str, ...]) -> None:
        """Make `writer`'s prepared file durable: returns when the file and `directories`
        are fsynced; raises the OSError of a failed fsync, after the file was removed
        (`writer.abort()`). `writer` is a QueueFileWriter after prepare_commit(); on success
        its `finished` is set. Its descriptor is closed either way."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._ensure_thread()
        self._jobs.put(((writer, tuple(directories), loop, future),))
        # a cancelled waiter cancels only this future: the thread still owns the descriptor and
        # finishes the job (durable, or removed by the failure path); _resolve skips the future
        await future

    def _ensure_thread(self) -> None:
        pid = current_pid()
        if self._thread is not None and self._pid == pid and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != pid or not self._thread.is_alive():
                if self._pid != pid:  # a forked child: the parent's queue and thread are gone
                    self._jobs = queue.SimpleQueue()
                self._pid = pid
                self._thread = threading.Thread(target=self._run, name="queue-committer", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        jobs = self._jobs
        while True:
            first = jobs.get()
            if first is None:
                return
            batch = list(first)
            stop = False
            while True:  # everything that is already waiting joins this batch
                try:
                    more = jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            try:
                self._commit_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - a bug here must not leave sessions waiting
                for _writer, _directories, loop, future in batch:
                    try:
                        loop.call_soon_threadsafe(_resolve, [(future, exc)])
                    except RuntimeError:
                        pass
            if stop:
                return

    def _commit_batch(self, batch: list) -> None:
        errors: list[BaseException | None] = []
        for writer, _directories, _loop, _future in batch:
            try:
                writer.sync_file()
                errors.append(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                errors.append(exc)
        # directory fsyncs start only now, after every file of the batch is durable
        directory_errors: dict[str, BaseException | None] = {}
        for index, (_writer, directories, _loop, _future) in enumerate(batch):
            if errors[index] is not None:
                continue
            for directory in directories:
                if directory not in directory_errors:
                    try:
                        self.dirsync.fsync(directory)
                        directory_errors[directory] = None
                    except BaseException as exc:  # noqa: BLE001
                        directory_errors[directory] = exc
                if directory_errors[directory] is not None and errors[index] is None:
                    errors[index] = directory_errors[directory]
        for index, (writer, _directories, _loop, _future) in enumerate(batch):
            try:
                if errors[index] is None:
                    writer.finished = True
                else:  # removed before anyone hears of the failure: never delivered, never 250
                    writer.abort()
            except BaseException as exc:  # noqa: BLE001
                errors[index] = errors[index] or exc
        self.batches += 1
        by_loop: dict[Any, list] = {}
        for index, (_writer, _directories, loop, future) in enumerate(batch):
            by_loop.setdefault(loop, []).append((future, errors[index]))
        for loop, outcomes in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, outcomes)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def close(self) -> None:
        """Stop the thread after the jobs already submitted (waits for it)."""
        thread = self._thread
        if thread is not None and self._pid == current_pid() and thread.is_alive():
            self._jobs.put(None)
            thread.join()
        self._thread = None


def _resolve(outcomes: list) -> None:
    for future, error in outcomes:
        if future.done():
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
