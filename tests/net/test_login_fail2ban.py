"""fail2ban's stock Dovecot filter finds roost's pop3-login failure lines, and only those.

roost.net.pop3 (in this process) logs through roost.log in the syslog form of the mail log
(`... HOST dovecot: pop3-login: Disconnected: ...`). Clients from three addresses fail in the
three ways Dovecot logs (wrong password then a dropped connection; a failure then QUIT; a
plaintext login refused without TLS), one client logs in; Debian's `fail2ban-regex` with
/etc/fail2ban/filter.d/dovecot.conf must match exactly the three failure lines, for those hosts.
"""

from __future__ import annotations

import os
import re
import subprocess

from roost.log import LogSetup, LogSink
from tests.conftest import require_tool
from tests.net.pop3_harness import PASSWORD, RoostPop3, talk, wait_for, write_setup

FILTER = "/etc/fail2ban/filter.d/dovecot.conf"


def test_fail2ban_matches_login_failures(tmp_path):
    fail2ban_regex = require_tool("fail2ban-regex")
    assert os.path.exists(FILTER), f"{FILTER} is missing: install Debian's fail2ban package"
    conf = write_setup(tmp_path,
                       extra="login_trusted_networks = 127.0.0.31 127.0.0.32")
    maillog = tmp_path / "maillog"
    logs = LogSetup(LogSink(str(maillog)), hostname="mail")
    server = RoostPop3(conf, log=logs.dovecot("pop3-login"))
    try:
        talk(server.port, [b"USER alice\r\n", b"PASS wrong\r\n"], source="127.0.0.31", idle=0.2)
        talk(server.port, [b"USER bob\r\n", b"PASS nope\r\n", b"QUIT\r\n"],
             source="127.0.0.32", idle=0.2)
        talk(server.port, [b"USER carol\r\n", b"QUIT\r\n"], source="127.0.0.33", idle=0.2)
        talk(server.port, [b"USER alice\r\n", f"PASS {PASSWORD}\r\n".encode(), b"QUIT\r\n"])
        assert wait_for(lambda: maillog.read_text().count("pop3-login: ") >= 4)
    finally:
        server.close()
    text = maillog.read_text()
    assert re.search(r"dovecot: pop3-login: Disconnected: Connection closed \(auth failed, 1 "
                     r"attempts in \d+ secs\): user=<alice>, method=PLAIN, rip=127\.0\.0\.31", text)
    result = subprocess.run([fail2ban_regex, "--print-all-matched", str(maillog), FILTER],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Failregex: 3 total", result.stdout), result.stdout
    matched = result.stdout.split("Matched line(s):", 1)[1].split("Missed line(s)", 1)[0]
    hosts = sorted(set(re.findall(r"rip=(127\.0\.0\.\d+)", matched)))
    assert hosts == ["127.0.0.31", "127.0.0.32", "127.0.0.33"], result.stdout
