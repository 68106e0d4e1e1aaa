"""Interop: hashes from Debian's `doveadm pw` verify in roost; roost's verify with `doveadm pw -t`.

Every scheme of issue 4 item 2 in both directions, with a wrong password refused in both.
yescrypt has no Dovecot 2.3 scheme name: it is the `{CRYPT}$y$` form Dovecot checks via crypt(3).
"""

from __future__ import annotations

import subprocess

import pytest

from roost.auth.schemes import generate, verify
from roost.auth.schemes_crypt import crypt_hash, crypt_setting
from tests.conftest import REPO, require_tool, run_roost

SCHEMES = ["PLAIN", "CLEARTEXT", "CRYPT", "DES-CRYPT", "MD5-CRYPT", "SHA256-CRYPT",
           "SHA512-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID", "SSHA", "SSHA256", "SSHA512",
           "SHA", "SHA256", "SHA512", "SHA.HEX", "SHA256.HEX", "SHA512.HEX", "SSHA.HEX",
           "SHA512.B64", "PBKDF2", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256", "SMD5",
           "PLAIN-MD5", "PLAIN.B64", "DIGEST-MD5"]
PASSWORD = "Pässw0rd with spaces"
WRONG = "Xässw0rd with spaces"  # differs within DES-CRYPT's 8 significant bytes


def doveadm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("doveadm"), "-O", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO)


@pytest.mark.interop
@pytest.mark.parametrize("scheme", SCHEMES)
def test_doveadm_hash_verifies_in_roost(scheme):
    made = doveadm("pw", "-s", scheme, "-p", PASSWORD, "-u", "alice@example.com")
    assert made.returncode == 0, made.stderr
    stored = made.stdout.strip()
    assert stored.startswith("{" + scheme + "}")
    assert verify(stored, PASSWORD, user="alice@example.com")
    assert not verify(stored, WRONG, user="alice@example.com")


@pytest.mark.interop
@pytest.mark.parametrize("scheme", SCHEMES)
def test_roost_hash_verifies_in_doveadm(scheme):
    stored = generate(scheme, PASSWORD, user="alice@example.com")
    good = doveadm("pw", "-t", stored, "-p", PASSWORD, "-u", "alice@example.com")
    assert good.returncode == 0, good.stderr
    assert good.stdout == f"{stored} (verified)\n"
    bad = doveadm("pw", "-t", stored, "-p", WRONG, "-u", "alice@example.com")
    assert bad.returncode == 75
    assert "Password mismatch" in bad.stderr


@pytest.mark.interop
def test_yescrypt_crypt_form_both_ways():
    shadow = crypt_hash(PASSWORD.encode(), crypt_setting("$y$"))
    assert shadow.startswith("$y$")
    assert doveadm("pw", "-t", "{CRYPT}" + shadow, "-p", PASSWORD).returncode == 0
    assert doveadm("pw", "-t", "{CRYPT}" + shadow, "-p", WRONG).returncode == 75
    assert verify(shadow, PASSWORD) and verify("{CRYPT}" + shadow, PASSWORD)
    assert not verify(shadow, WRONG)


@pytest.mark.interop
@pytest.mark.parametrize("scheme,rounds", [("SHA512-CRYPT", "6000"), ("SHA256-CRYPT", "999"),
                                           ("BLF-CRYPT", "4"), ("PBKDF2", "12"),
                                           ("ARGON2I", "3")])
def test_roost_cli_hash_with_rounds_verifies_in_doveadm(scheme, rounds):
    made = run_roost("doveadm", "pw", "-s", scheme, "-r", rounds, "-p", PASSWORD)
    assert made.returncode == 0, made.stderr
    stored = made.stdout.strip()
    real = doveadm("pw", "-s", scheme, "-r", rounds, "-p", PASSWORD).stdout.strip()
    # same shape as Dovecot's (rounds encoded the same way), different salt
    if scheme == "PBKDF2":  # $1$salt$rounds$hex
        assert stored.split("$")[3] == real.split("$")[3] == rounds
    else:
        assert stored.split("$")[:3] == real.split("$")[:3]
    assert doveadm("pw", "-t", stored, "-p", PASSWORD).returncode == 0
