"""Queue maintenance the queue manager and postsuper need (Postfix qmgr(8)/postsuper(1)
behaviour): which files are ready, moving files between queues, start-up recovery.

- `ready(layout, queue)`: files whose owner-execute bit is set. cleanup sets it (mode 0700)
  only on a complete file, so a file still being written (0600) is never picked up.
- `move(layout, queue_id, src, dst)`: one rename (atomic; a crash leaves the file in one of
  the two queues, never both or neither).
- `recover_at_start(layout, log)`: what qmgr does when it starts: every file left in
  `active` goes back to `incoming`; ready files that do not parse are set aside in
  `corrupt` with Postfix's warning `saving corrupt file "ID" from queue "incoming" to queue
  "corrupt"`; writer temp files (`t.PID.N`) whose process is gone are removed; files that
  are not ready are left alone (a cleanup may still be writing them) unless older than
  `stale_after` seconds, then they are set aside too.

Invariants: nothing valid is ever deleted; every move is a rename inside queue_directory.
Security: only names that are queue IDs or roost temp names are touched.
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass, field
from typing import Iterator

from roost.queue.layout import QueueLayout
from roost.queue.reader import QueueFileError, read_envelope

_TEMP = re.compile(r"t\.(\d+)\.\d+")
STALE_AFTER = 24 * 3600  # seconds after which a never-completed file is set aside


@dataclass
class RecoveryReport:
    requeued: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    temp_removed: list[str] = field(default_factory=list)


def is_ready(path: str) -> bool:
    try:
        return bool(os.stat(path).st_mode & stat.S_IXUSR)
    except OSError:
        return False


def ready(layout: QueueLayout, queue: str) -> Iterator[tuple[str, str]]:
    for queue_id, path in layout.scan(queue):
        if is_ready(path):
            yield queue_id, path


def move(layout: QueueLayout, queue_id: str, source: str, target: str) -> str:
    """Move a message between queues; returns its new path. FileNotFoundError if it is gone."""
    found = layout.find(queue_id, (source,))
    if found is None:
        raise FileNotFoundError(f"{source}/{queue_id}")
    destination = os.path.join(layout.ensure_directory(target, queue_id), queue_id)
    os.rename(found[1], destination)
    return destination


def set_aside(layout: QueueLayout, queue_id: str, queue: str, log) -> None:
    move(layout, queue_id, queue, "corrupt")
    log.warning(f'saving corrupt file "{queue_id}" from queue "{queue}" to queue "corrupt"')


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_at_start(layout: QueueLayout, log, *, stale_after: float = STALE_AFTER,
                     now: float | None = None) -> RecoveryReport:
    layout.ensure()
    report = RecoveryReport()
    now = time.time() if now is None else now
    for queue_id, _path in list(layout.scan("active")):
        move(layout, queue_id, "active", "incoming")
        report.requeued.append(queue_id)
    for queue in ("incoming", "maildrop"):
        directory = layout.queue_dir(queue)
        for entry in list(os.scandir(directory)):
            match = _TEMP.fullmatch(entry.name)
            if match and not _process_alive(int(match.group(1))):
                try:
                    os.unlink(entry.path)
                    report.temp_removed.append(entry.name)
                except FileNotFoundError:
                    pass
        for queue_id, path in list(layout.scan(queue)):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if not st.st_mode & stat.S_IXUSR:
                if now - st.st_mtime > stale_after:
                    set_aside(layout, queue_id, queue, log)
                    report.corrupt.append(queue_id)
                continue
            try:
                read_envelope(path, queue_id)
            except QueueFileError:
                set_aside(layout, queue_id, queue, log)
                report.corrupt.append(queue_id)
    return report
