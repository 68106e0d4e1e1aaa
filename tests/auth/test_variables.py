"""Dovecot `%` variables: documented forms, modifiers, substrings, errors, fuzz."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from roost.auth.variables import VariableError, check, expand, split_user, user_values

VALUES = user_values("Bob.Smith@Abc.Mail", service="imap", rip="192.0.2.7", lip="127.0.0.1",
                     home="/home/bob")


@pytest.mark.parametrize("template, expected", [
    ("%u", "Bob.Smith@Abc.Mail"),
    ("%n", "Bob.Smith"),
    ("%d", "Abc.Mail"),
    ("%s/%r/%l%h", "imap/192.0.2.7/127.0.0.1/home/bob"),
    ("%{user}|%{username}|%{domain}|%{service}|%{home}|%{rip}|%{lip}",
     "Bob.Smith@Abc.Mail|Bob.Smith|Abc.Mail|imap|/home/bob|192.0.2.7|127.0.0.1"),
    ("%Lu", "bob.smith@abc.mail"),
    ("%Ln", "bob.smith"),
    ("%Ud", "ABC.MAIL"),
    ("%L{domain}", "abc.mail"),
    ("%%u %%", "%u %"),
    ("/var/vmail/%Ld/%Ln", "/var/vmail/abc.mail/bob.smith"),
    ("%1Ln", "b"),
    ("%2.1n", "b"),
    ("%-5.3Ld", ".ma"),
    ("%0.-5u", "Bob.Smith@Abc"),
    ("%012Ld", "0000abc.mail"),
    ("%Rn", "htimS.boB"),
    ("%Dd", "Abc,dc=Mail"),
    ("%Mn", hashlib.md5(b"Bob.Smith").hexdigest()),
    ("%{session}", ""),
    ("no variables", "no variables"),
])
def test_documented_forms(template, expected):
    assert expand(template, VALUES) == expected


def test_escape_modifier_backslashes_quotes():
    assert expand("%Eu", user_values("a\"b'c\\d")) == "a\\\"b\\'c\\\\d"


def test_hex_and_trim_modifiers():
    assert expand("%Xi", {"uid": "255"}) == "ff"
    assert expand("%T{mail}", {"mail": "x  "}) == "x"


def test_missing_values_expand_empty():
    assert expand("[%h][%r][%{rip}]", user_values("bob")) == "[][][]"
    assert split_user("bob") == ("bob", "")
    assert split_user("a@b@c") == ("a", "b@c")


def test_environment_and_pid(monkeypatch):
    monkeypatch.setenv("ROOST_TEST_VAR", "v1")
    assert expand("%{env:ROOST_TEST_VAR}", {}) == "v1"
    assert expand("%{pid}", {}).isdigit()


def test_values_are_not_reexpanded():
    assert expand("%u", user_values("%n%{x}")) == "%n%{x}"


@pytest.mark.parametrize("template, message", [
    # Dovecot 2.3.19's words (auth log: "Failed to expand template: Unknown variable ...")
    ("%z", "Unknown variable '%z'"),
    ("%{nonesuch}", "Unknown variable '%nonesuch'"),
    ("%Lq", "Unknown variable '%q'"),
    ("%{user", "Unknown variable '%{'"),
])
def test_errors_name_the_variable(template, message):
    with pytest.raises(VariableError) as caught:
        expand(template, VALUES)
    assert str(caught.value) == message
    assert check(template) == message


@pytest.mark.parametrize("template, expected", [
    ("abc%", "abc"), ("%L", ""), ("x%2.u", "xb.Smith@Abc.Mail")])
def test_dangling_forms_expand_like_dovecot(template, expected):
    assert expand(template, VALUES) == expected


def test_check_accepts_valid_templates():
    assert check("/var/vmail/%d/%n/%{env:HOME}/%%") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("%{}.-0123456789LUERXTMDundshlrpwxq:@ \0é"),
               max_size=40),
       st.text(max_size=20))
def test_fuzz_expand_only_raises_variable_error(template, user):
    try:
        result = expand(template, user_values(user))
    except VariableError as error:
        assert str(error)
        assert check(template) is not None
    else:
        assert isinstance(result, str)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(template):
    try:
        expand(template, VALUES)
    except VariableError:
        pass
