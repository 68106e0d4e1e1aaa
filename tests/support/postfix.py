"""A private Debian Postfix 3.7 instance for tests: its own config, queue and data directories
under one directory in /tmp, smtpd on loopback high ports, its log in `maillog_file`.

`PrivatePostfix(main_cf, smtpd_port=..., services=...)` writes main.cf (a fixed base that
points every directory at the instance and keeps DNS out, then the caller's settings; a later
setting replaces an earlier one of the same name, as Postfix reads main.cf) and master.cf (the
smtpd listener lines, then the named standard services of `SERVICES`), runs `postfix check`
and `postfix start`, waits for master.pid and the listening ports, and `stop()` runs
`postfix stop` and SIGKILLs the master's session members left after 10 s, by pid.
Needs root: Postfix's master starts as root, its daemons run as `postfix`; the directory is
mode 0755 because they must reach it. Security: loopback only, ports from free_port_base().
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile

from tests.master.helpers import wait_until
from tests.support.processes import kill_all, port_listening, read_pid, session_members

BASE_MAIN_CF = """\
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
syslog_name = {syslog_name}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
"""

# master.cf lines of the standard services (master(5) columns: type private unpriv chroot
# wakeup maxproc command); an instance names the ones it needs.
SERVICES = {name: line for line in """\
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       -       0       flush
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
showq     unix  n       -       n       -       -       showq
pickup    unix  n       -       n       60      1       pickup
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
""".splitlines() for name in [line.split()[0]]}

# what every instance runs: mail is received, queued, rewritten, bounced or discarded
CORE_SERVICES = ("cleanup", "qmgr", "rewrite", "bounce", "defer", "trace", "verify", "proxymap",
                 "error", "retry", "discard", "anvil", "scache", "postlog")

# nothing is local: no local domain, no local recipients, no aliases; the loopback may relay
NO_LOCAL_MAIL = """\
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
"""

_ENTRY = re.compile(r"^([A-Za-z0-9_]+)\s*=")


def compose_main_cf(*parts: str) -> str:
    """main.cf text from `parts` in order; an entry (with its continuation lines) replaces an
    earlier one of the same name, in the earlier one's place (Postfix keeps the last value)."""
    entries: dict[str, str] = {}
    loose: list[str] = []  # comment lines, written after the entries
    current = None
    for part in parts:
        for line in part.splitlines():
            match = _ENTRY.match(line)
            if match:
                current = match.group(1)
                entries[current] = line
            elif current is not None and line[:1] in (" ", "\t") and line.strip():
                entries[current] += "\n" + line
            else:
                loose.append(line)
    return "".join(text + "\n" for text in entries.values()) + "".join(
        line + "\n" for line in loose if line.strip())


class PrivatePostfix:
    """See the module docstring. `directory`: where the instance lives (made and removed by
    the instance when omitted); `smtpd_port`: one plain smtpd on 127.0.0.1 (subclasses with
    other listeners override `listener_lines`); `services`: names in SERVICES or whole
    master.cf lines. Subclasses put their own fixed settings in `FIXED_MAIN_CF` (between
    the base and `main_cf`)."""

    FIXED_MAIN_CF = ""

    def __init__(self, main_cf: str = "", *, smtpd_port: int | None = None,
                 services=CORE_SERVICES, syslog_name: str = "postfix-roost",
                 directory: str | None = None, prefix: str = "roost-postfix-",
                 log_name: str = "postfix.log"):
        self.owns_directory = directory is None
        self.base = directory or tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        os.makedirs(self.base, exist_ok=True)
        os.chmod(self.base, 0o755)
        self.etc = os.path.join(self.base, "etc")
        self.spool = os.path.join(self.base, "spool")
        self.data = os.path.join(self.base, "data")
        self.log = os.path.join(self.base, log_name)
        self.main_cf = main_cf
        self.port = smtpd_port
        self.services = tuple(services)
        self.syslog_name = syslog_name
        self.master_pid: int | None = None
        for path in (self.etc, self.spool, self.data):
            os.makedirs(path, exist_ok=True)

    # ------------------------------------------------------------------ configuration
    def path(self, name: str) -> str:
        return os.path.join(self.base, name)

    def write_file(self, name: str, text: str) -> str:
        """A file in the instance directory, readable by Postfix's daemons."""
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(path, 0o644)
        return path

    def main_cf_text(self) -> str:
        return compose_main_cf(BASE_MAIN_CF.format(
            etc=self.etc, spool=self.spool, data=self.data, log=self.log, base=self.base,
            syslog_name=self.syslog_name), self.FIXED_MAIN_CF, self.main_cf)

    def listener_lines(self) -> str:
        return f"127.0.0.1:{self.port} inet n - n - - smtpd\n" if self.port else ""

    def listening_ports(self) -> list[int]:
        return [self.port] if self.port else []

    def master_cf_text(self) -> str:
        return self.listener_lines() + "".join(
            (SERVICES[item] if item in SERVICES else item) + "\n" for item in self.services)

    def write_config(self) -> str:
        """Write main.cf and master.cf; the main.cf text."""
        text = self.main_cf_text()
        with open(os.path.join(self.etc, "main.cf"), "w", encoding="utf-8") as handle:
            handle.write(text)
        with open(os.path.join(self.etc, "master.cf"), "w", encoding="utf-8") as handle:
            handle.write(self.master_cf_text())
        return text

    # ------------------------------------------------------------------ life cycle
    def start(self, *, check: bool = True) -> None:
        """Start Postfix (`postfix check` first unless `check` is false: `postfix start` runs
        the fatal checks itself) and wait for master.pid and every smtpd port."""
        postfix = pwd.getpwnam("postfix")
        os.chown(self.data, postfix.pw_uid, postfix.pw_gid)
        self.write_config()
        for action in ("check", "start") if check else ("start",):
            done = subprocess.run(["postfix", "-c", self.etc, action], capture_output=True,
                                  text=True, timeout=30)
            assert done.returncode == 0, \
                f"postfix {action}: {done.stdout}{done.stderr}{self.read_log()[-2000:]}"
        pid_file = os.path.join(self.spool, "pid", "master.pid")
        self.master_pid = wait_until(lambda: read_pid(pid_file), 10)
        assert self.master_pid, "Postfix wrote no master.pid"
        for port in self.listening_ports():
            assert wait_until(lambda: port_listening(port), 10), \
                f"Postfix does not listen on {port}: {self.read_log()}"

    def stop(self) -> None:
        """`postfix stop`, then SIGKILL the master's session members left after 10 s; the
        directory is removed when the instance made it."""
        try:
            if self.master_pid is not None:
                members = session_members(self.master_pid)
                subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True, timeout=30)
                kill_all(members)
                self.master_pid = None
        finally:
            if self.owns_directory:
                shutil.rmtree(self.base, ignore_errors=True)

    # ------------------------------------------------------------------ observation
    def read_log(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""

    def wait_log(self, needle: str, timeout: float = 20) -> str:
        """The log once it contains `needle` (or as it is after `timeout` seconds)."""
        wait_until(lambda: needle in self.read_log(), timeout, 0.1)
        return self.read_log()
