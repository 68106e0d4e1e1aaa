"""bench/login_bench.py runs end to end (3 users, one run, no RESULTS.md change) against the
real Dovecot and prints a row per protocol and server."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, require_tool


def test_login_bench_runs_with_a_few_users():
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("the login benchmark starts Dovecot and needs root", pytrace=False)
    before = (REPO / "bench" / "RESULTS.md").read_bytes()
    result = subprocess.run([sys.executable, str(REPO / "bench" / "login_bench.py"), "--users",
                             "3", "--clients", "2", "--runs", "1", "--no-write"],
                            capture_output=True, text=True, timeout=120, cwd=str(REPO))
    assert result.returncode == 0, result.stdout + result.stderr
    for label in ("IMAP LOGIN", "POP3 USER/PASS", "auth socket AUTH PLAIN"):
        for server in ("roost", "Dovecot"):
            assert re.search(rf"^\| {label} \| {server} \| \d+\.\d\d s \| [\d,]+ logins/s \| ",
                             result.stdout, re.M), (label, server, result.stdout)
    assert re.search(r"\| IMAP LOGIN \| roost \| .* \| [\d.]+ ms / [\d.]+ ms \|$", result.stdout,
                     re.M), result.stdout
    assert (REPO / "bench" / "RESULTS.md").read_bytes() == before
