"""The auth chain: login names, passdb/userdb order and result actions, logs, dovecot.conf."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import given, settings, strategies as st

from roost.auth.drivers.passwd_file import PasswdFilePassdb, PasswdFileSource
from roost.auth.drivers.static import StaticUserdb
from roost.auth.lookup import AuthLookup, ChainEntry, UserRecord
from roost.auth.passdb import AuthContext, PassdbResult, PassdbStatus
from roost.auth.userdb import UserdbResult, UserdbStatus
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.config.dovecot_settings import dovecot_settings
from roost.auth.passdb import default_verify
from tests.conftest import run_roost


@dataclass
class FakePassdb:
    """Answers with a fixed status and records the user names it was asked about."""
    status: PassdbStatus
    driver: str = "fake"
    extra: dict | None = None

    def __post_init__(self):
        self.asked: list[str] = []

    def verify(self, context: AuthContext, verify) -> PassdbResult:
        self.asked.append(context.user)
        level = "error" if self.status is PassdbStatus.INTERNAL_FAILURE else "info"
        return PassdbResult(self.status, dict(self.extra or {}),
                            log=((level, f"{self.driver}: {self.status.value}"),))

    lookup_fields = lambda self, context: self.verify(context, None)  # noqa: E731


@dataclass
class FakeUserdb:
    status: UserdbStatus
    fields: dict
    driver: str = "fakeu"

    def lookup(self, context: AuthContext) -> UserdbResult:
        return UserdbResult(self.status, dict(self.fields))


class ListLogger:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def info(self, text):
        self.lines.append(("info", text))

    def error(self, text):
        self.lines.append(("error", text))


OK, BAD, UNKNOWN, FAIL = (PassdbStatus.OK, PassdbStatus.MISMATCH, PassdbStatus.UNKNOWN_USER,
                          PassdbStatus.INTERNAL_FAILURE)


def chain(*entries: ChainEntry, **kwargs) -> AuthLookup:
    return AuthLookup(list(entries), [], verify=default_verify, username_format="%u", **kwargs)


# --- login names ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, realm, login, expected", [
    ("%n", "", "bob@abc.mail", "bob"),  # the seeds' auth_username_format
    ("%Lu", "", "Bob@ABC.mail", "bob@abc.mail"),  # Dovecot's default
    ("%Lu", "abc.mail", "Bob", "bob@abc.mail"),
    ("%u", "abc.mail", "bob@other.mail", "bob@other.mail"),
    ("%n", "abc.mail", "bob", "bob"),
])
def test_login_name(fmt, realm, login, expected):
    lookup = AuthLookup([], [], username_format=fmt, default_realm=realm)
    assert lookup.login_name(login, "imap") == expected


def test_disallowed_characters_refuse_the_login_without_asking_passdbs():
    passdb = FakePassdb(OK)
    lookup = chain(ChainEntry(passdb))
    for name in ("bob smith", "bob\0", "bob'", "", "bob/../x"):
        result = lookup.authenticate(name, "pw", "imap", "10.0.0.1")
        assert not result.ok and result.reason == "unknown user"
    assert passdb.asked == []
    allow_all = chain(ChainEntry(passdb), username_chars="")  # empty: every character
    assert allow_all.login_name("bob smith", "imap") == "bob smith"
    assert allow_all.login_name("bob\0", "imap") is None


# --- passdb chain (the full state machine is checked against Dovecot in test_lookup_doveadm) --

def test_first_success_returns_and_later_passdbs_are_not_asked():
    first, second = FakePassdb(OK, "one"), FakePassdb(OK, "two")
    result = chain(ChainEntry(first), ChainEntry(second)).authenticate("bob", "pw")
    assert result.ok and result.reason is None and first.asked == ["bob"]
    assert second.asked == []


@pytest.mark.parametrize("statuses, reason", [
    ((UNKNOWN, UNKNOWN), "unknown user"),
    ((UNKNOWN, BAD), "password mismatch"),
    ((BAD, UNKNOWN), "password mismatch"),
    ((FAIL, BAD), "internal failure"),
    ((UNKNOWN, FAIL), "internal failure"),
])
def test_failure_reason_is_the_worst_seen(statuses, reason):
    lookup = chain(*(ChainEntry(FakePassdb(status)) for status in statuses))
    result = lookup.authenticate("bob", "pw", "imap", "10.0.0.1")
    assert (result.ok, result.reason) == (False, reason)
    assert [text for _level, text in result.log] == [f"fake: {s.value}" for s in statuses]


def test_internal_failure_can_end_the_chain():
    later = FakePassdb(OK)
    lookup = chain(ChainEntry(FakePassdb(FAIL), result_internalfail="return-fail"),
                   ChainEntry(later))
    assert lookup.authenticate("bob", "pw").reason == "internal failure"
    assert later.asked == []


def test_user_extra_field_renames_the_user_and_fields_are_returned():
    renaming = FakePassdb(OK, extra={"user": "robert", "allow_nets": "10.0.0.0/8"})
    second = FakePassdb(OK)
    lookup = chain(ChainEntry(renaming, result_success="continue-ok"), ChainEntry(second))
    result = lookup.authenticate("bob", "pw")
    assert result.ok and result.user == "robert"
    assert result.extra == {"user": "robert", "allow_nets": "10.0.0.0/8"}
    assert second.asked == ["robert"]


def test_no_passdbs_is_an_internal_failure():
    result = AuthLookup([], []).authenticate("bob", "pw")
    assert (result.ok, result.reason) == (False, "internal failure")


def test_log_lines_go_to_the_injected_logger():
    logger = ListLogger()
    lookup = chain(ChainEntry(FakePassdb(BAD)), logger=logger)
    quiet = chain(ChainEntry(FakePassdb(BAD)), ChainEntry(FakePassdb(FAIL)),
                  logger=ListLogger(), verbose=False)
    quiet.authenticate("bob", "pw")
    assert quiet.logger.lines == [("error", "fake: internal failure")]
    result = lookup.authenticate("bob", "pw", "imap", "10.0.0.1")
    assert logger.lines == list(result.log) == [("info", "fake: password mismatch")]
    # Dovecot 2.3.19's words (doveadm auth test -x rip=10.0.0.1 "bad name")
    lookup.authenticate("bad name", "pw", "imap", "10.0.0.1")
    assert logger.lines[-1] == ("info", "plain(?,10.0.0.1): Username character disallowed by "
                                        "auth_username_chars: 0x20 (username: bad name)")
    lookup.authenticate("", "pw", "imap", "10.0.0.1", mechanism="LOGIN")
    assert logger.lines[-1] == ("info", "login(?,10.0.0.1): Empty username")


# --- userdb chain ------------------------------------------------------------------------

def test_userdb_chain_first_found_and_record_fields():
    lookup = AuthLookup([], [
        ChainEntry(FakeUserdb(UserdbStatus.UNKNOWN_USER, {})),
        ChainEntry(FakeUserdb(UserdbStatus.OK, {"uid": "5", "gid": "6", "home": "/h",
                                                "mail": "maildir:~/M", "quota": "1G"})),
        ChainEntry(FakeUserdb(UserdbStatus.OK, {"uid": "99"}))])
    assert lookup.lookup_user("Bob@X.Y", "lmtp") == UserRecord(
        "bob@x.y", "5", "6", "/h", "maildir:~/M", {"quota": "1G"})


def test_userdb_continue_ok_merges_fields():
    lookup = AuthLookup([], [
        ChainEntry(FakeUserdb(UserdbStatus.OK, {"uid": "5", "home": "/a"}),
                   result_success="continue-ok"),
        ChainEntry(FakeUserdb(UserdbStatus.OK, {"home": "/b", "gid": "7"}))])
    record = lookup.lookup_user("bob")
    assert (record.uid, record.gid, record.home) == ("5", "7", "/b")


def test_userdb_unknown_and_invalid_names():
    lookup = AuthLookup([], [ChainEntry(FakeUserdb(UserdbStatus.UNKNOWN_USER, {}))])
    assert lookup.lookup_user("bob") is None
    assert lookup.lookup_user("bad name") is None


# --- dovecot.conf ------------------------------------------------------------------------------

def own_problems(diags: Diagnostics) -> list:
    """Diagnostics other than roost.config.dovecot_check's "not implemented yet" warnings."""
    return [d for d in diags.items if "unsupported setting" not in d.message]


