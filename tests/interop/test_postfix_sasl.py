"""Debian's real Postfix authenticates SMTP clients against roost's Dovecot auth socket.

A roost instance (`roost init` + `roost start`) serves `service auth { unix_listener }` with
`user = postfix` (as a Dovecot site configures it for Postfix); a private Postfix instance
(its own config, queue and data directories, a loopback high port) has
`smtpd_sasl_type = dovecot` and `smtpd_sasl_path` = roost's absolute socket path; swaks then
logs in with AUTH PLAIN and AUTH LOGIN. Needs root (Postfix's master runs as root and its
smtpd as `postfix`): as another user the test fails with a message, it never skips.
Both servers are stopped by pid in the finaliser; nothing is left running.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import free_port_base, require_tool, run_roost
from tests.master.helpers import alive, kill_quietly, wait_until

USER = "alice@example.test"
PASSWORD = "Secret-pw1"
SMTP_OFFSET = 52  # inside the port block free_port_base claimed, unused by roost init

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {log}
maillog_file_prefixes = {base}
syslog_name = postfix-roost-sasl
myhostname = mx.example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
default_transport = error:never relays
smtpd_tls_security_level = none
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {socket}
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _processes_with(marker: str) -> list[int]:
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


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _session_members(pid: int) -> list[int]:
    """Processes in the session `pid` leads (Postfix's master and the daemons it forked)."""
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


class Stack:
    def __init__(self, base: str, port_base: int):
        self.base = base
        self.roost_dir = os.path.join(base, "roost")
        self.socket = os.path.join(self.roost_dir, "spool", "private", "auth")
        self.etc = os.path.join(base, "postfix", "etc")
        self.spool = os.path.join(base, "postfix", "spool")
        self.data = os.path.join(base, "postfix", "data")
        self.postfix_log = os.path.join(base, "postfix", "postfix.log")
        self.port = port_base + SMTP_OFFSET
        self.postfix_master: int | None = None

    def roost_log(self) -> str:
        path = os.path.join(self.roost_dir, "data", "maillog")
        return open(path, encoding="utf-8").read() if os.path.exists(path) else ""

    def read_postfix_log(self) -> str:
        if not os.path.exists(self.postfix_log):
            return ""
        return open(self.postfix_log, encoding="utf-8", errors="replace").read()

    def start_postfix(self) -> None:
        for path in (self.etc, self.spool, self.data):
            os.makedirs(path, exist_ok=True)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w", encoding="utf-8") as handle:
            handle.write(MAIN_CF.format(etc=self.etc, spool=self.spool, data=self.data,
                                        log=self.postfix_log, base=self.base,
                                        socket=self.socket))
        with open(os.path.join(self.etc, "master.cf"), "w", encoding="utf-8") as handle:
            handle.write(MASTER_CF.format(port=self.port))
        for action in ("check", "start"):
            done = subprocess.run(["postfix", "-c", self.etc, action], capture_output=True,
                                  text=True, timeout=30)
            assert done.returncode == 0, f"postfix {action}: {done.stdout}{done.stderr}"
        pid_file = os.path.join(self.spool, "pid", "master.pid")
        self.postfix_master = wait_until(lambda: _read_pid(pid_file), 10)
        assert self.postfix_master, "Postfix wrote no master.pid"

    def stop_postfix(self) -> None:
        if self.postfix_master is None:
            return
        members = _session_members(self.postfix_master)
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=30)
        if not wait_until(lambda: not any(alive(pid) for pid in members), 10):
            for pid in members:
                kill_quietly(pid, signal.SIGKILL)

    def stop_roost(self) -> None:
        run_roost("-c", self.roost_dir, "stop", timeout=30)
        if not wait_until(lambda: not _processes_with(self.roost_dir), 10):
            for pid in _processes_with(self.roost_dir):
                kill_quietly(pid, signal.SIGKILL)


