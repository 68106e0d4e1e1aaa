"""Starting the master in the background and knowing when it is ready (`roost start`).

The command forks; the child starts a new session and forks again, so the master is neither
a session leader nor a child of the shell (it can never get a controlling terminal, and the
command's exit does not signal it). The master's standard input, output and error are
/dev/null; what it has to tell the person starting it (diagnostics, the listening addresses,
a bind error) travels through a readiness pipe that the command copies to its own stderr
until the master writes its ready marker or closes the pipe (failure).

Invariants: `start_in_background` returns 0 only after the master reported every listener
bound; on failure the master has already exited and removed what it created.
Security: the daemon keeps no descriptor of the invoking process except the readiness pipe,
which it closes once ready.
"""

from __future__ import annotations

import os
import sys

from roost.master.master import Console, run_master


def start_in_background(config_dir: str, out=None) -> int:
    out = out or sys.stderr
    config_dir = os.path.abspath(config_dir)  # the daemon runs in /
    read_fd, write_fd = os.pipe()
    out.flush()
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _daemon_child(config_dir, write_fd)  # never returns
    os.close(write_fd)
    os.waitpid(pid, 0)
    ready = False
    with os.fdopen(read_fd, "rb") as pipe:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line == Console.READY:
                ready = True
                break
            print(line, file=out, flush=True)
    return 0 if ready else 1


def _daemon_child(config_dir: str, console_fd: int) -> None:
    code = 1
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        if null > 2:
            os.close(null)
        code = run_master(config_dir, foreground=False, console_fd=console_fd)
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about any failure
        try:
            os.write(console_fd, f"roost/master: fatal: {type(exc).__name__}: {exc}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)
