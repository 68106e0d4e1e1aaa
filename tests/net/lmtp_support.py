"""Helpers for the LMTP tests: a whole roost made by `roost init`, an LMTP client, a Dovecot.

`RoostInstance` starts `roost -c DIR start` from a config `roost init` wrote (with the LMTP
tweaks the tests need: first_valid_gid, a quota rule, a reachable unix socket) and stops it
by pid. `lmtp_session` speaks LMTP with a socket and returns every reply line.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess

from tests.conftest import run_roost
from tests.master.helpers import kill_quietly, wait_until
from tests.support.processes import processes_with, stop_roost


class RoostInstance:
    """A roost configured by `roost init DIR --port-base BASE --user alice:pw --user bob:pw`."""

    def __init__(self, directory: str, port_base: int, users=("alice", "bob"),
                 quota_rule: str | None = None, extra_dovecot: str = ""):
        self.dir = directory
        self.base = port_base
        self.lmtp_port = port_base + 24
        args = ["init", directory, "--port-base", str(port_base)]
        for user in users:
            args += ["--user", f"{user}:Secret-pw1"]
        done = run_roost(*args)
        assert done.returncode == 0, done.stderr
        conf = os.path.join(directory, "dovecot.conf")
        with open(conf, encoding="utf-8") as handle:
            text = handle.read()
        match = re.search(r"service lmtp \{.*?unix_listener (\S+) \{\n(.*?)\}", text, re.S)
        assert match, text
        self.lmtp_socket = match.group(1)
        # a Postfix lmtp(8) client (user postfix) must reach the socket
        text = text.replace(match.group(0), match.group(0).replace(match.group(2),
                                                                    "    mode = 0666\n  "))
        # roost init gives its users uid/gid 0 when run as root; Dovecot's first_valid_gid
        # (default 1) would refuse them
        text += "\nfirst_valid_gid = 0\nmail_plugins = $mail_plugins quota\n"
        if quota_rule:
            text += f"plugin {{\n  quota_rule = {quota_rule}\n}}\n"
        text += extra_dovecot
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(text)
        if not self.lmtp_socket.startswith("/"):
            self.lmtp_socket = os.path.join(directory, "run", "dovecot", self.lmtp_socket)

    def maildir(self, user: str) -> str:
        return os.path.join(self.dir, "mail", "example.test", user, "Maildir")

    def messages(self, user: str) -> list[bytes]:
        found = []
        for sub in ("new", "cur"):
            directory = os.path.join(self.maildir(user), sub)
            if os.path.isdir(directory):
                for name in sorted(os.listdir(directory)):
                    with open(os.path.join(directory, name), "rb") as handle:
                        found.append(handle.read())
        return found

    def start(self) -> None:
        done = run_roost("-c", self.dir, "start", timeout=60)
        assert done.returncode == 0, done.stderr
        assert wait_until(lambda: self.lmtp_ready(), 15), self.maillog()[-3000:]

    def lmtp_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.lmtp_port), timeout=2) as sock:
                return sock.recv(100).startswith(b"220")
        except OSError:
            return False

    def master_pid(self) -> int | None:
        for pid in processes_with(self.dir):
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            if parent not in processes_with(self.dir):
                return pid
        return None

    def kill(self) -> None:
        """SIGKILL every process of this instance (a crash)."""
        for pid in processes_with(self.dir):
            kill_quietly(pid, signal.SIGKILL)
        wait_until(lambda: not processes_with(self.dir), 10)

    def stop(self) -> None:
        stop_roost(self.dir)

    def maillog(self) -> str:
        path = os.path.join(self.dir, "data", "maillog")
        return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""


def read_reply(file) -> list[str]:
    """One (possibly multiline) reply's lines."""
    lines = []
    while True:
        line = file.readline().decode("utf-8", "replace")
        if not line:
            return lines
        lines.append(line.rstrip("\r\n"))
        if len(line) < 4 or line[3] != "-":
            return lines


def last_line(file) -> str:
    lines = read_reply(file)
    if not lines:
        raise ConnectionResetError("the server closed the connection")
    return lines[-1]


def lmtp_deliver(address, sender: str, recipients: list[str], message: bytes,
                 timeout: float = 30) -> list[str]:
    """One LMTP transaction (address: (host, port) or a socket path); the final reply of each
    command and then one per accepted recipient."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        file = sock.makefile("rb")
        out = [last_line(file)]
        sock.sendall(b"LHLO client.test\r\n")
        out.append(last_line(file))
        sock.sendall(f"MAIL FROM:<{sender}>\r\n".encode())
        out.append(last_line(file))
        accepted = 0
        for rcpt in recipients:
            sock.sendall(f"RCPT TO:<{rcpt}>\r\n".encode())
            line = last_line(file)
            accepted += line.startswith("250")
            out.append(line)
        if not accepted:
            return out
        sock.sendall(b"DATA\r\n")
        out.append(last_line(file))
        body = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        body = re.sub(rb"(?m)^\.", b"..", body)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        sock.sendall(body + b".\r\n")
        for _ in range(accepted):
            out.append(last_line(file))
        sock.sendall(b"QUIT\r\n")
        read_reply(file)
        return out


def wait_for(predicate, timeout: float = 30.0):
    return wait_until(predicate, timeout, 0.1)


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)
