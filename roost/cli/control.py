"""`roost start | start-fg | stop | reload | status | flush`: control the mail system.

Mirrors postfix(1): messages read `roost/master: the roost mail system is running: PID: 1234`
(Postfix: `postfix/postfix-script: the Postfix mail system is running: PID: 1234`), and go to
stderr like postfix-script's. Exit status 0 on success; `status` exits 1 when not running,
`stop` and `reload` exit 1 when there is nothing running.
- start: daemonises and returns once every listener is bound (readiness pipe), printing the
  listening addresses, or the bind error (`fatal: bind 127.0.0.1 port 2025: Address already
  in use`) and non-zero, leaving nothing running.
- start-fg: the master in this process, logging to stderr unless maillog_file is set.
- stop: SIGTERM, then waits until the master (and so every worker) is gone.
- reload: checks the configuration first (a broken one is reported and not sent), then SIGHUP.
Invariants: the running master is the holder of the pid-file lock, never just the pid
written in the file (roost.master.pidfile).
Security: signals only the process holding this configuration's pid-file lock.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from roost.config.load import load_config
from roost.master.pidfile import pid_file_path, running_pid

PREFIX = "roost/master"
STOP_WAIT = 30.0  # longer than the master's stop grace plus its kill margin


def _say(text: str) -> None:
    print(f"{PREFIX}: {text}", file=sys.stderr, flush=True)


def _pid_path(config) -> str:
    return pid_file_path(config.main.get("queue_directory"))


def run(command: str, config_dir: str, args: list[str], verbose: int) -> int:
    if args:
        _say(f"fatal: {command}: unexpected arguments: {' '.join(args)}")
        return 2
    actions = {"start": start, "start-fg": start_fg, "stop": stop, "reload": reload,
               "status": status, "flush": flush}
    return actions[command](config_dir)


def _print_config_problems(config) -> bool:
    """Print every diagnostic; True when one is fatal."""
    for diagnostic in config.diagnostics.items:
        print(f"roost: {diagnostic}", file=sys.stderr)
    return config.diagnostics.has_fatal()


def start(config_dir: str) -> int:
    config = load_config(config_dir)
    pid = running_pid(_pid_path(config))
    if pid:
        _say(f"fatal: the roost mail system is already running (PID {pid})")
        return 1
    _say(f"starting the roost mail system (configuration {os.path.abspath(config_dir)})")
    from roost.master.launch import start_in_background

    return start_in_background(config_dir)


def start_fg(config_dir: str) -> int:
    from roost.master.master import run_master

    return run_master(config_dir, foreground=True, console_fd=sys.stderr.fileno())


def status(config_dir: str) -> int:
    pid = running_pid(_pid_path(load_config(config_dir)))
    if pid:
        _say(f"the roost mail system is running: PID: {pid}")
        return 0
    _say("the roost mail system is not running")
    return 1


def stop(config_dir: str) -> int:
    path = _pid_path(load_config(config_dir))
    pid = running_pid(path)
    if not pid:
        _say("fatal: the roost mail system is not running")
        return 1
    if pid < 0:
        _say(f"fatal: {path}: the pid file of the running master is unreadable")
        return 1
    _say("stopping the roost mail system")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    deadline = time.monotonic() + STOP_WAIT
    while running_pid(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    if running_pid(path):
        _say(f"fatal: the roost mail system did not stop within {STOP_WAIT:g} seconds (PID {pid})")
        return 1
    _wait_process_gone(pid, deadline=time.monotonic() + 5)
    return 0


def _wait_process_gone(pid: int, deadline: float) -> None:
    """The lock goes with the master's last close; give its exit a moment to complete."""
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                state = stat.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.02)


def reload(config_dir: str) -> int:
    config = load_config(config_dir)
    pid = running_pid(_pid_path(config))
    if not pid or pid < 0:
        _say("fatal: the roost mail system is not running")
        return 1
    if _print_config_problems(config):
        count = len(config.diagnostics.fatals)
        _say(f"fatal: {os.path.abspath(config_dir)}: {count} configuration error{'s' * (count != 1)}; "
             "not reloading, the running configuration stays in effect")
        return 1
    _say("refreshing the roost mail system")
    os.kill(pid, signal.SIGHUP)
    return 0


def flush(config_dir: str) -> int:
    pid = running_pid(_pid_path(load_config(config_dir)))
    if not pid:
        _say("fatal: cannot flush the mail queue: the roost mail system is not running")
        return 1
    from roost.qmgr.trigger import send_request  # noqa: PLC0415 - only this command needs it

    if not send_request(load_config(config_dir).main.get("queue_directory"), "F"):
        _say("fatal: cannot flush the mail queue: the queue manager does not answer")
        return 1
    return 0
