"""roost's smtpd authenticates SMTP clients through a real Debian Dovecot's auth socket.

Issue 4 ("roost as client of a real Dovecot's auth socket"; it landed with the SMTP server):
a private Dovecot 2.3 (root, base_dir in a temporary directory, passwd-file passdb, PLAIN
and LOGIN, `service auth { unix_listener }`) and a whole roost (`roost init` + `roost start`,
log in data/maillog) whose main.cf says `smtpd_sasl_type = dovecot` and `smtpd_sasl_path` = that Dovecot's
listener. swaks logs in with AUTH PLAIN and AUTH LOGIN (each run from its own 127.0.0.N, so
that Dovecot's per-address penalty delays nothing): the right password gets `235 2.7.0`, a
wrong one or an unknown user `535 5.7.8`; raw AUTH PLAIN with malformed responses (Dovecot
then names no user), a mechanism not offered and a cancelled LOGIN too. The same runs then go to a private Debian Postfix 3.7
(tests.support.postfix) using the same Dovecot socket: the AUTH replies and the failure log
lines (`warning: unknown[127.0.0.N]: SASL PLAIN authentication failed: (reason unavailable),
sasl_username=alice`, `sasl_username=(unavailable)`, `SASL LOGIN authentication aborted`)
must be identical. Every server is
stopped by pid in the finaliser.
`DovecotRoost` is shared with tests/interop/test_fail2ban_postfix.py.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import free_port_base, require_tool, run_roost
from tests.interop.test_postfix_sasl import _processes_with
from tests.interop.test_smtpd_clients import _greets
from tests.master.helpers import alive, kill_quietly, wait_until
from tests.support.dovecot import auth_only_conf

USER = "alice"
PASSWORD = "Secret-pw1"
CLIENT_IP = "127.0.0.2"

DOVECOT_CONF = auth_only_conf(verbose="no", mode="0666")


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class DovecotRoost:
    def __init__(self):
        # not under tmp_path: Dovecot's base_dir path must stay short (unix socket names)
        self.base = tempfile.mkdtemp(prefix="roost-smtpd-dovecot-", dir="/tmp")
        os.chmod(self.base, 0o755)  # the reference Postfix's smtpd (user postfix) uses the socket too
        self.dovecot_dir = os.path.join(self.base, "dovecot")
        self.socket = os.path.join(self.dovecot_dir, "auth")
        self.roost_dir = os.path.join(self.base, "roost")
        self.maillog = os.path.join(self.roost_dir, "data", "maillog")
        self.port_base = free_port_base()
        self.dovecot_master: int | None = None
        self.started = False

    @property
    def smtp(self) -> int:
        return self.port_base + 25

    def start(self) -> None:
        os.makedirs(os.path.join(self.dovecot_dir, "run"))
        with open(os.path.join(self.dovecot_dir, "users"), "w", encoding="utf-8") as handle:
            handle.write(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        conf = os.path.join(self.dovecot_dir, "dovecot.conf")
        with open(conf, "w", encoding="utf-8") as handle:
            handle.write(DOVECOT_CONF.format(dir=self.dovecot_dir))
        output_path = os.path.join(self.dovecot_dir, "start.log")
        with open(output_path, "wb") as output:  # not a pipe: the daemon keeps its descriptors
            started = subprocess.run(["dovecot", "-c", conf], stdin=subprocess.DEVNULL, stdout=output,
                                     stderr=output, timeout=30)
        with open(output_path, encoding="utf-8", errors="replace") as handle:
            assert started.returncode == 0, handle.read()
        self.dovecot_master = wait_until(
            lambda: _read_pid(os.path.join(self.dovecot_dir, "run", "master.pid")), 10)
        assert self.dovecot_master and wait_until(lambda: os.path.exists(self.socket), 10)

        init = run_roost("init", self.roost_dir, "--port-base", str(self.port_base),
                         "--user", "nobody@example.test:x")
        assert init.returncode == 0, init.stderr
        path = os.path.join(self.roost_dir, "main.cf")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        assert "smtpd_sasl_path = private/auth" in text, text
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text.replace("smtpd_sasl_path = private/auth", f"smtpd_sasl_path = {self.socket}")
                         + "\nsmtpd_error_sleep_time = 0\nsmtpd_tls_auth_only = no\n")
        started = run_roost("-c", self.roost_dir, "start", timeout=60)  # logs to data/maillog
        self.started = True
        assert started.returncode == 0, started.stderr
        assert wait_until(lambda: _greets(self.smtp), 15), self.roost_log()

    def roost_log(self) -> str:
        text = ""
        if os.path.exists(self.maillog):
            with open(self.maillog, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        return text

    def stop(self) -> None:
        if self.started:
            run_roost("-c", self.roost_dir, "stop", timeout=30)
            if not wait_until(lambda: not _processes_with(self.roost_dir), 10):
                for pid in _processes_with(self.roost_dir):
                    kill_quietly(pid, signal.SIGKILL)
        if self.dovecot_master is not None and alive(self.dovecot_master):
            kill_quietly(self.dovecot_master, signal.SIGTERM)
            if not wait_until(lambda: not alive(self.dovecot_master), 10):
                kill_quietly(self.dovecot_master, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)


def started_stack():
    if os.geteuid() != 0:
        pytest.fail("Dovecot with a private base_dir runs as root here (CI runs the suite as root)",
                    pytrace=False)
    for tool in ("dovecot", "swaks"):
        require_tool(tool)
    stack = DovecotRoost()
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture
def stack():
    inst = started_stack()
    try:
        yield inst
    finally:
        inst.stop()


def swaks_auth(port: int, mechanism: str, user: str, password: str, source: str = CLIENT_IP) -> str:
    done = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--local-interface", source,
         "--ehlo", "client.example.test", "--quit-after", "AUTH", "--auth", mechanism,
         "--auth-user", user, "--auth-password", password],
        capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


def failure_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "authentication failed" in line]


def _attempts(port: int, network: str) -> dict:
    """The swaks runs at once (perl start-up dominates), each from its own address in
    `network` (127.0.0.N prefix): Dovecot's per-address penalty never delays one by another."""
    keys = (("PLAIN", USER, PASSWORD), ("PLAIN", USER, "wrong-password"), ("LOGIN", USER, PASSWORD),
            ("LOGIN", USER, "wrong-password"), ("PLAIN", "carol", PASSWORD))
    with ThreadPoolExecutor(len(keys)) as pool:
        futures = {key: pool.submit(swaks_auth, port, *key, f"{network}{index}") for index, key in enumerate(keys)}
    return {key: future.result() for key, future in futures.items()}


