"""A private Debian Postfix instance used as the reference for local delivery, bounces and
smtp(8) log lines: tests.support.postfix.PrivatePostfix with local(8) delivering to an mbox
spool under the instance directory, an aliases table, fast retries and every delivery
service. Started and stopped (by pid) by the test. Needs root (Postfix's master runs as root)."""

from __future__ import annotations

import os
import smtplib
import subprocess

from tests.conftest import require_tool
from tests.support.postfix import CORE_SERVICES, PrivatePostfix as _PrivatePostfix

MAIN_CF = """\
myhostname = oracle.test
mydomain = oracle.test
myorigin = oracle.test
mynetworks = 127.0.0.0/8
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
"""

SERVICES = CORE_SERVICES + ("pickup", "flush", "smtp", "relay", "local", "virtual", "lmtp",
                            "tlsmgr    unix  -       -       n       -       1       tlsmgr")


class PrivatePostfix(_PrivatePostfix):
    """`extra` main.cf settings override MAIN_CF's; `aliases` is the aliases(5) text."""

    def __init__(self, port: int, extra: str = "", aliases: str = ""):
        if os.geteuid() != 0:
            raise AssertionError("the Postfix oracle needs root (Postfix's master runs as root)")
        require_tool("postfix")
        super().__init__(extra, smtpd_port=port, services=SERVICES, syslog_name="postfix-roost-oracle",
                         prefix="roost-oracle-", log_name="maillog")
        try:
            self.mail = self.path("mail")
            os.makedirs(self.mail)
            os.chmod(self.mail, 0o1777)
            self.FIXED_MAIN_CF = MAIN_CF.format(etc=self.etc, mail=self.mail)
            self.write_config()  # postalias reads main.cf
            with open(os.path.join(self.etc, "aliases"), "w") as handle:
                handle.write(aliases)
            subprocess.run(["postalias", "-c", self.etc, os.path.join(self.etc, "aliases")], check=True,
                           timeout=30)
        except BaseException:
            self.stop()
            raise

    def send(self, sender: str, recipients: list[str], message: bytes, **mail_options) -> None:
        with smtplib.SMTP("127.0.0.1", self.port, timeout=20) as client:
            client.sendmail(sender, recipients, message, **mail_options)
