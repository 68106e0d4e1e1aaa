"""A writer killed with SIGKILL at random moments never leaves a file that looks valid
but is not: every leftover is complete (end record, content intact) or rejected by the
reader, and every message whose finish() returned is complete on disk."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

from roost.queue.layout import QueueLayout
from roost.queue.reader import QueueFileError, read_content, read_envelope
from tests.conftest import REPO
from tests.queue.test_writer import postfix_message_size

CHILD = textwrap.dedent("""
    import os, random, sys
    sys.path.insert(0, sys.argv[2])
    from roost.queue.layout import QueueLayout
    from roost.queue.writer import QueueFileWriter
    layout = QueueLayout(sys.argv[1])
    rng = random.Random(int(sys.argv[3]))
    done = open(os.path.join(sys.argv[1], "finished"), "a", buffering=1)
    while True:
        writer = QueueFileWriter(layout)
        writer.sender("a@example.org")
        size = rng.choice([1000, 20000, 300000])
        marker = f"{writer.queue_id}:{size}".encode()
        writer.recipient("b@example.net")
        writer.start_content()
        payload = (marker + b"\\n") * (size // (len(marker) + 1))
        for start in range(0, len(payload), 7000):
            writer.content(payload[start:start + 7000])
        if rng.random() < 0.2:
            writer.abort()
            continue
        writer.finish()
        done.write(writer.queue_id + "\\n")
""")


def check_leftovers(layout: QueueLayout, finished: set[str]) -> tuple[int, int]:
    valid = invalid = 0
    seen = set()
    for queue_id, path in layout.scan("incoming"):
        seen.add(queue_id)
        try:
            qf = read_envelope(path, queue_id)
        except QueueFileError:
            invalid += 1
            assert queue_id not in finished, f"{queue_id} was finished but is invalid"
            continue
        valid += 1
        content = read_content(qf)
        marker, size = content.split(b"\n", 1)[0].split(b":")
        assert marker.decode() == queue_id
        assert len(content) == int(size) // (len(marker) + len(size) + 2) * (len(marker) + len(size) + 2)
        assert qf.content_size == postfix_message_size(content)
    assert finished <= seen, "a finished message disappeared"
    return valid, invalid


def test_sigkill_at_random_points(tmp_path):
    rng = random.Random()
    totals = [0, 0]
    for round_number in range(12):
        root = tmp_path / f"q{round_number}"
        layout = QueueLayout(str(root))
        layout.ensure()
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(REPO), str(rng.randrange(1 << 30))])
        try:
            time.sleep(0.15 + rng.random() * 0.25)  # past interpreter start-up, into the writes
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        finished_path = root / "finished"
        finished = set(finished_path.read_text().split()) if finished_path.exists() else set()
        valid, invalid = check_leftovers(layout, finished)
        totals[0] += valid
        totals[1] += invalid
        for name in os.listdir(layout.queue_dir("incoming")):
            assert name.startswith("t.") or name in {q for q, _ in layout.scan("incoming")}
    print(f"valid leftovers: {totals[0]}, invalid (killed mid-write): {totals[1]}")
    assert totals[0] > 0, "no message was ever completed: the test did not exercise finish()"
