"""Hand-built configuration objects and small process helpers for the master's tests."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field

from roost.config.diagnostics import Diagnostics


class FakeSettings:
    """The part of roost.config.settings.Settings the master and roost.net use."""

    DEFAULTS = {"myhostname": "mail.example.test", "syslog_name": "postfix",
                "smtpd_timeout": "300", "line_length_limit": "2048", "smtpd_hard_error_limit": "20",
                "smtpd_tls_cert_file": "", "smtpd_tls_key_file": "", "queue_directory": "",
                "data_directory": "", "mail_owner": "root", "maillog_file": ""}

    def __init__(self, **values: str):
        self.values = {**self.DEFAULTS, **values}

    def get(self, name: str) -> str:
        return self.values[name]

    def raw(self, name: str) -> str:
        return self.values[name]

    def int(self, name: str) -> int:
        return int(self.values[name])

    def time(self, name: str) -> float:
        return float(self.values[name].rstrip("s"))

    def bool(self, name: str) -> bool:
        return self.values[name] == "yes"


def make_listener(service="smtp", handler="smtpd", *, host="127.0.0.1", port=0, family="inet",
                  path=None, mode=None, tls_wrapper=False, maxproc=100, settings=None, origin=None):
    from roost.config.load import Listener

    origin = origin or ("dovecot" if "/" in service else "postfix")
    return Listener(service=service, origin=origin, handler=handler, family=family,
                    host=host if family == "inet" else None, port=port if family == "inet" else None,
                    path=path, mode=mode, user=None, group=None, tls_wrapper=tls_wrapper,
                    maxproc=maxproc, settings=settings or FakeSettings(), file="/test/master.cf", line=1)


@dataclass(frozen=True)
class FakeConfig:
    config_dir: str
    main: FakeSettings
    services: tuple = ()
    dovecot: object = None
    listeners: tuple = ()
    diagnostics: Diagnostics = field(default_factory=Diagnostics)


def process_state(pid: int) -> str | None:
    """The /proc state letter of pid, or None when the process no longer exists."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return None


def alive(pid: int) -> bool:
    """True while pid runs; a zombie left to an init that does not reap counts as gone."""
    return process_state(pid) not in (None, "Z", "X")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(entry))
    return found


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def kill_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


class LineClient:
    """A blocking line-based client for greeting/command/reply checks."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0, wrap=None):
        sock = socket.create_connection((host, port), timeout=timeout)
        self.sock = wrap(sock) if wrap else sock
        self.file = self.sock.makefile("rb")

    def line(self) -> str:
        return self.file.readline().decode("ascii", "replace")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("ascii") + b"\r\n")

    def command(self, text: str) -> str:
        self.send(text)
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()