def lookup_from_conf(text: str, tmp_path, logger=None) -> tuple[AuthLookup, Diagnostics]:
    conf = tmp_path / "dovecot.conf"
    conf.write_text(text)
    diags = Diagnostics()
    settings = dovecot_settings(parse_dovecot_conf(str(conf), diags))
    return AuthLookup.from_settings(settings, diags, verify=default_verify, logger=logger), diags


def test_seed_style_static_userdb_with_username_format_n(tmp_path):
    (tmp_path / "users").write_text("bob:{PLAIN}pw::::::userdb_quota_rule=*:storage=1G\n")
    lookup, diags = lookup_from_conf(
        "auth_username_format = %n\n"
        f"passdb {{\n  driver = passwd-file\n  args = {tmp_path}/users\n}}\n"
        "userdb {\n  driver = static\n  args = uid=0 gid=0 home=/var/vmail/%d/%n\n}\n",
        tmp_path)
    assert not own_problems(diags)
    result = lookup.authenticate("bob@abc.mail", "pw", "smtp", "127.0.0.1")
    assert (result.ok, result.user) == (True, "bob")
    assert result.userdb_fields == {"quota_rule": "*:storage=1G"}
    # static userdb without allow_all_users asks the passdb whether the user exists
    record = lookup.lookup_user("bob@abc.mail")
    assert record == UserRecord("bob", "0", "0", "/var/vmail//bob", None,
                                {"quota_rule": "*:storage=1G"})
    assert lookup.lookup_user("nobody@abc.mail") is None


