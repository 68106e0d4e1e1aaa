"""main.cf parsing (roost.config.main_cf): syntax, malformed files, garbage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from roost.config.diagnostics import Diagnostics, Severity
from roost.config.load import load_config
from roost.config.main_cf import (comment_out_text, edit_text, parse_main_cf,
                                  parse_main_cf_text)

PATH = "/etc/roost/main.cf"


def parse(text: str | bytes):
    diags = Diagnostics()
    return parse_main_cf_text(text, PATH, diags), diags


def test_assignments_keep_value_file_and_lines():
    main_cf, diags = parse("# c\nmyhostname = mail.example.com\nmydestination = a,\n  b\n\tc\n")
    assert not diags.items
    host, dest = main_cf.assignments
    assert (host.name, host.value, host.file, host.line, host.end_line) == \
        ("myhostname", "mail.example.com", PATH, 2, 2)
    assert (dest.value, dest.line, dest.end_line) == ("a,  b\tc", 3, 5)


def test_comments_and_blank_lines_inside_a_continued_value_are_skipped():
    main_cf, _ = parse("a = 1\n# comment\n\n   \n  # indented comment\n  2\n")
    assert main_cf.value("a") == "1  2"


def test_hash_after_text_is_part_of_the_value():
    main_cf, _ = parse("relayhost = #notcomment\nsmtpd_banner = x # y\n")
    assert main_cf.value("relayhost") == "#notcomment"
    assert main_cf.value("smtpd_banner") == "x # y"


def test_whitespace_around_equals_and_value_is_dropped():
    main_cf, _ = parse("a=1\nb   =   2  \nc =\t3\t\nd =\ne= = x\n")
    assert [main_cf.value(n) for n in "abcde"] == ["1", "2", "3", "", "= x"]


def test_last_assignment_wins_with_a_warning():
    main_cf, diags = parse("a = 1\nb = x\na = 2\n")
    assert main_cf.value("a") == "2"
    assert main_cf.names() == ("b", "a")
    assert [str(d) for d in diags.items] == \
        [f"warning: {PATH}, line 3: overriding earlier entry: a=1"]
    assert [a.value for a in main_cf.assignments] == ["1", "x", "2"]


def test_crlf_files_read_like_lf_files():
    crlf, _ = parse("a = 1\r\nb = x\r\n  y\r\n\r\n")
    lf, _ = parse("a = 1\nb = x\n  y\n\n")
    assert crlf.value("a") == "1" and crlf.value("b").split() == lf.value("b").split()


MALFORMED = [
    ("missing-equals", "myhostname = ok\nthis has no equals\n", Severity.FATAL, 2,
     "missing '=' after parameter name"),
    ("blank-in-name", "my host = x\n", Severity.FATAL, 1, "missing '=' after parameter name"),
    ("empty-name", "= value\n", Severity.FATAL, 1, "missing parameter name"),
    ("continuation-at-start", "  myhostname = x\nmydomain = y\n", Severity.WARNING, 1,
     "logical line must not start with whitespace"),
    ("nul-byte", "a = 1\nb = x\0y\n", Severity.WARNING, 2, "NUL byte"),
    ("duplicate", "a = 1\na = 2\n", Severity.WARNING, 2, "overriding earlier entry"),
]


@pytest.mark.parametrize("text, severity, line, message",
                         [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_lines_give_a_file_line_diagnostic(text, severity, line, message):
    _, diags = parse(text)
    found = [d for d in diags.items if message in d.message]
    assert found, [str(d) for d in diags.items]
    assert (found[0].severity, found[0].file, found[0].line) == (severity, PATH, line)
    assert str(found[0]).startswith(f"{severity.value}: {PATH}, line {line}: ")


def load_with(tmp_path, main_cf: str):
    (tmp_path / "main.cf").write_text(main_cf)
    (tmp_path / "master.cf").write_text("")
    return load_config(str(tmp_path)).diagnostics


CONFIG_ERRORS = [
    ("expansion-loop", "alpha = $beta\nbeta = $alpha\nmyorigin = $alpha\n", 3,
     "cannot expand myorigin: expansion loop"),
    ("unterminated-brace", "myhostname = ${mydomain\n", 1, "truncated macro reference"),
    ("bad-typed-value", "message_size_limit = lots\n", 1, "message_size_limit"),
    ("bad-boolean", "smtpd_tls_auth_only = maybe\n", 1, "smtpd_tls_auth_only"),
    ("bad-time", "smtpd_timeout = 5 minutes\n", 1, "smtpd_timeout"),
    ("bad-choice", "smtpd_tls_security_level = always\n", 1, "smtpd_tls_security_level"),
    ("bad-compat-level", "compatibility_level = 3.x\n", 1, "compatibility_level"),
    ("bad-inet-interfaces", "myhostname = x.example\ninet_interfaces = 10.255.255.254\n", 2,
     "no local interface found for 10.255.255.254"),
]


@pytest.mark.parametrize("text, line, message", [case[1:] for case in CONFIG_ERRORS],
                         ids=[case[0] for case in CONFIG_ERRORS])
def test_values_that_cannot_be_used_are_fatal_at_load(tmp_path, text, line, message):
    diags = load_with(tmp_path, text)
    fatal = [d for d in diags.fatals if message in d.message]
    assert fatal, [str(d) for d in diags.items]
    assert fatal[0].file == str(tmp_path / "main.cf") and fatal[0].line == line


def test_a_file_with_several_errors_lists_all_of_them(tmp_path):
    text = ("  leading = whitespace\n"
            "myhostname = ok.example\n"
            "no equals sign here\n"
            "message_size_limit = lots\n"
            "alpha = $beta\nbeta = $alpha\nrelayhost = $alpha\n"
            "smtpd_banner = ${unterminated\n"
            "bogus_parameter_name = 1\n"
            "= nameless\n")
    diags = load_with(tmp_path, text)
    lines = {(d.severity, d.line) for d in diags.items}
    for expected in [(Severity.WARNING, 1), (Severity.FATAL, 3), (Severity.FATAL, 4),
                     (Severity.FATAL, 7), (Severity.FATAL, 8), (Severity.WARNING, 9),
                     (Severity.FATAL, 10)]:
        assert expected in lines, [str(d) for d in diags.items]


def test_missing_file_is_fatal_unless_allowed(tmp_path):
    diags = Diagnostics()
    main_cf = parse_main_cf(str(tmp_path / "main.cf"), diags)
    assert not main_cf.exists and diags.has_fatal()
    diags = Diagnostics()
    assert parse_main_cf(str(tmp_path / "main.cf"), diags, missing_ok=True).assignments == ()
    assert not diags.items


def test_non_utf8_bytes_survive_unchanged():
    main_cf, diags = parse(b"smtpd_banner = caf\xe9 \xff\xfe\n")
    assert not diags.items
    assert main_cf.value("smtpd_banner").encode("utf-8", "surrogateescape") == b"caf\xe9 \xff\xfe"


def test_edit_and_comment_out_helpers():
    text = "a = 1\n  cont\n# c\nb = 2\n"
    assert edit_text(text, [("a", "x"), ("new", "y")]) == ("a = x\n# c\nb = 2\nnew = y\n", [])
    assert comment_out_text(text, ["a"]) == ("#a = 1\n#  cont\n# c\nb = 2\n", [])
    assert edit_text("a=1\na=2\n", [("a", "3")])[1] == ['multiple entries for "a"']


line_text = st.text(alphabet=st.sampled_from(list("ab_=$#{} \t\r\0\n.") + ["\u00e9", "\ufffd"]),
                    max_size=300)


@settings(max_examples=300, deadline=None)
@given(line_text)
def test_garbage_text_gives_only_diagnostics(text):
    main_cf, diags = parse(text)
    for assignment in main_cf.assignments:
        assert assignment.name and assignment.line >= 1
    for item in diags.items:
        assert item.file == PATH and (item.line is None or item.line >= 1)
    edit_text(text, [("a", "b")])
    comment_out_text(text, ["a"])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_bytes_give_only_diagnostics(data):
    main_cf, diags = parse(data)
    for assignment in main_cf.assignments:
        assert "\0" not in assignment.value


def test_huge_lines_and_many_continuations_parse(tmp_path):
    text = "a = " + "x" * 1_000_000 + "\n" + "b = 1\n" + "  more\n" * 20_000
    main_cf, diags = parse(text)
    assert len(main_cf.value("a")) == 1_000_000 and main_cf.get("b").end_line == 20_002
    assert not diags.items
