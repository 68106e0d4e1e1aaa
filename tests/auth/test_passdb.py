"""passwd-file passdb: Dovecot's file format, real doveadm hashes, reload, errors, fuzz."""

from __future__ import annotations

import os
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from roost.auth.drivers.passwd_file import (PasswdFile, PasswdFilePassdb, PasswdFileSource,
                                            parse_passwd_file)
from roost.auth.passdb import AuthContext, PassdbStatus, create_passdb, default_verify
from roost.config.diagnostics import Diagnostics
from tests.conftest import require_tool

def passdb_for(args: str, **kwargs) -> PasswdFilePassdb:
    diags = Diagnostics()
    passdb = create_passdb("passwd-file", args, "dovecot.conf", 1, diags, **kwargs)
    assert passdb is not None and not diags.items, diags.items
    return passdb


def attempt(passdb, user: str, password: str, verify=default_verify, rip: str = "127.0.0.1"):
    return passdb.verify(AuthContext(user, "imap", rip, "127.0.0.1", False, password), verify)


# --- the file format ---------------------------------------------------------------------

def test_parse_fields_comments_and_defaults():
    diags = Diagnostics()
    entries = parse_passwd_file(
        "# comment\n\n"
        "full:{PLAIN}pw:1000:1001:Full Name:/home/full:/bin/sh:"
        "userdb_mail=maildir:~/Maildir nopassword quota_rule=*:storage=1G\r\n"
        "short:{PLAIN}x\n"
        "nohash:\n", "/etc/users", diags)
    assert not diags.items
    full = entries["full"]
    assert (full.password, full.uid, full.gid, full.gecos, full.home, full.shell) == (
        "{PLAIN}pw", "1000", "1001", "Full Name", "/home/full", "/bin/sh")
    assert full.extra == {"userdb_mail": "maildir:~/Maildir", "nopassword": "",
                          "quota_rule": "*:storage=1G"}
    assert (entries["short"].uid, entries["short"].home, entries["short"].extra) == ("", "", {})
    assert entries["nohash"].password == ""


def test_malformed_lines_are_reported_with_file_and_line_and_skipped():
    diags = Diagnostics()
    entries = parse_passwd_file(
        "good:{PLAIN}a\n"
        "no password field\n"
        ":{PLAIN}nouser\n"
        "nul\0:{PLAIN}x\n"
        "good:{PLAIN}second\n", "/etc/users", diags)
    assert list(entries) == ["good"] and entries["good"].password == "{PLAIN}a"
    messages = [str(d) for d in diags.items]
    assert messages == [
        "warning: /etc/users, line 2: user no password field has no password field, "
        "line ignored",
        "warning: /etc/users, line 3: empty user name, line ignored",
        "warning: /etc/users, line 4: NUL character in line, line ignored",
        "warning: /etc/users, line 5: User good exists more than once (line 1 is used)",
    ]


@settings(max_examples=250, deadline=None)
@given(st.one_of(
    st.text(alphabet=st.sampled_from("ab:{}#= \n\r\t\0%é"), max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.integers(1, 5000).map(lambda n: "u:" + "x" * n + ":" * (n % 11))))
def test_fuzz_parser_never_raises(text):
    diags = Diagnostics()
    entries = parse_passwd_file(text, "/f", diags)
    for user, entry in entries.items():
        assert user and "\0" not in user and ":" not in user and entry.password is not None
    assert all(d.line and d.file == "/f" for d in diags.items)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_file_on_disk(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fz") / "users"
    path.write_bytes(data)
    passdb = passdb_for(f"{path}")
    result = attempt(passdb, "a", "b")
    assert result.status in (PassdbStatus.UNKNOWN_USER, PassdbStatus.MISMATCH,
                             PassdbStatus.INTERNAL_FAILURE, PassdbStatus.OK)


# --- verification --------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["PLAIN", "CRYPT", "MD5-CRYPT", "SHA256-CRYPT",
                                    "SHA512-CRYPT", "BLF-CRYPT"])