def test_static_userdb_behind_pam_needs_allow_all_users(tmp_path):
    logger = ListLogger()
    lookup, diags = lookup_from_conf(
        "passdb {\n  driver = pam\n}\n"
        "userdb {\n  driver = static\n  args = uid=0 gid=0 home=/var/vmail/%u\n}\n",
        tmp_path, logger)
    assert not own_problems(diags)
    assert lookup.lookup_user("bob") is None
    assert logger.lines == [("error", "static(bob): no passdb supports user lookups "
                                      "(set allow_all_users=yes)")]


def test_configuration_errors_are_reported(tmp_path):
    _lookup, diags = lookup_from_conf(
        "passdb {\n  driver = ldap\n}\n"
        "passdb {\n  driver = passwd-file\n  args = /x\n  result_success = maybe\n}\n",
        tmp_path)
    messages = [str(d) for d in diags.items]
    assert any("passdb driver 'ldap' is not supported" in m for m in messages)
    assert any("unknown action 'maybe'" in m or "maybe" in m for m in messages)


def test_roost_init_configuration(tmp_path):
    config = tmp_path / "conf"
    done = run_roost("init", str(config), "--port-base", "40000", "--user", "alice:pw alpha",
                     "--user", "bob@other.test:pw2")
    assert done.returncode == 0, done.stderr
    logger = ListLogger()
    conf = config / "dovecot.conf"
    diags = Diagnostics()
    lookup = AuthLookup.from_settings(dovecot_settings(parse_dovecot_conf(str(conf), diags)),
                                      diags, verify=default_verify, logger=logger)
    assert not diags.has_fatal(), diags.items
    result = lookup.authenticate("alice", "pw alpha", "imap", "127.0.0.1")
    assert result.ok and result.user == "alice@example.test"
    assert lookup.authenticate("Bob@Other.Test", "pw2", "smtp", "127.0.0.1").ok
    wrong = lookup.authenticate("alice", "nope", "imap", "127.0.0.1")
    assert (wrong.ok, wrong.reason) == (False, "password mismatch")
    unknown = lookup.authenticate("carol", "x", "imap", "127.0.0.1")
    assert (unknown.ok, unknown.reason) == (False, "unknown user")
    assert wrong.log == (
        ("info", "passwd-file(alice@example.test,127.0.0.1): Password mismatch"),)
    assert unknown.log == (("info", "passwd-file(carol@example.test,127.0.0.1): unknown user"),)
    assert logger.lines == []  # auth_verbose is off, as in Dovecot's default
    record = lookup.lookup_user("alice")
    assert record.user == "alice@example.test"
    assert record.home == str(config / "mail" / "example.test" / "alice")
    assert record.uid == str(os.getuid())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40), st.text(max_size=20))
