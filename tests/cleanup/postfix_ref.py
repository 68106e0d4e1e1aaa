"""A private Debian Postfix for differential cleanup tests (not a test module).

The instance keeps every accepted message queued (`defer_transports = smtp`: the queue
manager never tries the unreachable relayhost), so each message's queue file can be read
back with the real `postcat -q`. The instance itself (directories, start, stop by pid) is
tests.support.postfix.PrivatePostfix; this module adds the cleanup-specific settings,
services and ways in (SMTP, sendmail(1)) and out (postcat, log lines).
Needs root (Postfix's master starts as root, smtpd runs as `postfix`).
"""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import time

import pytest

from tests.conftest import require_tool
from tests.master.helpers import wait_until
from tests.support.postfix import CORE_SERVICES, NO_LOCAL_MAIL, PrivatePostfix

SYSLOG_NAME = "postfix-qref"
MAIN_CF = NO_LOCAL_MAIL + """\
default_transport = smtp
relayhost = [127.0.0.1]:9
defer_transports = smtp
"""

# the tables SHARED_MAIN_CF (tests.cleanup.test_differential) names
TABLES = ("header_checks", "body_checks", "canonical", "recipient_canonical", "sender_canonical",
          "virtual", "sender_bcc", "recipient_bcc")

LOG_PREFIX = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ " + SYSLOG_NAME + r"/(\w+)\[\d+\]: ")


class PostfixRef(PrivatePostfix):
    """`extra_main_cf` (also settable as `.extra` until start) follows MAIN_CF."""

    FIXED_MAIN_CF = MAIN_CF

    def __init__(self, port: int, extra_main_cf: str) -> None:
        super().__init__(extra_main_cf, smtpd_port=port, syslog_name=SYSLOG_NAME,
                         prefix="roost-cleanup-ref-",
                         services=CORE_SERVICES + ("showq", "smtp", "pickup", "tlsmgr"))

    @property
    def extra(self) -> str:
        return self.main_cf

    @extra.setter
    def extra(self, text: str) -> None:
        self.main_cf = text

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
        def found():
            lines = []
            for line in self.read_log().split("\n"):
                match = LOG_PREFIX.match(line)
                if match and match.group(1) == program and needle in line:
                    lines.append(line[match.end():])
            return lines
        return wait_until(found, wait)


def started_reference(user: str, port: int, tables: dict[str, str] | None = None,
                      extra: str = "") -> PostfixRef:
    """A started PostfixRef with SHARED_MAIN_CF (tests.cleanup.test_differential) and `extra`,
    every table it names written (empty unless `tables` gives a text); stopped by the caller.
    Fails `user` (the test module's name) unless run as root with Postfix installed."""
    from tests.cleanup.test_differential import SHARED_MAIN_CF

    require_tool("postfix")
    if os.geteuid() != 0:
        pytest.fail(f"{user} starts a private Postfix and must run as root", pytrace=False)
    ref = PostfixRef(port, "")
    try:
        for name in TABLES:
            ref.write_file(name, (tables or {}).get(name, ""))
        ref.extra = SHARED_MAIN_CF.format(base=ref.base) + extra
        ref.start()
    except BaseException:
        ref.stop()
        raise
    return ref