def test_hashes_from_real_doveadm_pw(tmp_path, scheme):
    doveadm = require_tool("doveadm")
    hashed = subprocess.run([doveadm, "pw", "-s", scheme, "-p", "s3cret pw"], check=True,
                            capture_output=True, text=True).stdout.strip()
    assert hashed.startswith("{")
    users = tmp_path / "users"
    users.write_text(f"alice:{hashed}:1000:1000::/home/alice::\n")
    passdb = passdb_for(f"{users}")
    assert attempt(passdb, "alice", "s3cret pw").status is PassdbStatus.OK
    wrong = attempt(passdb, "alice", "s3cret PW")
    assert wrong.status is PassdbStatus.MISMATCH
    assert wrong.log == (("info", "passwd-file(alice,127.0.0.1): Password mismatch"),)
    unknown = attempt(passdb, "bob", "x")
    assert unknown.status is PassdbStatus.UNKNOWN_USER
    assert unknown.log == (("info", "passwd-file(bob,127.0.0.1): unknown user"),)
    assert attempt(passdb, "bob", "x", rip="").log == (
        ("info", "passwd-file(bob): unknown user"),)


def test_scheme_arg_is_the_default_scheme(tmp_path):
    users = tmp_path / "users"
    users.write_text("plain:pw\ncrypted:{PLAIN}other\n")
    passdb = passdb_for(f"scheme=PLAIN {users}")
    assert attempt(passdb, "plain", "pw").status is PassdbStatus.OK
    assert attempt(passdb, "crypted", "other").status is PassdbStatus.OK
    seen = []
    passdb_for(f"{users}").verify(AuthContext("plain", password="pw"),
                                  lambda s, p, scheme, u: seen.append(scheme) or False)
    assert seen == ["CRYPT"]  # Dovecot's default for passwd-file


def test_nopassword_empty_password_and_extra_fields(tmp_path):
    users = tmp_path / "users"
    users.write_text("open::::::: nopassword userdb_quota_rule=*:storage=1G\n"
                     "empty::1000:1000::/h::\n"
                     "extra:{PLAIN}pw::::::allow_nets=127.0.0.0/8 userdb_mail=mbox:~/mail\n")
    passdb = passdb_for(str(users))
    open_result = attempt(passdb, "open", "anything")
    assert open_result.status is PassdbStatus.OK
    assert open_result.userdb_fields == {"quota_rule": "*:storage=1G"}
    assert attempt(passdb, "empty", "").status is PassdbStatus.MISMATCH
    extra = attempt(passdb, "extra", "pw")
    assert extra.extra == {"allow_nets": "127.0.0.0/8"}
    assert extra.userdb_fields == {"mail": "mbox:~/mail"}


def test_verifier_error_is_an_internal_failure(tmp_path):
    users = tmp_path / "users"
    users.write_text("alice:{NOSUCH}x\n")
    result = attempt(passdb_for(str(users)), "alice", "x")
    assert result.status is PassdbStatus.INTERNAL_FAILURE
    assert result.log == (("error", "passwd-file(alice,127.0.0.1): Password verification "
                                    "failed: SchemeError: Unknown scheme"),)


def test_missing_file_is_internal_failure(tmp_path):
    result = attempt(passdb_for(str(tmp_path / "absent")), "alice", "x")
    assert result.status is PassdbStatus.INTERNAL_FAILURE
    assert result.log == (("error", f"passwd-file(alice,127.0.0.1): "
                                    f"open({tmp_path / 'absent'}) failed: "
                                    "No such file or directory"),)


def test_per_domain_files_and_username_format(tmp_path):
    (tmp_path / "abc.mail").mkdir()
    (tmp_path / "abc.mail" / "passwd").write_text("bob:{PLAIN}pw\n")
    passdb = passdb_for(f"username_format=%n {tmp_path}/%d/passwd")
    assert attempt(passdb, "bob@abc.mail", "pw").status is PassdbStatus.OK
    assert attempt(passdb, "bob@abc.mail", "no").status is PassdbStatus.MISMATCH
    # a per-domain file that does not exist means the user does not exist
    assert attempt(passdb, "bob@other.mail", "pw").status is PassdbStatus.UNKNOWN_USER
    assert attempt(passdb, "bob@..", "pw").status is PassdbStatus.UNKNOWN_USER


