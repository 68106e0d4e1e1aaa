"""Differential test: roost's `%` expansion against Dovecot 2.3's, asked through `doveadm user`.

A private Dovecot (no protocols, own base_dir) serves a static userdb whose extra fields are
the templates under test; `doveadm user USER` prints them expanded for each user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from roost.auth.variables import expand, user_values
from tests.conftest import require_tool

TEMPLATES = (
    "%u", "%n", "%d", "%s", "%Lu", "%Ln", "%Ld", "%Uu", "%{user}", "%{username}", "%{domain}",
    "%L{username}", "%U{domain}", "%{service}", "%2u", "%2.1u", "%-3.2u", "%0.-2u", "%05Ud",
    "%1.04n", "%Ru", "%Eu", "%Mn", "%Dd", "%%", "abc%", "%L", "%2.u", "%-20.3u", "%30.2u",
    "%{session}", "/var/vmail/%Ld/%Ln/Maildir", "%LRn", "%1Ln/%2.1Ln/%Ln",
)
USERS = ("Alice@Example.Org", "bob", "a.b-c@sub.dom.example", "x@y@z", "O'Ne\"il\\q@x.y",
         "UPPER@CASE.TEST", "lead_x@_y-.z")


@pytest.fixture(scope="module")
def private_dovecot():
    """Path of a running private dovecot.conf; the instance is stopped afterwards."""
    require_tool("dovecot")
    require_tool("doveadm")
    root = tempfile.mkdtemp(prefix="rv", dir="/tmp")  # short: socket paths are limited
    os.chmod(root, 0o755)
    fields = " ".join(f"f{i}={template}" for i, template in enumerate(TEMPLATES))
    Path(root, "users").write_text("")
    conf = Path(root, "dovecot.conf")
    conf.write_text(
        f"protocols =\nbase_dir = {root}/run\nstate_dir = {root}/state\n"
        f"log_path = {root}/log\nssl = no\nauth_username_format = %u\n"
        "auth_username_chars =\n"
        f"passdb {{\n  driver = passwd-file\n  args = {root}/users\n}}\n"
        f"userdb {{\n  driver = static\n  args = uid=1000 gid=1000 allow_all_users=yes "
        f"{fields}\n}}\n")
    subprocess.run(["dovecot", "-c", str(conf)], check=True, timeout=30)
    pid_file = Path(root, "run", "master.pid")
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield str(conf)
    finally:
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
            deadline = time.monotonic() + 10
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


def doveadm_fields(conf: str, user: str) -> dict[str, str]:
    done = subprocess.run(["doveadm", "-c", conf, "user", user], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t", 1) for line in done.stdout.splitlines()[1:]]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


@pytest.mark.parametrize("user", USERS)
def test_expansion_matches_doveadm(private_dovecot, user):
    dovecot = doveadm_fields(private_dovecot, user)
    values = user_values(user, service="doveadm")
    for i, template in enumerate(TEMPLATES):
        assert expand(template, values) == dovecot.get(f"f{i}", ""), (template, user)
