"""dovecot.conf line syntax: values, quotes, comments, continuations, sections, includes,
`<file` and `$variables` -- each case checked against the real doveconf (Debian 2.3.19.1)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.config.dovecot_conf import logical_lines, section_header, split_line
from roost.config.diagnostics import Diagnostics
from tests.data.dovecot.oracle import (messages, parse, real_doveconf, roost_doveconf,
                                       same_output, without_header, write)

VALUES = [
    "plain", "spaced  out   ", "b#c", "b #c", '"b#c"', '"hello world"', "'single \"x\" q'",
    '"a\\"b"', '"abc', 'abc"def', '"a" b', '"a" "b"', '"a\\\\b\\nc\\x"', "'a\\'b'", '"  x  "',
    '""', "", "x \"#\" y # c", "I don't # know", '"a\\"', "it's \"#\" ok", "a \"b # c",
    '"a"b"', "\"a'", "x\\#y", "<relative.pem", "< /abs/file", '"<quoted"', "a=b", "{", "}",
    "a { b }", "$login_greeting x", "a\tb", '"\\"#"',
]


@pytest.mark.parametrize("value", VALUES)
def test_value_is_what_doveconf_reads(tmp_path, value):
    path = write(tmp_path, f"login_greeting = {value}\n")
    real = real_doveconf("-c", path, "-h", "login_greeting")
    code, mine, _err = roost_doveconf("-c", path, "-h", "login_greeting")
    assert (code, mine) == (real.returncode, real.stdout)


def test_values_print_like_doveconf_n(tmp_path):
    """-n quotes values with '#' or outer blanks, escaping quotes and backslashes."""
    body = "".join(f"  k{i} = {value}\n" for i, value in enumerate(VALUES)
                   if not value.endswith("\\"))
    path = write(tmp_path, f"plugin {{\n{body}}}\n")
    real, mine = same_output("-n", "-c", path)
    assert mine == real
    assert "k0 = plain" in mine


CONTINUATIONS = [
    "login_greeting = abc \\\n   def\\\nghi\n",
    "login_greeting = abc\\\ndef\n",
    "login_greeting = abc \\   \n   def\n",
    "login_greeting = abc \\\n  \\\n def\n",
    "login_greeting = abc\\\n\\\n\\\ndef\n",
    "login_greeting = abc  x\\\n  def\n",
    "login_greeting = abc \\\n\nssl = no\n",  # a blank line drops the unfinished line
    "login_greeting = abc \\\nssl = no\n",
    "login_greeting = \"a \\\n b\"\n",
    "login_greeting = abc\\\n  def  \\\n",  # the end of the file drops it too
    "service imap-login \\\n{\n}\nlogin_greeting = x\n",
    "login_greeting \\\n= x\n",
    "ssl = no\r\nlogin_greeting = crlf\r\n",
    "\tssl\t=\tno\t\nlogin_greeting= x\nauth_mechanisms =plain\n",
]


@pytest.mark.parametrize("text", CONTINUATIONS)
def test_continuation_lines_like_doveconf(tmp_path, text):
    path = write(tmp_path, text)
    real, mine = same_output("-c", path, "login_greeting", "ssl")
    assert mine == real


def test_ambiguous_hash_warns_like_dovecot(tmp_path):
    path = write(tmp_path, "login_greeting = b#c\n")
    config, diags = parse(path)
    assert config.root.get("login_greeting") == "b"
    assert f"warning: {path}, line 1: Ambiguous '#' character in line, treating it as " \
        "comment. Add a space before it to remove this warning." in messages(diags)
    assert "Ambiguous '#'" in real_doveconf("-c", path, "-n").stderr


SECTION_LINES = [
    ('service imap-login {', ("imap-login", None)),
    ('service {', ("", None)),
    ('service   imap  {  ', ("imap", None)),
    ('mailbox "Sent Messages" {', ("Sent Messages", None)),
    ('mailbox "a\\\\b" {', ("a\\b", None)),
    ('service imap{', (None, "Expecting '{'")),
    ('service a b {', (None, "Expecting '{'")),
    ('service imap { x', (None, "Garbage after '{'")),
    ('service { imap {', (None, "Garbage after '{'")),
    ('mailbox "A\\"B" {', (None, "Expecting '{'")),
    ('service "a b"x {', (None, "Expecting '{'")),
    ('foo', (None, "Expecting '{'")),
]


@pytest.mark.parametrize(("line", "expected"), SECTION_LINES)
def test_section_headers(line, expected):
    _key, rest = split_line(line)
    assert section_header(rest) == expected


@pytest.mark.parametrize(("line", "expected"), SECTION_LINES)
def test_section_headers_agree_with_doveconf(tmp_path, line, expected):
    """A header roost accepts, doveconf accepts; one it rejects, doveconf rejects."""
    key = line.split()[0]
    text = (f"namespace n {{\n {line}\n }}\n}}\n" if key == "mailbox"
            else f"{line}\n executable = x\n}}\n")
    path = write(tmp_path, text)
    real = real_doveconf("-n", "-c", path)
    if expected[0] is None:
        assert expected[1] in real.stderr
    else:
        assert expected[1] is None and real.returncode in (0, 89)
        assert "line 1" not in real.stderr and "line 2:" not in real.stderr


def test_sections_merge_and_nest(tmp_path):
    write(tmp_path, "namespace inbox {\n  mailbox Sent {\n    special_use = \\Sent\n  }\n}\n",
          "conf.d/b.conf")
    path = write(tmp_path, "namespace inbox {\n  inbox = yes\n}\n!include conf.d/*.conf\n"
                 "passdb {\n driver = pam\n}\npassdb {\n driver = passwd-file\n args = /x\n}\n"
                 "plugin {\n quota_rule = *:storage=1G\n}\nplugin foo {\n quota = count\n}\n")
    config, diags = parse(path)
    assert not diags.has_fatal(), messages(diags)
    root = config.root
    assert [(s.type, s.name) for s in root.children] == [
        ("namespace", "inbox"), ("passdb", ""), ("passdb", ""), ("plugin", "")]
    inbox = root.section("namespace", "inbox")
    assert inbox.get("inbox") == "yes"
    assert inbox.section("mailbox", "Sent").get("special_use") == "\\Sent"
    assert [s.get("driver") for s in root.sections("passdb")] == ["pam", "passwd-file"]
    assert root.section("plugin").settings.keys() == {"quota_rule", "quota"}
    assert (inbox.file, inbox.line) == (path, 1)
    real, mine = same_output("-n", "-c", path)
    assert mine == real


def test_sections_span_included_files(tmp_path):
    """Dovecot keeps one section stack across includes: a file may close what another opened."""
    write(tmp_path, "executable = x\n}\nssl = no\nservice pop3 {\n", "b.conf")
    path = write(tmp_path, "service imap {\n!include b.conf\n}\n")
    config, diags = parse(path)
    assert messages(diags) == [f"warning: {tmp_path}/b.conf, line 1: unsupported setting: "
                               "service/imap/executable"]
    assert config.root.section("service", "imap").get("executable") == "x"
    assert config.root.get("ssl") == "no"
    real, mine = same_output("-n", "-c", path)
    assert mine == real


def test_include_glob_order_and_relative_paths(tmp_path):
    for name in ("b", "a", "C", "_", "10-x", "9", ".hidden"):
        write(tmp_path, f"mail_plugins = $mail_plugins {name}\n", f"conf.d/{name}.conf")
    write(tmp_path, "mail_plugins = $mail_plugins sub\n", "conf.d/sub.inc")
    write(tmp_path, "!include sub.inc\n!include_try none-*.conf\n", "conf.d/z.conf")
    os.mkdir(tmp_path / "conf.d" / "dir.conf")
    path = write(tmp_path, "!include conf.d/*.conf\n!include_try missing.conf\n")
    config, diags = parse(path)
    assert config.root.get("mail_plugins") == " 10-x 9 C _ a b sub"
    assert not diags.has_fatal()
    assert [m for m in messages(diags) if "directory" in m]  # roost says it skipped dir.conf
    real, mine = same_output("-n", "-c", path)
    assert mine == real
    assert len(config.files) == 9


def test_file_values(tmp_path):
    write(tmp_path, "hello\nworld\n", "sub/greeting.txt")
    write(tmp_path, "login_greeting = <greeting.txt\nssl_key = < greeting.txt\n",
          "sub/x.conf")
    path = write(tmp_path, "!include sub/x.conf\n")
    config, diags = parse(path)
    assert not diags.has_fatal()
    greeting = config.root.settings["login_greeting"]
    assert greeting.value == "hello\nworld\n"
    assert greeting.raw == "<greeting.txt"
    assert greeting.path == str(tmp_path / "sub" / "greeting.txt")
    real = real_doveconf("-x", "-c", path, "-h", "login_greeting")
    assert greeting.value + "\n" == real.stdout
    for args in (("-n",), ("-x", "-n"), ("-n", "-P"), ("-x", "-P", "-n")):
        real_out, mine = same_output(*args, "-c", path)
        assert mine == real_out, args
    unexpanded, diags = parse(path, expand=False)
    assert unexpanded.root.get("login_greeting") == "<greeting.txt" and not diags.has_fatal()


def test_self_reference_and_filters(tmp_path):
    path = write(tmp_path, "mail_plugins = acl\nmail_plugins = $mail_plugins quota\n"
                 "protocol imap {\n  mail_plugins = $mail_plugins imap_quota\n}\n"
                 "login_greeting = $login_greeting and more\nprotocols = $protocols imap\n"
                 "auth_mechanisms = plain $ssl\n")
    config, diags = parse(path, expand=False)
    assert not diags.has_fatal(), messages(diags)
    root = config.root
    assert root.get("mail_plugins") == "acl quota"
    assert root.section("protocol", "imap").get("mail_plugins") == "acl quota imap_quota"
    assert root.get("login_greeting") == "Dovecot (Debian) ready. and more"
    assert root.get("protocols") == " imap"
    assert root.get("auth_mechanisms") == "plain $ssl"  # only -x expands other settings
    for args in (("-n",), ("-x", "-n")):
        real, mine = same_output(*args, "-c", path)
        assert mine == real, args


@pytest.mark.parametrize("value", ["$ssl", "x $ssl y", "a$ssl", "$ssl$ssl", "${ssl}", "$sslx",
                                   "$ssl,x", "$unknown", '"$ssl"', "$listen", "$", "$$",
                                   "$mail_location"])
def test_expanded_variables_like_doveconf_x(tmp_path, value):
    path = write(tmp_path, f"ssl = no\nlogin_greeting = {value}\n")
    real = real_doveconf("-x", "-c", path, "-h", "login_greeting")
    config, diags = parse(path)
    if real.returncode:
        assert "Unknown variable" in real.stderr
        assert any("Unknown variable" in m and m.startswith("fatal") for m in messages(diags))
    else:
        assert config.root.get("login_greeting") + "\n" == real.stdout
        assert not diags.has_fatal()


def test_self_reference_in_a_section_is_unknown(tmp_path):
    path = write(tmp_path, "passdb {\n driver = pam\n args = $args x\n}\n")
    _config, diags = parse(path, expand=False)
    assert messages(diags) == [f"fatal: {path}, line 3: Unknown variable: $args"]
    assert "line 3: Unknown variable: $args" in real_doveconf("-n", "-c", path).stderr


def test_logical_lines_numbering():
    diags = Diagnostics()
    text = "a = 1\n# c\n\nb = 2 \\\n  3\n  c = 4 # x\nx\0y = 1\n"
    assert list(logical_lines(text, "f", diags)) == [(1, "a = 1"), (5, "b = 2 3"),
                                                     (6, "c = 4"), (7, "x")]
    assert [d.line for d in diags.items] == [7]


ALPHABET = st.sampled_from(list(" \"'#\\$ab=\t{}<"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(ALPHABET, max_size=12), min_size=1, max_size=12))
def test_random_values_read_like_doveconf(tmp_path_factory, values):
    """Differential fuzz of the value grammar: a plugin block of random values prints the
    same through roost's doveconf -n as through Debian's."""
    directory = tmp_path_factory.mktemp("fuzz")
    body = "".join(f"  k{i} = {value}\n" for i, value in enumerate(values))
    path = write(directory, f"plugin {{\n{body}  end = 1\n}}\n")
    real = real_doveconf("-n", "-c", path)
    code, mine, _err = roost_doveconf("-n", "-c", path)
    if real.returncode == 0:
        assert code == 0
        assert without_header(mine) == without_header(real.stdout)
    else:
        assert code != 0


VARIABLE_TOKENS = st.sampled_from(["$mail_plugins", "$ssl", "$login_greeting", "a", " ", "  ",
                                   "\t", '"', "'", "#", "$", "\\", "x$y", "$nosuch"])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(VARIABLE_TOKENS, max_size=6).map("".join), min_size=1, max_size=4),
       st.booleans())
def test_random_variables_expand_like_doveconf(tmp_path_factory, values, expand):
    """Differential fuzz of `$name` words, with and without -x, at the top level."""
    directory = tmp_path_factory.mktemp("vars")
    text = "ssl = no\n" + "".join(f"mail_plugins = {v}\nlogin_greeting = {v}\n" for v in values)
    path = write(directory, text)
    args = ("-x", "-n") if expand else ("-n",)
    real = real_doveconf(*args, "-c", path)
    code, mine, _err = roost_doveconf(*args, "-c", path)
    assert (code == 0) == (real.returncode == 0)
    if code == 0:
        assert without_header(mine) == without_header(real.stdout)
