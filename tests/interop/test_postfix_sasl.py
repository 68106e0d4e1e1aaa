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
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import free_port_base, require_tool, run_roost
from tests.master.helpers import wait_until
from tests.support.postfix import NO_LOCAL_MAIL, PrivatePostfix
from tests.support.processes import processes_with as _processes_with, stop_roost

USER = "alice@example.test"
PASSWORD = "Secret-pw1"
SMTP_OFFSET = 52  # inside the port block free_port_base claimed, unused by roost init

MAIN_CF = NO_LOCAL_MAIL + """\
myhostname = mx.example.test
default_transport = error:never relays
smtpd_tls_security_level = none
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {socket}
"""


class Stack:
    def __init__(self, base: str, port_base: int):
        self.base = base
        self.roost_dir = os.path.join(base, "roost")
        self.socket = os.path.join(self.roost_dir, "spool", "private", "auth")
        self.port = port_base + SMTP_OFFSET
        self.postfix = PrivatePostfix(MAIN_CF.format(socket=self.socket), smtpd_port=self.port,
                                      syslog_name="postfix-roost-sasl",
                                      directory=os.path.join(base, "postfix"))

    def roost_log(self) -> str:
        path = os.path.join(self.roost_dir, "data", "maillog")
        return open(path, encoding="utf-8").read() if os.path.exists(path) else ""

    def read_postfix_log(self) -> str:
        return self.postfix.read_log()


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
        inst.postfix.start()
        yield inst
    finally:
        inst.postfix.stop()
        stop_roost(inst.roost_dir)
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