# malformed PLAIN (no NUL at all / no password part: Dovecot names no user), a mechanism that is
# not offered, a LOGIN the client cancels
RAW_DIALOGUES = (["AUTH PLAIN Z2FyYmFnZQ=="], ["AUTH PLAIN AGFsaWNl"], ["AUTH FOO"], ["AUTH LOGIN", "*"])


def _raw_auth(port: int, sources: tuple[str, ...]) -> list[str]:
    """AUTH PLAIN with malformed initial responses over a raw socket, one source each."""
    answers = []
    for commands, source in zip(RAW_DIALOGUES, sources):
        with socket.create_connection(("127.0.0.1", port), timeout=20, source_address=(source, 0)) as conn:
            stream = conn.makefile("rb")
            stream.readline()
            conn.sendall(b"EHLO client.example.test\r\n")
            while (line := stream.readline()) and line[3:4] == b"-":
                pass
            for command in commands:
                conn.sendall(f"{command}\r\n".encode())
                answer = stream.readline().decode().rstrip("\r\n")
                answers.append(answer if not answer.startswith("334 ") else "334")  # challenge text varies
            conn.sendall(b"QUIT\r\n")
            stream.readline()
    return answers


def _sasl_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if ": SASL " in line]


def _failures(read, count: int) -> list[str]:
    def logged():
        found = _sasl_lines(read())
        return found if len(found) >= count else None
    found = wait_until(logged, 10) or _sasl_lines(read())
    # one client address per run (Dovecot's per-address penalty would slow repeated failures)
    return sorted(re.sub(r"unknown\[127\.0\.0\.\d+\]", "unknown[IP]", re.sub(r"^.*?smtpd\[\d+\]: ", "", line))
                  for line in found)


def test_roost_smtpd_authenticates_through_real_dovecot(stack):
    """roost's replies and failure log lines against those of Debian's Postfix 3.7 using the
    same Dovecot auth socket with the same swaks runs."""
    from tests.support.postfix import PrivatePostfix

    require_tool("postfix")
    results = _attempts(stack.smtp, "127.0.0.2")  # 127.0.0.20-24
    for (mech, user, pw), out in results.items():
        if pw == PASSWORD and user == USER:
            assert "<-  235 2.7.0 Authentication successful" in out, (mech, out)
        else:
            assert re.search(r"<\*\* +535 5\.7\.8 Error: authentication failed: ", out), (mech, out)
    roost_raw = _raw_auth(stack.smtp, ("127.0.0.40", "127.0.0.41", "127.0.0.42", "127.0.0.43"))
    roost_failures = _failures(stack.roost_log, 7)

    postfix = PrivatePostfix(f"smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
                             f"smtpd_sasl_path = {stack.socket}\nsmtpd_peername_lookup = no\n",
                             smtpd_port=stack.port_base + 52, prefix="roost-smtpd-dovecot-pf-")
    try:
        postfix.start()
        expected = _attempts(postfix.port, "127.0.0.3")  # 127.0.0.30-34
        postfix_raw = _raw_auth(postfix.port, ("127.0.0.50", "127.0.0.51", "127.0.0.52", "127.0.0.53"))

        def read_postfix_log():
            if not os.path.exists(postfix.log):
                return ""
            with open(postfix.log, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        postfix_failures = _failures(read_postfix_log, 7)
    finally:
        postfix.stop()

    def reply_lines(out: str) -> list[str]:  # the AUTH exchange: server lines after the EHLO
        lines = [line for line in out.splitlines() if line.startswith(("<-", "<**"))]
        return [line for line in lines if re.match(r"<(-|\*\*) +(235|535|334) ", line)]
    for key in results:
        assert reply_lines(results[key]) == reply_lines(expected[key]), (key, results[key], expected[key])
    assert roost_raw == postfix_raw, (roost_raw, postfix_raw)
    assert len(postfix_failures) == 7, postfix_failures
    assert roost_failures == postfix_failures, (roost_failures, postfix_failures)
    assert all(line.startswith("warning: unknown[IP]: SASL ") for line in roost_failures), roost_failures
