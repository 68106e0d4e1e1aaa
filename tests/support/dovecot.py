"""A private Debian Dovecot 2.3 instance for tests: one directory under /tmp holding its
dovecot.conf, run/ (base_dir), state/, dovecot.log and the passwd-file `users`.

`PrivateDovecot(conf, **values)` renders `conf` (str.format with `base` = the directory and
`values`) behind a fixed head (base_dir, state_dir, log_path, ssl = no), `start(ready)` runs
`dovecot -c` (output to start.log: the daemon's children would keep a pipe open) and waits
until `ready()`; `stop()` sends SIGTERM to the pid in run/master.pid, waits for it to end and
removes the directory. `PASSWD_FILE_DBS` is the passdb/userdb pair most tests use.
Dovecot runs as root and reads mail as the mail user, so the directory is mode 0777 unless
told otherwise. Security: loopback listeners on ports from free_port_base() only.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

from tests.conftest import require_tool
from tests.master.helpers import alive, kill_quietly, wait_until
from tests.support.processes import port_accepts, read_pid

HEAD = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = no
"""

PASSWD_FILE_DBS = """\
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = passwd-file
  args = {base}/users
}}
"""


class PrivateDovecot:
    """See the module docstring."""

    def __init__(self, conf: str, *, prefix: str = "roost-dovecot-", mode: int = 0o777,
                 **values):
        require_tool("dovecot")
        self.base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        os.chmod(self.base, mode)
        self.template = HEAD + conf
        self.values = values
        self.conf = os.path.join(self.base, "dovecot.conf")
        self.master_pid: int | None = None

    def path(self, *names: str) -> str:
        return os.path.join(self.base, *names)

    def make_dirs(self, *names: str, mode: int = 0o777) -> None:
        """Directories the mail user must write (mode set past the umask)."""
        for name in names:
            os.makedirs(self.path(name), exist_ok=True)
            os.chmod(self.path(name), mode)

    def write_users(self, users, password: str = "pw") -> None:
        """The passwd-file: `users` maps each name to its extra fields (or is a list of names);
        homes are under base/home."""
        extras = users if isinstance(users, dict) else dict.fromkeys(users, "")
        with open(self.path("users"), "w", encoding="utf-8") as handle:
            for user, extra in extras.items():
                handle.write(f"{user}:{{PLAIN}}{password}::::{self.base}/home/{user}::{extra}\n")

    def render(self, **values) -> str:
        return self.template.format(base=self.base, **{**self.values, **values})

    def write_conf(self, name: str = "dovecot.conf", **values) -> str:
        """The configuration rendered with `values` over the instance's, as file `name` (a
        copy for another reader, e.g. roost on the same settings); its path."""
        path = self.path(name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(self.render(**values))
        return path

    def start(self, ready=None, timeout: float = 10) -> None:
        """Start Dovecot on dovecot.conf and wait until `ready()` (default: the auth userdb
        socket exists); a port number waits for the port to accept."""
        if not os.path.exists(self.conf):
            self.write_conf()
        if isinstance(ready, int):
            port = ready
            ready = lambda: port_accepts(port)  # noqa: E731
        ready = ready or (lambda: os.path.exists(self.path("run", "auth-userdb")))
        with open(self.path("start.log"), "w") as errors:
            started = subprocess.run(["dovecot", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=errors, stderr=errors, timeout=30)
        assert started.returncode == 0, open(self.path("start.log")).read()
        assert wait_until(ready, timeout), self.read_log()[-2000:]
        self.master_pid = read_pid(self.path("run", "master.pid"))

    def stop(self) -> None:
        """SIGTERM to Dovecot's master (by its pid file), wait, remove the directory."""
        try:
            pid = read_pid(self.path("run", "master.pid")) or self.master_pid
            if pid is not None:
                kill_quietly(pid, signal.SIGTERM)
                wait_until(lambda: not alive(pid), 10)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PrivateDovecot":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def doveadm(self, *args: str, stdin: bytes | None = None) -> str:
        """doveadm on this instance's configuration; its output (fails the test on error)."""
        done = subprocess.run(["doveadm", "-c", self.conf, *args], input=stdin,
                              capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def read_log(self) -> str:
        try:
            with open(self.path("dovecot.log"), encoding="utf-8", errors="replace") as handle:
                return handle.read()
        except OSError:
            return ""


def quota_plugin(*rules: str) -> str:
    """The `plugin { quota = count:... }` block with `quota_rule`, `quota_rule2`... = rules,
    brace-escaped for PrivateDovecot's template."""
    names = ["quota_rule"] + [f"quota_rule{number}" for number in range(2, len(rules) + 1)]
    lines = "".join(f"  {name} = {rule}\n" for name, rule in zip(names, rules))
    return ("plugin {{\n  quota = count:User quota\n  quota_vsizes = yes\n" + lines + "}}\n")


AUTH_ONLY = """\
base_dir = {{dir}}/run
protocols = none
log_path = {{dir}}/dovecot.log
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
auth_verbose = {verbose}
default_internal_user = root
default_internal_group = root
default_login_user = root
ssl = no
passdb {{{{
  driver = passwd-file
  args = {{dir}}/users
}}}}
userdb {{{{
  driver = static
  args = uid=1000 gid=1000 home=/tmp
}}}}
service auth {{{{
  unix_listener {{dir}}/auth {{{{
    mode = {mode}
  }}}}
}}}}
"""


def auth_only_conf(mechanisms: str = "plain login", verbose: str = "yes",
                   mode: str = "0600") -> str:
    """A dovecot.conf template (`{dir}` left to fill) for Dovecot's auth service alone: no
    mail protocols, passwd-file users in DIR/users, the auth socket at DIR/auth."""
    return AUTH_ONLY.format(mechanisms=mechanisms, verbose=verbose, mode=mode)
