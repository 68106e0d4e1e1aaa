"""System users: a real user with a yescrypt password logs in through shadow and PAM.

Runs as root (as CI does): creates a uniquely named system user with useradd/chpasswd (Debian
12 hashes with yescrypt), checks the shadow and pam passdbs and the passwd userdb, and removes
the user in a finalizer whatever happens.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time

import pytest

from roost.auth.drivers.pam import PamPassdb
from roost.auth.drivers.system import PasswdUserdb, ShadowPassdb, shadow_entry
from roost.auth.passdb import AuthContext, PassdbStatus, create_passdb
from roost.auth.userdb import UserdbStatus
from roost.config.diagnostics import Diagnostics
from roost.auth.passdb import default_verify
from tests.conftest import require_tool

PASSWORD = "Yes crypt-" + secrets.token_hex(4)


def run_locked(*argv: str, input: str | None = None) -> None:
    """useradd and friends fail while another process holds /etc/passwd's lock: retry."""
    for _attempt in range(50):
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return
        if "lock" not in done.stderr:
            break
        time.sleep(0.1)
    raise AssertionError(f"{' '.join(argv)} failed: {done.stderr}")


@pytest.fixture
def system_user():
    if os.geteuid() != 0:
        pytest.fail("system user tests need root (CI runs them as root)", pytrace=False)
    useradd, chpasswd, userdel = (require_tool(t) for t in ("useradd", "chpasswd", "userdel"))
    name = "rst" + secrets.token_hex(5)
    run_locked(useradd, "-M", "-d", f"/nonexistent/{name}", "-s", "/usr/sbin/nologin", name)
    try:
        run_locked(chpasswd, input=f"{name}:{PASSWORD}\n")
        yield name
    finally:
        run_locked(userdel, name)


def context(user: str, password: str, service: str = "imap") -> AuthContext:
    return AuthContext(user, service, "127.0.0.2", "127.0.0.1", False, password)


def test_shadow_passdb_with_yescrypt(system_user):
    fields = shadow_entry(system_user)
    assert fields is not None and fields[1].startswith("$y$")  # Debian 12's default
    passdb = ShadowPassdb()
    assert passdb.verify(context(system_user, PASSWORD), default_verify).status is PassdbStatus.OK
    wrong = passdb.verify(context(system_user, PASSWORD + "x"), default_verify)
    assert wrong.status is PassdbStatus.MISMATCH
    assert wrong.log == (("info", f"shadow({system_user},127.0.0.2): Password mismatch"),)
    unknown = passdb.verify(context(system_user + "x", PASSWORD), default_verify)
    assert unknown.status is PassdbStatus.UNKNOWN_USER
    assert passdb.lookup_fields(context(system_user, "")).status is PassdbStatus.OK


def test_pam_passdb(system_user):
    diags = Diagnostics()
    passdb = create_passdb("pam", "", "dovecot.conf", 3, diags)
    assert isinstance(passdb, PamPassdb) and passdb.service == "dovecot" and not diags.items
    assert passdb.verify(context(system_user, PASSWORD), default_verify).status is PassdbStatus.OK
    wrong = passdb.verify(context(system_user, "nope"), default_verify)
    assert wrong.status is PassdbStatus.MISMATCH
    assert wrong.log == ((
        "info", f"pam({system_user},127.0.0.2): pam_authenticate() failed: "
                "Authentication failure (password mismatch?)"),)
    # PAM cannot tell an unknown user from a bad password
    unknown = passdb.verify(context(system_user + "x", PASSWORD), default_verify)
    assert unknown.status is PassdbStatus.MISMATCH
    nul = passdb.verify(context(system_user, "a\0b"), default_verify)
    assert nul.status is PassdbStatus.MISMATCH


def test_pam_service_argument(system_user):
    diags = Diagnostics()
    star = PamPassdb.from_args("session=yes *", "d.conf", 1, diags)
    named = PamPassdb.from_args("other", "d.conf", 2, diags)
    PamPassdb.from_args("bogus=1", "d.conf", 3, diags)
    assert (star.service, named.service) == ("*", "other")
    assert [str(d) for d in diags.items] == [
        "warning: d.conf, line 3: passdb pam: unknown arg 'bogus', ignored"]
    # "*" uses the login's service: /etc/pam.d/login exists on Debian
    assert star.verify(context(system_user, PASSWORD, service="login"),
                       default_verify).status is PassdbStatus.OK


def test_passwd_userdb(system_user):
    import pwd
    entry = pwd.getpwnam(system_user)
    result = PasswdUserdb().lookup(context(system_user, ""))
    assert result.status is UserdbStatus.OK
    assert result.fields == {"uid": str(entry.pw_uid), "gid": str(entry.pw_gid),
                             "home": f"/nonexistent/{system_user}"}
    assert PasswdUserdb().lookup(context(system_user + "x", "")).status is \
        UserdbStatus.UNKNOWN_USER


def test_shadow_locked_expired_and_unreadable(tmp_path):
    now = 20000 * 86400.0
    path = tmp_path / "shadow"
    crypted = "$6$saltsalt$" + "x" * 86
    path.write_text(f"locked:!{crypted}:19000:0:99999:7:::\n"
                    f"expired:{crypted}:19000:0:99999:7::19999:\n"
                    "nohash::19000:0:99999:7:::\n")
    passdb = ShadowPassdb(str(path), clock=lambda: now)
    calls = []

    def spy(*args):
        calls.append(args)
        return True
    assert passdb.verify(context("locked", "x"), spy).status is PassdbStatus.MISMATCH
    expired = passdb.verify(context("expired", "x"), spy)
    assert expired.status is PassdbStatus.MISMATCH
    assert expired.log == (("info", "shadow(expired,127.0.0.2): account expired"),)
    assert passdb.verify(context("nohash", ""), spy).status is PassdbStatus.MISMATCH
    assert calls == []  # none of them reached the verifier
    missing = ShadowPassdb(str(tmp_path / "absent")).verify(context("a", "b"), spy)
    assert missing.status is PassdbStatus.INTERNAL_FAILURE


def test_passwd_passdb_has_no_usable_hash_with_shadow_passwords(system_user):
    passdb = create_passdb("passwd", "", "dovecot.conf", 1, Diagnostics())
    assert passdb.verify(context(system_user, PASSWORD), default_verify).status is \
        PassdbStatus.MISMATCH  # getpwnam() says "x": the hash is in /etc/shadow
    assert passdb.verify(context(system_user + "x", PASSWORD), default_verify).status is \
        PassdbStatus.UNKNOWN_USER
    assert passdb.lookup_fields(context(system_user, "")).status is PassdbStatus.OK
