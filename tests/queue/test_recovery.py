"""Start-up recovery and queue moves: nothing valid lost, incomplete files handled."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from roost.queue.layout import QueueLayout
from roost.queue.recovery import is_ready, move, ready, recover_at_start
from roost.queue.writer import QueueFileWriter
from tests.conftest import RecordingLog


@pytest.fixture
def layout(tmp_path):
    layout = QueueLayout(str(tmp_path / "q"), frozenset({"deferred", "defer"}), 1)
    layout.ensure()
    return layout


def complete(layout) -> QueueFileWriter:
    writer = QueueFileWriter(layout)
    writer.recipient("b@example.net")
    writer.start_content()
    writer.content(b"Subject: x\n\nbody\n")
    writer.finish()
    return writer


def test_ready_skips_files_being_written(layout):
    done = complete(layout)
    writing = QueueFileWriter(layout)
    assert [queue_id for queue_id, _ in ready(layout, "incoming")] == [done.queue_id]
    assert not is_ready(writing.path)
    writing.abort()


def test_move_between_hashed_and_flat_queues(layout):
    done = complete(layout)
    deferred = move(layout, done.queue_id, "incoming", "deferred")
    assert deferred == layout.path("deferred", done.queue_id) and os.path.exists(deferred)
    assert move(layout, done.queue_id, "deferred", "active") == layout.path("active", done.queue_id)
    with pytest.raises(FileNotFoundError):
        move(layout, done.queue_id, "deferred", "incoming")


def test_recovery_requeues_active_and_sets_aside_corrupt(layout):
    log = RecordingLog()
    good = complete(layout)
    move(layout, good.queue_id, "incoming", "active")
    broken = complete(layout)
    with open(broken.path, "r+b") as handle:  # complete-looking (mode 0700) but truncated
        handle.truncate(os.path.getsize(broken.path) - 1)
    being_written = QueueFileWriter(layout)
    old_incomplete = QueueFileWriter(layout)
    os.utime(old_incomplete.path, (1, 1))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale_temp = os.path.join(layout.queue_dir("incoming"), f"t.{dead.stdout.strip()}.1")
    open(stale_temp, "w").close()
    live_temp = os.path.join(layout.queue_dir("incoming"), f"t.{os.getpid()}.999999")
    open(live_temp, "w").close()

    report = recover_at_start(layout, log)

    assert report.requeued == [good.queue_id]
    assert os.path.exists(layout.path("incoming", good.queue_id))
    assert sorted(report.corrupt) == sorted([broken.queue_id, old_incomplete.queue_id])
    assert os.path.exists(layout.path("corrupt", broken.queue_id))
    assert os.path.exists(being_written.path)          # a live writer's file is left alone
    assert not os.path.exists(stale_temp) and os.path.exists(live_temp)
    assert ("warning", f'saving corrupt file "{broken.queue_id}" from queue "incoming" to queue "corrupt"') in log.lines
    being_written.abort()
