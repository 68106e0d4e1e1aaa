"""Malformed master.cf: every problem is one file:line diagnostic, and one run lists them all.

Wording follows master(8), which is what refuses to start Postfix; where postconf(1) also
rejects the entry, the real postconf must fail on the same input.
"""

from __future__ import annotations

import subprocess

import pytest

from roost.config.diagnostics import Diagnostics, Severity
from roost.config.master_cf import parse_master_cf, parse_master_cf_text
from tests.conftest import require_tool
from tests.config.test_master_cf import config_dir, postconf

FATAL, WARNING = Severity.FATAL, Severity.WARNING

# (master.cf text, severity, message, postconf also rejects it)
CASES = {
    "too_few_fields": ("smtp inet n - n - -\n", FATAL, 'missing "command" field', True),
    "only_a_name": ("smtp\n", FATAL, 'missing "transport type" field', True),
    "bad_type": ("foo bar n - y - - smtpd\n", FATAL, "bad transport type: bar", True),
    "bad_private": ("a unix x - n - - cmd\n", FATAL, 'field "private": bad value: "x"', True),
    "bad_unpriv": ("a unix - yes n - - cmd\n", FATAL, 'field "unprivileged": bad value: "yes"', True),
    "bad_chroot": ("a unix - - 1 - - cmd\n", FATAL, 'field "chroot": bad value: "1"', True),
    "bad_wakeup": ("a unix - - n abc - cmd\n", FATAL, 'field "wakeup_time": bad value: "abc"', True),
    "negative_wakeup": ("a unix - - n -5 - cmd\n", FATAL, 'field "wakeup_time": bad value: "-5"', True),
    "bare_question_wakeup": ("a unix - - n ? - cmd\n", FATAL, 'field "wakeup_time": bad value: "?"', False),
    "bad_maxproc": ("a unix - - n - 5x cmd\n", FATAL, 'field "max_proc": bad value: "5x"', True),
    "o_without_value": ("smtp inet n - n - - smtpd -o\n", FATAL, "option requires an argument -- 'o'", False),
    "o_without_equals": ("smtp inet n - n - - smtpd -o foo\n", FATAL,
                         "invalid \"-o foo\" option value: missing '=' after attribute name", False),
    "o_without_name": ("smtp inet n - n - - smtpd -o =x\n", FATAL,
                       'invalid "-o =x" option value: missing attribute name', False),
    "o_braced_without_equals": ("smtp inet n - n - - smtpd -o { a b = c }\n", FATAL,
                                "invalid \"-o a b = c\" option value: missing '=' after attribute name", False),
    "missing_brace": ("smtp inet n - n - - smtpd -o {a=b\n", FATAL, "missing '}' in \"{a=b\"", False),
    "text_after_brace": ("a unix - - n - - pipe {x}y\n", FATAL, "syntax error after '}' in \"{x}y\"", False),
    "inet_private": ("smtp inet - - n - - smtpd\n", FATAL, "inet service cannot be private", False),
    "inet_unclosed_bracket": ("[::1 inet n - n - - smtpd\n", FATAL, 'missing "]" in "[::1"', False),
    "inet_missing_port": ("127.0.0.1: inet n - n - - smtpd\n", FATAL,
                          'missing service information in "127.0.0.1:"', False),
    "inet_numeric_garbage": ("25x inet n - n - - smtpd\n", FATAL,
                             'garbage after numerical service in "25x"', False),
    "inet_bad_host": ("a%b:25 inet n - n - - smtpd\n", FATAL,
                      'valid hostname or network address required in "a%b:25"', False),
    "unix_name_with_slash": ("../x unix - - n - - smtp\n", FATAL,
                             'bad service name "../x": a unix service name must be a plain file name', False),
    "nul_byte": ("smtp inet n - n - - smtpd\0\n", FATAL, 'NUL character in master.cf entry "smtp inet n - n - - smtpd\\x00"', None),
    "continuation_first": ("  -o a=b\n", WARNING,
                           'logical line must not start with whitespace: "  -o a=b" (ignored)', None),
    "unknown_option": ("a unix - - n - - smtp -q\n", WARNING, "unknown daemon option -- 'q'", False),
    "braces_attached_to_o": ("a unix - - n - - smtp -o{a=b}\n", WARNING,
                             '"-o{a=b}": Postfix does not remove {} attached to -o; '
                             'write "-o { name = value }"', False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_malformed_entry_is_one_located_diagnostic(tmp_path, name):
    text, severity, message, postconf_rejects = CASES[name]
    directory = config_dir(tmp_path, text)
    diags = Diagnostics()
    parse_master_cf(str(directory / "master.cf"), diags)
    assert [(d.severity, d.file, d.line, d.message) for d in diags.items] == [
        (severity, str(directory / "master.cf"), 1, message)]


def test_postconf_rejects_the_same_field_errors(tmp_path):
    # postconf sleeps a second before a fatal exit: ask about every case at once.
    checked = {name: case for name, case in CASES.items() if case[3] is not None}
    running = {}
    for name, (text, _severity, _message, _rejects) in checked.items():
        directory = config_dir(tmp_path / name, text)
        running[name] = subprocess.Popen([require_tool("postconf"), "-c", str(directory), "-M"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    outcome = {name: process.wait(timeout=30) != 0 for name, process in running.items()}
    for process in running.values():
        process.stderr.close()
    assert outcome == {name: case[3] for name, case in checked.items()}


def test_fatal_entries_are_left_out_and_the_rest_kept():
    diags = Diagnostics()
    services = parse_master_cf_text("bad bar n - n - - x\ngood unix - - n - - x\n", "m.cf", diags)
    assert [s.name for s in services] == ["good"]
    assert diags.has_fatal()


def test_a_bad_override_keeps_the_entry_and_the_good_overrides():
    diags = Diagnostics()
    (service,) = parse_master_cf_text("smtp inet n - n - - smtpd -o a=1 -o junk -o b=2\n", "m.cf", diags)
    assert service.overrides == (("a", "1"), ("b", "2"))
    assert [d.severity for d in diags.items] == [FATAL]


def test_every_problem_of_a_file_is_listed_with_its_line(tmp_path):
    text = "\n".join([
        "  -o orphan=1",                              # 1 continuation at file start
        "smtp      inet  n       -       y       -       -       smtpd",  # 2 fine
        "smtp      inet  n       -       y       -",  # 3 too few fields
        "foo       bar   n       -       y       -       -       smtpd",  # 4 bad type
        "pickup    unix  x       -       y       60      1       pickup",  # 5 bad boolean
        "qmgr      unix  n       -       n       3oo     1       qmgr",   # 6 bad wakeup
        "cleanup   unix  n       -       y       -       lots    cleanup",  # 7 bad maxproc
        "submission inet n       -       n       -       -       smtpd",  # 8
        "  -o syslog_name=postfix/submission",         # 9
        "  -o smtpd_tls_security_level",               # 10 -o without '=' (entry at line 8)
        "smtps     inet  n       -       n       -       -       smtpd -o",  # 11 -o without value
        "# a comment",                                 # 12
        "2525      inet  -       -       n       -       -       smtpd",  # 13 inet cannot be private
        "smtp      inet  n       -       y       -       -       smtpd",  # 14 duplicate of line 2
        "relay     unix  -       -       n       -       -       smtp -o {x=y",  # 15 missing }
        "",
    ])
    directory = config_dir(tmp_path, text)
    diags = Diagnostics()
    services = parse_master_cf(str(directory / "master.cf"), diags)
    found = [(d.line, d.severity) for d in diags.items]
    assert found == [(1, WARNING), (3, FATAL), (4, FATAL), (5, FATAL), (6, FATAL), (7, FATAL),
                     (8, FATAL), (11, FATAL), (13, FATAL), (15, FATAL), (14, WARNING)]
    assert all(d.file == str(directory / "master.cf") for d in diags.items)
    assert [s.line for s in services] == [2, 8, 11, 14, 15]
    assert postconf(directory, "-M").returncode != 0  # real postconf refuses this file too


def test_diagnostics_quote_bounded_printable_excerpts():
    diags = Diagnostics()
    parse_master_cf_text("x " + "y" * 5000 + "\x1b[31m n - n - - cmd\n", "m.cf", diags)
    (diagnostic,) = diags.items
    assert len(diagnostic.message) < 200 and "\x1b" not in diagnostic.message