def test_fuzz_authenticate_never_raises(tmp_path_factory, username, password, remote_ip):
    root = tmp_path_factory.mktemp("fz")
    (root / "users").write_text("bob:{PLAIN}pw\n")
    lookup = AuthLookup(
        [ChainEntry(PasswdFilePassdb(PasswdFileSource(str(root) + "/%Ld/users", "%n", "PLAIN")))],
        [ChainEntry(StaticUserdb({"uid": "1", "home": "/v/%d/%n"}, allow_all_users=True))],
        username_format="%u", username_chars="", verify=default_verify)
    result = lookup.authenticate(username, password, "imap", remote_ip)
    assert result.reason in (None, "unknown user", "password mismatch", "internal failure")
    record = lookup.lookup_user(username)
    assert record is None or record.uid == "1"


def test_default_and_override_fields(tmp_path):
    (tmp_path / "users").write_text("bob:{PLAIN}pw::::::quota=5 userdb_mail=maildir:~/M\n")
    lookup, diags = lookup_from_conf(
        f"passdb {{\n  driver = passwd-file\n  args = {tmp_path}/users\n"
        "  default_fields = quota=1 nets=%r userdb_home=/d/%u\n"
        "  override_fields = userdb_mail=maildir:/o/%u\n}\n"
        f"userdb {{\n  driver = prefetch\n}}\n"
        f"userdb {{\n  driver = passwd-file\n  args = {tmp_path}/users\n"
        "  default_fields = home=/def/%u mail=x\n  override_fields = gid=12\n}\n", tmp_path)
    assert not own_problems(diags)
    result = lookup.authenticate("bob", "pw", "imap", "10.1.2.3")
    assert result.extra == {"quota": "5", "nets": "10.1.2.3"}
    assert result.userdb_fields == {"home": "/d/bob", "mail": "maildir:/o/bob"}
    prefetched = lookup.lookup_user("bob", "imap", prefetched=result.userdb_fields)
    assert (prefetched.home, prefetched.mail, prefetched.gid) == ("/d/bob", "maildir:/o/bob",
                                                                 None)
    # without a login the prefetch userdb knows nothing and the passwd-file userdb answers
    looked_up = lookup.lookup_user("bob", "lmtp")
    assert (looked_up.home, looked_up.mail, looked_up.gid) == ("/def/bob", "maildir:~/M", "12")


def test_bad_field_templates_are_reported(tmp_path):
    _lookup, diags = lookup_from_conf(
        "passdb {\n  driver = pam\n  default_fields = a=%z\n}\n"
        "userdb {\n  driver = passwd\n  override_fields = =x\n}\n", tmp_path)
    assert [d.message for d in own_problems(diags)] == [
        "passdb default_fields: a=%z: Unknown variable '%z'",
        "userdb override_fields: =x: empty name"]


def test_bad_auth_username_format_is_fatal_and_the_default_is_used(tmp_path):
    lookup, diags = lookup_from_conf("auth_username_format = %Lz\n", tmp_path)
    assert [str(d) for d in own_problems(diags)] == [
        f"fatal: {tmp_path}/dovecot.conf, line 1: auth_username_format: "
        "Unknown variable '%z'"]
    assert lookup.login_name("Bob", "imap") == "bob"
