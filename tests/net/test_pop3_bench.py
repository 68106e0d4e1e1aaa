"""bench/pop3_bench.py runs end to end (tiny count, one run, no RESULTS.md change) and
prints its Markdown table with both servers and the ratio."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, require_tool


def test_bench_runs_with_a_tiny_count():
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("the POP3 benchmark starts Dovecot and needs root", pytrace=False)
    before = (REPO / "bench" / "RESULTS.md").read_bytes()
    result = subprocess.run([sys.executable, str(REPO / "bench" / "pop3_bench.py"), "--count",
                             "5", "--size", "2000", "--runs", "1", "--no-write"],
                            capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr, result.stderr  # both servers sent the same octets
    for server in ("roost", "Dovecot"):  # the CPU column is measured for both
        row = rf"^\| {server} \| \d+\.\d+ s \| [\d,]+ msg/s \| [\d.]+ MB/s \| \d+ µs \|$"
        assert re.search(row, result.stdout, re.M), result.stdout
    assert re.search(r"Ratio roost/Dovecot \(throughput\): \*\*\d+\.\d\d\*\*", result.stdout)
    assert (REPO / "bench" / "RESULTS.md").read_bytes() == before
