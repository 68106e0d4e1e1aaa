"""bench/lmtp_bench.py runs end to end with a tiny count (the benchmark itself is not a test)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO, require_tool


def test_lmtp_bench_runs_with_a_tiny_count():
    require_tool("dovecot")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "lmtp_bench.py"), "--count", "4",
                           "--size", "2048", "--concurrency", "1,2", "--repeat", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", done.stdout, re.M)
    assert [row[0] for row in rows] == ["1", "2"], done.stdout
    assert all(float(value) > 0 for row in rows for value in row[1:])