@pytest.fixture
def stack():
    if os.geteuid() != 0:
        pytest.fail("test_postfix_sasl must run as root: Postfix's master starts as root and "
                    "its smtpd runs as user postfix (CI runs the suite as root)", pytrace=False)
    for tool in ("postfix", "swaks"):
        require_tool(tool)
    # Not under pytest's tmp_path: its parents are mode 0700, and Postfix's smtpd (user
    # postfix) must reach the socket by its absolute path.
    base = tempfile.mkdtemp(prefix="roost-postfix-sasl-", dir="/tmp")
    os.chmod(base, 0o755)
    inst = Stack(base, free_port_base())
    try:
        init = run_roost("init", inst.roost_dir, "--port-base", str(inst.port - SMTP_OFFSET),
                         "--user", f"{USER}:{PASSWORD}")
        assert init.returncode == 0, init.stderr
        _configure_auth_socket(inst)
        started = run_roost("-c", inst.roost_dir, "start", timeout=60)
        assert started.returncode == 0, started.stderr
        assert wait_until(lambda: os.path.exists(inst.socket), 10), started.stderr
        inst.start_postfix()
        yield inst
    finally:
        inst.stop_postfix()
        inst.stop_roost()
        leftovers = _processes_with(inst.roost_dir)
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"processes left running: {leftovers}"


def _configure_auth_socket(inst: Stack) -> None:
    """The socket as a Dovecot site sets it up for Postfix: owned by postfix, mode 0660."""
    path = os.path.join(inst.roost_dir, "dovecot.conf")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    block = f"  unix_listener {inst.socket} {{\n    mode = 0660\n    user = root\n    group = root\n"
    assert block in text, text
    text = text.replace(block, f"  unix_listener {inst.socket} {{\n    mode = 0660\n"
                               "    user = postfix\n    group = postfix\n")
    text += "\nauth_verbose = yes\nauth_failure_delay = 1 secs\n"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    # Postfix's own layout: the private/ directory is closed to others but the socket in it
    # must be reachable by smtpd (user postfix).
    os.chmod(os.path.join(inst.roost_dir, "spool", "private"), 0o711)


def swaks(port: int, mechanism: str, user: str, password: str) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--ehlo", "client.example.test",
         "--auth", mechanism, "--auth-user", user, "--auth-password", password,
         "--quit-after", "AUTH", "--timeout", "20"],
        capture_output=True, text=True, timeout=40)
    return done.stdout + done.stderr, time.monotonic() - started


def test_postfix_authenticates_through_roost(stack):
    attempts = {
        "plain_ok": ("PLAIN", USER, PASSWORD),
        "login_ok": ("LOGIN", USER, PASSWORD),
        "short_name_ok": ("PLAIN", "alice", PASSWORD),  # auth_default_realm adds the domain
        "plain_wrong": ("PLAIN", USER, "wrong-password"),
        "login_wrong": ("LOGIN", USER, "wrong-password"),
        "plain_unknown": ("PLAIN", "nobody@example.test", PASSWORD),
    }
    with ThreadPoolExecutor(len(attempts)) as pool:
        futures = {name: pool.submit(swaks, stack.port, *args) for name, args in attempts.items()}
        results = {name: future.result() for name, future in futures.items()}

    for name in ("plain_ok", "login_ok", "short_name_ok"):
        output, _elapsed = results[name]
        assert "<-  235 2.7.0 Authentication successful" in output, (name, output,
                                                                   stack.roost_log())
    for name in ("plain_wrong", "login_wrong", "plain_unknown"):
        output, elapsed = results[name]
        assert "<** 535 5.7.8 Error: authentication failed" in output, (name, output)
        assert elapsed >= 1.0, (name, elapsed)  # auth_failure_delay = 1 secs

    roost_log = stack.roost_log()
    assert f"auth: passwd-file({USER},127.0.0.1): Password mismatch" in roost_log, roost_log
    assert "auth: passwd-file(nobody@example.test,127.0.0.1): unknown user" in roost_log
    assert "Error" not in "\n".join(line for line in roost_log.splitlines() if " auth: " in line)
    postfix_log = wait_until(lambda: (text := stack.read_postfix_log()).count(
        "authentication failed") >= 3 and text, 10)
    assert postfix_log, stack.read_postfix_log()
    assert "SASL PLAIN authentication failed" in postfix_log
    assert "SASL LOGIN authentication failed" in postfix_log
    assert "fatal" not in postfix_log and "panic" not in postfix_log, postfix_log
