"""A private Debian Postfix for differential cleanup tests (not a test module).

The instance keeps every accepted message queued (`defer_transports = smtp`: the queue
manager never tries the unreachable relayhost), so each message's queue file can be read
back with the real `postcat -q`.
Runs as root (Postfix's master starts as root, smtpd runs as `postfix`); the directory is
under /tmp (mode 0755) because Postfix's daemons must reach it. Stopped by the fixture with
`postfix stop`, then its session's processes are killed by pid if any remain.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time

from tests.master.helpers import alive, kill_quietly, wait_until

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
syslog_name = postfix-qref
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
default_transport = smtp
relayhost = [127.0.0.1]:9
defer_transports = smtp
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
showq     unix  n       -       n       -       -       showq
smtp      unix  -       -       n       -       -       smtp
pickup    unix  n       -       n       60      1       pickup
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"""

LOG_PREFIX = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ postfix-qref/(\w+)\[\d+\]: ")


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def _session_members(pid: int) -> list[int]:
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


class PostfixRef:
    def __init__(self, port: int, extra_main_cf: str) -> None:
        self.base = tempfile.mkdtemp(prefix="roost-cleanup-ref-", dir="/tmp")
        os.chmod(self.base, 0o755)
        self.etc = os.path.join(self.base, "etc")
        self.spool = os.path.join(self.base, "spool")
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, "postfix.log")
        self.port = port
        self.extra = extra_main_cf
        self.master: int | None = None

    def path(self, name: str) -> str:
        return os.path.join(self.base, name)

    def write_file(self, name: str, text: str) -> str:
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o644)
        return path

    def start(self) -> None:
        for path in (self.etc, self.spool, self.data):
            os.makedirs(path, exist_ok=True)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        with open(os.path.join(self.etc, "main.cf"), "w", encoding="utf-8") as handle:
            handle.write(MAIN_CF.format(etc=self.etc, spool=self.spool, data=self.data, log=self.log,
                                        base=self.base) + self.extra)
        with open(os.path.join(self.etc, "master.cf"), "w", encoding="utf-8") as handle:
            handle.write(MASTER_CF.format(port=self.port))
        for action in ("check", "start"):
            done = subprocess.run(["postfix", "-c", self.etc, action], capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, f"postfix {action}: {done.stdout}{done.stderr}"
        pid_file = os.path.join(self.spool, "pid", "master.pid")
        self.master = wait_until(lambda: _read_pid(pid_file), 10)
        assert self.master, "Postfix wrote no master.pid"
        assert wait_until(self._listening, 10), "Postfix smtpd is not listening"

    def _listening(self) -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=2) as client:
                client.noop()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.master is not None:
            members = _session_members(self.master)
            subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=30)
            if not wait_until(lambda: not any(alive(pid) for pid in members), 10):
                for pid in members:
                    kill_quietly(pid, signal.SIGKILL)
        shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ use
    def send(self, sender: str, recipients: list[str], message: bytes, *, helo: str = "client.example.org",
             source: str = "127.0.0.1") -> tuple[int, str]:
        """(code, text) of the final reply to DATA (or of a refused recipient)."""
        client = smtplib.SMTP(timeout=30, source_address=(source, 0))
        try:
            client.connect("127.0.0.1", self.port)
            client.ehlo(helo)
            code, text = client.mail(sender)
            if code >= 400:
                return code, text.decode()
            for recipient in recipients:
                code, text = client.rcpt(recipient)
                if code >= 400:
                    return code, text.decode()
            code, text = client.data(message)
            return code, text.decode()
        finally:
            try:
                client.quit()
            except smtplib.SMTPException:
                client.close()

    def sendmail(self, args: list[str], message: bytes) -> str:
        """Submit with Postfix's own sendmail(1) (as root); returns the queue ID pickup logged
        for the envelope sender `-f` given in `args` (each call uses a distinct sender)."""
        sender = args[args.index("-f") + 1]
        env = dict(os.environ, MAIL_CONFIG=self.etc)
        done = subprocess.run(["/usr/sbin/sendmail", *args], input=message, env=env, capture_output=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr
        lines = self.log_lines(f"from=<{sender}>", program="pickup", wait=15)
        assert lines, f"pickup never logged from=<{sender}>"
        return lines[-1].split(":", 1)[0]

    def postcat(self, queue_id: str, *flags: str) -> str:
        """postcat -q output; retried while the queue manager moves the file between queues."""
        for _attempt in range(50):
            done = subprocess.run(["postcat", "-c", self.etc, *flags, "-q", queue_id], capture_output=True,
                                  timeout=30)
            if done.returncode == 0:
                return done.stdout.decode("utf-8", "surrogateescape")
            time.sleep(0.1)
        return done.stderr.decode("utf-8", "replace")

    def log_lines(self, needle: str, program: str = "cleanup", wait: float = 5.0) -> list[str]:
        """Log texts (prefix stripped) of `program` containing `needle` (a queue ID...)."""
        queue_id = needle
        def found():
            lines = []
            if os.path.exists(self.log):
                with open(self.log, encoding="utf-8", errors="replace") as handle:
                    for line in handle:
                        match = LOG_PREFIX.match(line)
                        if match and match.group(1) == program and queue_id in line:
                            lines.append(line[match.end():].rstrip("\n"))
            return lines
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            lines = found()
            if lines:
                return lines
            time.sleep(0.05)
        return found()
