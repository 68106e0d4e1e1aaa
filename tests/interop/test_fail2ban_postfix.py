"""fail2ban's stock Postfix filter, `mode=auth`, finds roost smtpd's SASL failures and only them.

Issue 4 (fail2ban compatibility, the Postfix half; tests/interop/test_fail2ban.py has the
Dovecot half). The stack of tests/interop/test_smtpd_dovecot_auth.py (real Dovecot auth
socket behind roost's smtpd) takes, from 127.0.0.2, one good and two bad AUTH PLAIN/LOGIN
logins through swaks; Debian's `fail2ban-regex` then reads roost's `$data_directory/maillog`
with /etc/fail2ban/filter.d/postfix.conf in `mode=auth` and must match exactly the two
failure lines (host 127.0.0.2), nothing else: not the connect/disconnect lines, not the
successful login.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import require_tool
from tests.interop.test_smtpd_dovecot_auth import (CLIENT_IP, PASSWORD, USER, failure_lines,
                                                   started_stack, swaks_auth)
from tests.master.helpers import wait_until

FILTER = "/etc/fail2ban/filter.d/postfix.conf"


def fail2ban_regex(log_path: str, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(["fail2ban-regex", *options, log_path, f"{FILTER}[mode=auth]"],
                          capture_output=True, text=True, timeout=60)


def test_fail2ban_postfix_auth_mode_matches_roost_sasl_failures():
    require_tool("fail2ban-regex")  # fails (never skips): install Debian's fail2ban package
    assert os.path.exists(FILTER), f"{FILTER} is missing: install Debian's fail2ban package"
    stack = started_stack()
    try:
        with ThreadPoolExecutor(3) as pool:
            good, wrong, unknown = pool.map(lambda args: swaks_auth(stack.smtp, *args),
                                            [("PLAIN", USER, PASSWORD), ("PLAIN", USER, "wrong"),
                                             ("LOGIN", "carol", PASSWORD)])
        assert "235 2.7.0" in good and "535 5.7.8" in wrong and "535 5.7.8" in unknown, (good, wrong, unknown)

        def logged():
            text = stack.roost_log()
            return text if len(failure_lines(text)) >= 2 and text.count("disconnect from") >= 3 else None
        log = wait_until(logged, 10)
        assert log, stack.roost_log()
        expected = failure_lines(log)
        assert len(expected) == 2, log

        # every matched line, printed whole: exactly the two failures and nothing else
        matched = fail2ban_regex(stack.maillog, "--out", "msg")
        assert matched.returncode == 0, matched.stdout + matched.stderr
        assert sorted(matched.stdout.splitlines()) == sorted(expected), (matched.stdout, log)
        hosts = fail2ban_regex(stack.maillog, "--out", "ip")
        assert hosts.stdout.split() == [CLIENT_IP, CLIENT_IP], (hosts.stdout, log)
    finally:
        stack.stop()
