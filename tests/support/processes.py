"""Process and port checks for tests that start real daemons: pid files, a daemon's session
members, processes of one roost config directory, listening ports.

Everything reads /proc (Linux); nothing here ends a process it did not get by pid from the
test's own instance. Security: tests only; signals go to pids the test's instance owns.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess

from tests.master.helpers import alive, kill_quietly, wait_until


def read_pid(path: str) -> int | None:
    """The first number in a pid file, or None while it is missing or half written."""
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def session_members(pid: int) -> list[int]:
    """Live processes in the session `pid` leads (a daemon's master and what it forked)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(pid) and alive(int(entry)):
            members.append(int(entry))
    return members


def processes_with(marker: str) -> list[int]:
    """Live processes carrying `marker` as one command-line argument (roost's `-c DIR`)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                arguments = handle.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in arguments and alive(int(entry)):
            found.append(int(entry))
    return found


def kill_all(pids, timeout: float = 10) -> None:
    """Wait up to `timeout` for `pids` to end by themselves, then SIGKILL the rest."""
    pids = list(pids)
    if not wait_until(lambda: not any(alive(pid) for pid in pids), timeout):
        for pid in pids:
            kill_quietly(pid, signal.SIGKILL)


def port_listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, read from /proc/net/tcp so that no
    probe connection shows up in the daemon's log."""
    wanted = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp", encoding="ascii") as handle:
            rows = handle.read().splitlines()[1:]
    except OSError:
        return False
    return any(len(f := row.split()) > 3 and f[1] == wanted and f[3] == "0A" for row in rows)


def port_accepts(port: int, timeout: float = 1.0) -> bool:
    """Whether a connection to 127.0.0.1:port is accepted (the daemon is ready to serve)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
        return True
    except OSError:
        return False


def stop_roost(config_dir: str) -> None:
    """`roost -c DIR stop`, then SIGKILL whatever of that instance still runs after 10 s."""
    from tests.conftest import run_roost

    run_roost("-c", config_dir, "stop", timeout=30)
    if not wait_until(lambda: not processes_with(config_dir), 10):
        for pid in processes_with(config_dir):
            kill_quietly(pid, signal.SIGKILL)


def terminate(process, timeout: float = 10) -> None:
    """SIGTERM to a child the test started (a subprocess.Popen), SIGKILL if it has not ended
    after `timeout` seconds; reaped either way."""
    kill_quietly(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_quietly(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
