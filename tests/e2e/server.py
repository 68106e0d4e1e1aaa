"""A whole roost server for the end-to-end tests (not a test module): `roost init` into a
directory under /tmp (mode 0755, so local(8) running as a system user can reach the mail
spool inside it), extra main.cf lines, `roost start`, and a stop that ends every process of
the instance by pid, even on failure."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

from tests.conftest import free_port_base, run_roost
from tests.interop.test_postfix_sasl import _processes_with
from tests.master.helpers import kill_quietly, wait_until


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def ensure_system_user(name: str) -> None:
    """The seeds' `useradd boss`: a system account local(8) delivers to (root only; an
    existing account is kept as it is)."""
    import pwd
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    if os.geteuid() != 0:
        raise AssertionError(f"system user {name} is missing and only root may add it")
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name],
                   capture_output=True, timeout=30)
    pwd.getpwnam(name)  # added now, or by a parallel worker


class Server:
    def __init__(self, users: tuple[str, ...] = ("alice@example.test:Secret-pw1",),
                 system: bool = False):
        self.base_dir = tempfile.mkdtemp(prefix="roost-e2e-", dir="/tmp")
        os.chmod(self.base_dir, 0o755)
        self.dir = os.path.join(self.base_dir, "roost")
        self.system = system  # `roost init --system` with its state under base_dir/state
        self.state = os.path.join(self.base_dir, "state") if system else self.dir
        self.base = free_port_base()
        self.smtp = self.base + 25
        self.users = users
        self.started = False

    def init(self) -> None:
        args = ["init", self.dir, "--port-base", str(self.base)]
        if self.system:
            args += ["--system", "--state-dir", self.state]
        for user in self.users:
            args += ["--user", user]
        done = run_roost(*args)
        assert done.returncode == 0, done.stderr

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def append(self, name: str, text: str) -> None:
        with open(self.path(name), "a", encoding="utf-8") as handle:
            handle.write(text)

    def write(self, name: str, text: str) -> None:
        with open(self.path(name), "w", encoding="utf-8") as handle:
            handle.write(text)

    def roost(self, *args: str, timeout: float = 60, env: dict | None = None):
        return run_roost("-c", self.dir, *args, timeout=timeout, env=env)

    def start(self) -> None:
        done = self.roost("start")
        assert done.returncode == 0, done.stderr
        self.started = True
        assert wait_until(lambda: port_open(self.smtp), 15), self.maillog()[-2000:]

    def stop(self) -> None:
        if self.started:
            self.roost("stop", timeout=30)
            if not wait_until(lambda: not _processes_with(self.dir), 10):
                for pid in _processes_with(self.dir):
                    kill_quietly(pid, signal.SIGKILL)

    def kill(self) -> list[int]:
        """SIGKILL every process of this instance at once (a power cut for roost)."""
        pids = _processes_with(self.dir)
        for pid in pids:
            kill_quietly(pid, signal.SIGKILL)
        wait_until(lambda: not _processes_with(self.dir), 10)
        return pids

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def maillog(self) -> str:
        path = os.path.join(self.state, "data", "maillog")
        return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""

    def smtp_client(self, source: str = "127.0.0.1", tls: bool = False) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.smtp, timeout=30, source_address=(source, 0))
        client.ehlo("client.example")
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            client.ehlo("client.example")
        return client


def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
