"""A private Debian Postfix instance used as the reference for local delivery, bounces and
smtp(8) log lines: its own config/queue/data/spool under a /tmp directory, an smtpd on a
loopback high port, its log in maillog_file. Started and stopped (by pid) by the test.
Needs root (Postfix's master runs as root)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import tempfile

from tests.conftest import require_tool
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
syslog_name = postfix-roost-oracle
myhostname = oracle.test
mydomain = oracle.test
myorigin = oracle.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
mydestination = oracle.test, localhost
alias_maps = hash:{etc}/aliases
alias_database = hash:{etc}/aliases
local_recipient_maps =
mail_spool_directory = {mail}
home_mailbox =
mailbox_command =
biff = no
smtpd_tls_security_level = none
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
{extra}
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PrivatePostfix:
    def __init__(self, port: int, extra: str = "", aliases: str = ""):
        if os.geteuid() != 0:
            raise AssertionError("the Postfix oracle needs root (Postfix's master runs as root)")
        require_tool("postfix")
        self.base = tempfile.mkdtemp(prefix="roost-oracle-")
        os.chmod(self.base, 0o755)
        self.etc = os.path.join(self.base, "etc")
        self.spool = os.path.join(self.base, "spool")
        self.data = os.path.join(self.base, "data")
        self.mail = os.path.join(self.base, "mail")
        self.log = os.path.join(self.base, "maillog")
        self.port = port
        self.master: int | None = None
        try:
            self._prepare(extra, aliases)
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def _prepare(self, extra: str, aliases: str) -> None:
        for path in (self.etc, self.spool, self.data, self.mail):
            os.makedirs(path)
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        os.chmod(self.mail, 0o1777)
        overridden = {line.split("=")[0].strip() for line in extra.splitlines() if "=" in line}
        template = "\n".join(line for line in MAIN_CF.split("\n")
                             if line.split("=")[0].strip() not in overridden or "{" in line)
        with open(os.path.join(self.etc, "main.cf"), "w") as handle:
            handle.write(template.format(etc=self.etc, spool=self.spool, data=self.data, log=self.log,
                                        mail=self.mail, extra=extra, base=self.base))
        with open(os.path.join(self.etc, "master.cf"), "w") as handle:
            handle.write(MASTER_CF.format(port=self.port).replace("1000?", "-"))
        with open(os.path.join(self.etc, "aliases"), "w") as handle:
            handle.write(aliases)
        subprocess.run(["postalias", "-c", self.etc, os.path.join(self.etc, "aliases")], check=True, timeout=30)

    def start(self) -> None:
        for action in ("check", "start"):
            done = subprocess.run(["postfix", "-c", self.etc, action], capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, f"postfix {action}: {done.stdout}{done.stderr}"
        pid_file = os.path.join(self.spool, "pid", "master.pid")
        self.master = wait_until(lambda: _read_pid(pid_file), 10)
        assert self.master, "Postfix wrote no master.pid"

    def send(self, sender: str, recipients: list[str], message: bytes, **mail_options) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail(sender, recipients, message, **mail_options)

    def read_log(self) -> str:
        return open(self.log, encoding="utf-8", errors="replace").read() if os.path.exists(self.log) else ""

    def wait_log(self, needle: str, timeout: float = 20) -> str:
        wait_until(lambda: needle in self.read_log(), timeout, 0.1)
        return self.read_log()

    def stop(self) -> None:
        try:
            if self.master is not None:
                members = _session_members(self.master)
                subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=30)
                if not wait_until(lambda: not any(alive(pid) for pid in members), 10):
                    for pid in members:
                        kill_quietly(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


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
