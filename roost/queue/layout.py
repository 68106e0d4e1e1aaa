"""The queue directory tree (Postfix QSHAPE_README / qmgr(8) facts, postconf(5)
queue_directory, hash_queue_names, hash_queue_depth).

Queues: maildrop (local submissions waiting for pickup), incoming (written by cleanup),
active (owned by the queue manager), deferred, hold, corrupt, and the per-message logs
bounce, defer (and trace). A queue named in hash_queue_names keeps each file
`depth` levels down: `deferred/A/B/ID` for depth 2, the levels being the first hex digits
of the ID's arrival microseconds (roost.queue.ids.hash_key), so both ID forms spread alike.

Invariants: paths are built only from validated queue IDs and the fixed queue names.
Security: directories are created mode 0700, owned by whoever runs the mail system.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

from roost.queue.ids import hash_key, is_queue_id

MESSAGE_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")
LOG_QUEUES = ("bounce", "defer", "trace")
ALL_QUEUES = MESSAGE_QUEUES + LOG_QUEUES
# postqueue -p / mailq order (showq scans these)
SHOWQ_QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


_KNOWN_DIRECTORIES: set[str] = set()
_QUEUE_DIRS: dict[tuple[str, str], str] = {}  # (root, queue) -> its path: a join per message saved


class BadQueueId(ValueError):
    pass


@dataclass(frozen=True)
class QueueLayout:
    root: str                                  # queue_directory
    hashed: frozenset = frozenset({"deferred", "defer"})
    depth: int = 1

    @classmethod
    def from_settings(cls, settings) -> "QueueLayout":
        return cls(settings.get("queue_directory"), frozenset(settings.list("hash_queue_names")),
                   max(0, settings.int("hash_queue_depth")))

    def queue_dir(self, queue: str) -> str:
        key = (self.root, queue)
        found = _QUEUE_DIRS.get(key)
        if found is None:
            if queue not in ALL_QUEUES:
                raise BadQueueId(f"unknown queue name: {queue}")
            found = _QUEUE_DIRS[key] = os.path.join(self.root, queue)
        return found

    def levels(self, queue: str, queue_id: str) -> list[str]:
        if queue not in self.hashed or self.depth == 0:
            return []
        key = hash_key(queue_id)
        return list(key[:self.depth])

    def directory(self, queue: str, queue_id: str) -> str:
        if queue not in self.hashed or self.depth == 0:  # incoming, hold, ...: no levels
            return self.queue_dir(queue)
        return os.path.join(self.queue_dir(queue), *self.levels(queue, queue_id))

    def path(self, queue: str, queue_id: str) -> str:
        if not is_queue_id(queue_id):
            raise BadQueueId(f"bad mail queue ID: {queue_id}")
        return os.path.join(self.directory(queue, queue_id), queue_id)

    def ensure(self) -> None:
        """Create every queue directory (mode 0700) that is missing."""
        for queue in ALL_QUEUES:
            os.makedirs(self.queue_dir(queue), mode=0o700, exist_ok=True)

    def ensure_directory(self, queue: str, queue_id: str) -> str:
        directory = self.directory(queue, queue_id)
        if directory not in _KNOWN_DIRECTORIES:  # one mkdir attempt per process, not per message
            os.makedirs(directory, mode=0o700, exist_ok=True)
            _KNOWN_DIRECTORIES.add(directory)
        return directory

    def scan(self, queue: str) -> Iterator[tuple[str, str]]:
        """(queue_id, path) of every file in `queue` whose name is a queue ID, at any
        hash level (a hash_queue_depth change leaves files where they were)."""
        top = self.queue_dir(queue)
        stack = [top]
        while stack:
            directory = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.is_dir(follow_symlinks=False):
                    if len(entry.name) == 1 and entry.name in "0123456789ABCDEF":
                        stack.append(entry.path)
                elif is_queue_id(entry.name):
                    yield entry.name, entry.path

    def find(self, queue_id: str, queues=MESSAGE_QUEUES) -> tuple[str, str] | None:
        """(queue, path) of the message `queue_id` in the first queue that has it."""
        if not is_queue_id(queue_id):
            raise BadQueueId(f"bad mail queue ID: {queue_id}")
        for queue in queues:
            # files left at another depth (hash settings changed) are still found
            candidates = [self.path(queue, queue_id)] + [
                os.path.join(self.queue_dir(queue), *hash_key(queue_id)[:d], queue_id) for d in range(4)]
            for candidate in candidates:
                if os.path.isfile(candidate):
                    return queue, candidate
        return None
