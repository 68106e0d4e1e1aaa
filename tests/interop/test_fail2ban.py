"""fail2ban's stock Dovecot filter finds roost's auth failures in roost's mail log.

A roost instance (`roost init` + `roost start`) serves the Dovecot auth socket; a client in
this test speaks the Dovecot auth protocol to it (VERSION, CPID, AUTH PLAIN with
`rip=127.0.0.9`) and produces one wrong password, one unknown user and one success. Debian's
`fail2ban-regex` then reads `$data_directory/maillog` with /etc/fail2ban/filter.d/dovecot.conf
and must match exactly the two failure lines, for host 127.0.0.9. The Dovecot lines need
`auth_verbose = yes` (as with Dovecot: without it the passdb failures are not logged).
The requests carry `no-penalty` so the per-IP penalty does not slow the test down.
roost is stopped in the finaliser (`roost stop`, then SIGKILL by pid if anything is left).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess

import pytest

from tests.conftest import free_port_base, require_tool, run_roost
from tests.interop.test_postfix_sasl import _processes_with
from tests.master.helpers import kill_quietly, wait_until

USER = "alice@example.test"
PASSWORD = "Secret-pw1"
CLIENT_IP = "127.0.0.9"
FILTER = "/etc/fail2ban/filter.d/dovecot.conf"


class Roost:
    def __init__(self, base: str):
        self.dir = os.path.join(base, "roost")
        self.socket = os.path.join(self.dir, "spool", "private", "auth")
        self.maillog = os.path.join(self.dir, "data", "maillog")

    def log(self) -> str:
        if not os.path.exists(self.maillog):
            return ""
        with open(self.maillog, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def stop(self) -> None:
        run_roost("-c", self.dir, "stop", timeout=30)
        if not wait_until(lambda: not _processes_with(self.dir), 10):
            for pid in _processes_with(self.dir):
                kill_quietly(pid, signal.SIGKILL)


@pytest.fixture
def roost(tmp_path):
    require_tool("fail2ban-regex")  # fails (never skips): install Debian's fail2ban package
    assert os.path.exists(FILTER), f"{FILTER} is missing: install Debian's fail2ban package"
    inst = Roost(str(tmp_path))
    try:
        init = run_roost("init", inst.dir, "--port-base", str(free_port_base()),
                         "--user", f"{USER}:{PASSWORD}")
        assert init.returncode == 0, init.stderr
        with open(os.path.join(inst.dir, "dovecot.conf"), "a", encoding="utf-8") as handle:
            handle.write("\nauth_verbose = yes\nauth_failure_delay = 0\n")
        started = run_roost("-c", inst.dir, "start", timeout=60)
        assert started.returncode == 0, started.stderr
        assert wait_until(lambda: os.path.exists(inst.socket), 10), started.stderr
        yield inst
    finally:
        inst.stop()
        leftovers = _processes_with(inst.dir)
        assert not leftovers, f"processes left running: {leftovers}"


def authenticate(path: str, attempts: list[tuple[str, str]]) -> list[str]:
    """One connection to the auth socket; the OK/FAIL line of each PLAIN attempt."""
    answers = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(path)
        stream = client.makefile("rwb")
        while (line := stream.readline()) not in (b"DONE\n", b""):
            pass
        stream.write(b"VERSION\t1\t2\nCPID\t4242\n")
        for request_id, (user, password) in enumerate(attempts, 1):
            response = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            stream.write(f"AUTH\t{request_id}\tPLAIN\tservice=imap\tno-penalty\t"
                         f"rip={CLIENT_IP}\tlip=127.0.0.1\tresp={response}\n".encode())
            stream.flush()
            answers.append(stream.readline().decode().rstrip("\n"))
    return answers


def fail2ban_regex(log_path: str, token: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fail2ban-regex", "--out", token, log_path, FILTER],
                          capture_output=True, text=True, timeout=60)


def test_fail2ban_dovecot_filter_matches_roost_auth_failures(roost):
    answers = authenticate(roost.socket, [(USER, "wrong-password"),
                                          ("nobody@example.test", PASSWORD),
                                          (USER, PASSWORD)])
    assert answers == [f"FAIL\t1\tuser={USER}", "FAIL\t2\tuser=nobody@example.test",
                       f"OK\t3\tuser={USER}"], roost.log()

    def logged():
        text = roost.log()
        return text if "Password mismatch" in text and "unknown user" in text else None
    # Like Dovecot with auth_verbose, roost logs no line for the success: the log holds
    # the startup lines (which must not match either) and the two failures.

    log = wait_until(logged, 10)
    assert log, roost.log()
    failure_lines = [line for line in log.splitlines()
                     if f",{CLIENT_IP}): " in line and " auth: " in line]
    assert len(failure_lines) == 2, log

    summary = subprocess.run(["fail2ban-regex", roost.maillog, FILTER], capture_output=True,
                             text=True, timeout=60)
    assert summary.returncode == 0, summary.stdout + summary.stderr
    counts = re.search(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed",
                       summary.stdout, re.MULTILINE)
    assert counts, summary.stdout
    assert int(counts[3]) == 2, (summary.stdout, log)
    assert int(counts[1]) == len(log.splitlines()), (summary.stdout, log)

    matched = fail2ban_regex(roost.maillog, "msg")
    assert matched.returncode == 0, matched.stdout + matched.stderr
    assert sorted(matched.stdout.splitlines()) == sorted(failure_lines), (matched.stdout, log)

    hosts = fail2ban_regex(roost.maillog, "ip")
    assert hosts.returncode == 0, hosts.stdout + hosts.stderr
    assert hosts.stdout.split() == [CLIENT_IP, CLIENT_IP], (hosts.stdout, log)