def test_bad_args_are_reported():
    diags = Diagnostics()
    assert create_passdb("passwd-file", "frobnicate=1 /x", "d.conf", 7, diags) is None
    assert create_passdb("passwd-file", "scheme=PLAIN", "d.conf", 8, diags) is None
    assert create_passdb("passwd-file", "/x/%z", "d.conf", 9, diags) is None
    assert create_passdb("ldap", "/x", "d.conf", 10, diags) is None
    assert [str(d) for d in diags.items] == [
        "fatal: d.conf, line 7: passdb passwd-file: unknown setting 'frobnicate'",
        "fatal: d.conf, line 8: passdb passwd-file: args must name a file",
        "fatal: d.conf, line 9: passdb passwd-file: /x/%z: Unknown variable '%z'",
        "fatal: d.conf, line 10: passdb driver 'ldap' is not supported by roost "
        "(supported: passwd-file, shadow, passwd, pam, static)",
    ]


# --- re-reading ------------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_reread_when_the_file_changes_at_most_once_a_second(tmp_path):
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}one\n")
    clock = FakeClock()
    warnings: list[str] = []
    passdb = PasswdFilePassdb(PasswdFileSource(str(path), "%u", "CRYPT", clock=clock,
                                               warn=warnings.append))
    assert attempt(passdb, "alice", "one").status is PassdbStatus.OK
    replacement = tmp_path / "users.new"
    replacement.write_text("alice:{PLAIN}two\nbob:{PLAIN}b\nbroken\n")
    os.replace(replacement, path)  # new inode, as editors and `install` do
    clock.now += 0.5
    assert attempt(passdb, "alice", "one").status is PassdbStatus.OK  # not checked yet
    clock.now += 0.6
    assert attempt(passdb, "alice", "two").status is PassdbStatus.OK
    assert attempt(passdb, "bob", "b").status is PassdbStatus.OK
    assert warnings == [f"warning: {path}, line 3: user broken has no password field, "
                        "line ignored"]
    # in-place rewrite, same size, same inode: the mtime tells
    stat = path.stat()
    path.write_text("alice:{PLAIN}six\nbob:{PLAIN}b\nbroken\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    clock.now += 1.0
    assert attempt(passdb, "alice", "six").status is PassdbStatus.OK
    assert len(warnings) == 2


def test_unchanged_file_is_not_reparsed(tmp_path):
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}pw\n")
    clock = FakeClock()
    users = PasswdFile(str(path), clock=clock)
    first = users.lookup("alice")
    clock.now += 5
    assert users.lookup("alice") is first


# --- static passdb ---------------------------------------------------------------------------

def test_static_passdb_password_and_extra_fields():
    passdb = create_passdb("static", "password={PLAIN}%Ln-pw allow_nets=127.0.0.0/8 "
                                     "userdb_home=/v/%n", "d.conf", 1, Diagnostics())
    ok = attempt(passdb, "Bob", "bob-pw")
    assert ok.status is PassdbStatus.OK
    assert (ok.extra, ok.userdb_fields) == ({"allow_nets": "127.0.0.0/8"}, {"home": "/v/Bob"})
    assert attempt(passdb, "Bob", "other").log == (
        ("info", "static(Bob,127.0.0.1): Password mismatch"),)
    assert passdb.lookup_fields(AuthContext("x")).status is PassdbStatus.OK
    anyone = create_passdb("static", "nopassword=y", "d.conf", 2, Diagnostics())
    assert attempt(anyone, "whoever", "anything").status is PassdbStatus.OK


def test_static_passdb_configuration_errors():
    diags = Diagnostics()
    assert create_passdb("static", "allow_nets=1.2.3.4", "d.conf", 3, diags) is None
    assert create_passdb("static", "password=%z", "d.conf", 4, diags) is None
    assert [str(d) for d in diags.items] == [
        "fatal: d.conf, line 3: passdb static: args need password=... or nopassword=y",
        "fatal: d.conf, line 4: passdb static: password=%z: Unknown variable '%z'"]
