"""Shared test fixtures: the roost command, free ports, real Debian tools."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from roost.log import LevelMethods

REPO = Path(__file__).resolve().parent.parent
# Copies of the shared seed documents (Chinese Postfix/Dovecot tutorials), used as fixtures.
SEEDS = Path(__file__).resolve().parent / "data" / "seeds"
DATA = Path(__file__).resolve().parent / "data"

# Standard ports of every service `roost init` configures (port-base + these).
STANDARD_PORTS = (25, 587, 465, 143, 993, 110, 995, 24)


def roost_cmd() -> list[str]:
    """The roost command line prefix, run by this interpreter (works inside or outside the venv)."""
    return [sys.executable, "-m", "roost"]


def run_roost(*args: str, input: str | None = None, env: dict | None = None, check: bool = False,
              timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([*roost_cmd(), *args], input=input, capture_output=True, text=True,
                          env=full_env, check=check, timeout=timeout)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


_CLAIMED_BASES: list = []  # lock files of the bases claimed during the current test
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "roost-test-ports"


@pytest.fixture(autouse=True)
def _release_port_bases():
    """A claim only has to last until the servers of the test that made it have bound their
    ports (then port_free() keeps other claimants off): released after each test, so a long
    suite never runs out of bases."""
    yield
    while _CLAIMED_BASES:
        _CLAIMED_BASES.pop().close()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_base() -> int:
    """A port base N (multiple of 100, from 10000 up to below the kernel's ephemeral port
    range, so no client socket of another test can take one of its ports between the check
    and the bind) with N + every standard port free, claimed for this test process with a
    lock file so parallel workers never share one."""
    PORT_LOCK_DIR.mkdir(exist_ok=True)
    top = min(_ephemeral_low() - max(STANDARD_PORTS) - 1, 60000)
    bases = list(range(10000, max(top, 10100), 100))
    random.shuffle(bases)
    for base in bases:
        lock = open(PORT_LOCK_DIR / f"{base}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if all(port_free(base + p) for p in STANDARD_PORTS):
            _CLAIMED_BASES.append(lock)
            return base
        lock.close()
    raise RuntimeError("no free port base")


def require_tool(name: str) -> str:
    """Path of a real peer tool (postconf, doveconf, swaks...). Interop tests fail, never skip,
    when it is missing: scripts/test.sh installs it when run as root."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)
    if path is None:
        pytest.fail(f"{name} is not installed: run 'sudo scripts/setup.sh --test' once", pytrace=False)
    return path


class RecordingLog(LevelMethods):
    """A service logger for tests: keeps (level, text) pairs instead of writing lines."""

    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def log(self, level: str, text: str) -> None:
        self.lines.append((level, text))
