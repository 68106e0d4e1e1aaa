"""Malformed dovecot.conf files: each problem is one diagnostic with file and line, parsing
goes on, and Debian's doveconf refuses the same file (exit 89) unless noted."""

from __future__ import annotations

import os

import pytest

from tests.data.dovecot.oracle import NOT_YET, messages, parse, real_doveconf, write


def fatal_lines(diags) -> list[tuple[str, int | None, str]]:
    return [(d.file, d.line, d.message) for d in diags.fatals]


def assert_doveconf_refuses(path: str, text: str, args: tuple[str, ...] = ("-n",)) -> None:
    real = real_doveconf(*args, "-c", path)
    assert real.returncode == 89, real.stdout
    assert text in real.stderr


# name, files, expected fatal (file, line, message start), Dovecot's message, doveconf args
CASES = [
    ("unterminated section", {"dovecot.conf": "ssl = no\nservice imap {\n  executable = x\n"},
     ("dovecot.conf", 2, "Missing '}' (section service imap"), "Missing '}'", ()),
    ("stray brace", {"dovecot.conf": "ssl = no\n}\nssl = yes\n"},
     ("dovecot.conf", 2, "Unexpected '}'"), "line 2: Unexpected '}'", ()),
    ("missing <file", {"dovecot.conf": "ssl = no\nssl_cert = </nonexistent/cert.pem\n"},
     ("dovecot.conf", 2, "ssl_cert: Can't open file /nonexistent/cert.pem: No such file"),
     "line 2: ssl_cert: Can't open file /nonexistent/cert.pem", ("-x",)),
    ("unreadable include", {"dovecot.conf": "ssl = no\n!include loop.conf\n"},
     ("dovecot.conf", 2, "Couldn't open include file"), "Too many levels of symbolic links", ()),
    ("include loop", {"dovecot.conf": "ssl = no\n!include b.conf\n",
                      "b.conf": "ssl = yes\n!include dovecot.conf\n"},
     ("b.conf", 2, "Recursive include file: "), "b.conf line 2: Recursive include file", ()),
    ("missing include", {"dovecot.conf": "ssl = no\n!include conf.d/*.conf\n"},
     ("dovecot.conf", 2, "No matches"), "line 2: No matches", ()),
    ("bad line", {"dovecot.conf": "ssl = no\nthis is not a setting\n"},
     ("dovecot.conf", 2, "Expecting '{'"), "line 2: Expecting '{'", ()),
    ("unknown directive", {"dovecot.conf": "!includ conf.d/x.conf\n"},
     ("dovecot.conf", 1, "Unknown directive: !includ"), "line 1: Expecting '{'", ()),
    ("settings on the brace line", {"dovecot.conf": "passdb { driver = pam }\n"},
     ("dovecot.conf", 1, "Garbage after '{'"), "line 1: Garbage after '{'", ()),
    ("missing key", {"dovecot.conf": "= yes\n"},
     ("dovecot.conf", 1, "Missing key name"), "line 1: Missing key name", ()),
    ("unknown variable", {"dovecot.conf": "login_greeting = hi $nosuch\n"},
     ("dovecot.conf", 1, "Unknown variable: $nosuch"), "line 1: Unknown variable: $nosuch",
     ("-x",)),
    ("bad boolean", {"dovecot.conf": "disable_plaintext_auth = true\n"},
     ("dovecot.conf", 1, "Invalid boolean value: true (use yes or no)"),
     "line 1: Invalid boolean value: true", ()),
    ("time without unit", {"dovecot.conf": "auth_failure_delay = 5\n"},
     ("dovecot.conf", 1, "Time interval '5' is missing units"), "missing units", ()),
    ("bad size", {"dovecot.conf": "imap_max_line_length = 1P\n"},
     ("dovecot.conf", 1, "Invalid size: 1P"), "line 1: Invalid size: 1P", ()),
    ("bad ssl", {"dovecot.conf": "ssl = maybe\n"},
     ("dovecot.conf", 1, "Invalid value: maybe"), "line 1: Invalid value: maybe", ()),
    ("bad port", {"dovecot.conf": "service imap-login {\n inet_listener imap {\n"
                                  "  port = 70000\n }\n}\n"},
     ("dovecot.conf", 3, "Invalid port number 70000"), "line 3: Invalid port number 70000", ()),
    ("passdb without driver", {"dovecot.conf": "passdb {\n  args = /etc/x\n}\n"},
     ("dovecot.conf", 1, "passdb is missing driver"), "passdb is missing driver", ()),
    ("nested protocol", {"dovecot.conf": "protocol imap {\n protocol pop3 {\n }\n}\n"},
     ("dovecot.conf", 2, "Nested protocol { protocol { .. } } block not allowed"),
     "line 2: Nested protocol", ()),
    ("protocol around remote", {"dovecot.conf": "protocol imap {\n remote 1.2.3.4 {\n }\n}\n"},
     ("dovecot.conf", 2, "protocol { remote { .. } } not allowed"), "not allowed", ()),
    ("bad network", {"dovecot.conf": "remote 1.2.3.4/33 {\n ssl = no\n}\n"},
     ("dovecot.conf", 1, "Invalid network mask: 33"), "line 1: Invalid network mask: 33", ()),
    ("auth setting in remote", {"dovecot.conf": "remote 1.2.3.4 {\n auth_mechanisms = x\n}\n"},
     ("dovecot.conf", 2, "Auth settings not supported inside local/remote blocks"),
     "line 2: Auth settings not supported", ()),
    ("filter conflict", {"dovecot.conf": "protocol pop3 {\n pop3_uidl_format = %u\n}\n"
                                         "remote 1.2.3.4 {\n protocol pop3 {\n"
                                         "  pop3_uidl_format = %v\n }\n}\n"},
     ("dovecot.conf", 6, "Conflict in setting pop3_uidl_format found from filter at "),
     "Conflict in setting pop3_uidl_format", ()),
    ("unknown protocol", {"dovecot.conf": "protocols = imap pop4\nssl = no\n"},
     ("dovecot.conf", 1, "protocols: Unknown protocol: pop4"), "Unknown protocol: pop4", ()),
    ("duplicate listener port between two services",
     {"dovecot.conf": "protocols = imap pop3\nlisten = 127.0.0.1\nssl = no\n"
                      "service imap-login {\n  inet_listener imap {\n    port = 11000\n  }\n}\n"
                      "service pop3-login {\n  inet_listener pop3 {\n    port = 11000\n  }\n}\n"},
     ("dovecot.conf", 10, "duplicate listener: 11000:127.0.0.1 (service pop3-login pop3; also "
      "service imap-login imap at "), "duplicate listener: 11000:", ()),
]


@pytest.mark.parametrize(("files", "expected", "dovecot_says", "args"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed(tmp_path, files, expected, dovecot_says, args):
    for name, text in files.items():
        write(tmp_path, text, name)
    os.symlink("loop.conf", tmp_path / "loop.conf")
    path = str(tmp_path / "dovecot.conf")
    _config, diags = parse(path)
    fatals = fatal_lines(diags)
    file, line, message = expected
    assert len(fatals) == 1, messages(diags)
    assert fatals[0][:2] == (str(tmp_path / file), line)
    assert fatals[0][2].startswith(message), fatals[0][2]
    assert_doveconf_refuses(path, dovecot_says, args or ("-n",))


def test_unterminated_sections_each_reported_where_opened(tmp_path):
    path = write(tmp_path, "service imap-login {\n  inet_listener imap {\n    port = 143\n")
    _config, diags = parse(path)
    assert [(d.line, d.message) for d in diags.fatals] == [
        (2, "Missing '}' (section inet_listener imap started here is never closed)"),
        (1, "Missing '}' (section service imap-login started here is never closed)")]


def test_include_try_is_quiet_about_missing_files_only(tmp_path):
    os.symlink("loop.conf", tmp_path / "loop.conf")
    os.symlink("nothing-here.conf", tmp_path / "dangling.conf")
    path = write(tmp_path, "!include_try missing.conf\n!include_try dangling.conf\n"
                 "!include_try loop.conf\nssl = no\n")
    config, diags = parse(path)
    assert config.root.get("ssl") == "no"
    assert not diags.has_fatal()
    # Dovecot is silent about the symlink loop too; roost warns but starts.
    assert [(d.line, d.message.split(":")[0]) for d in diags.items] == [
        (3, f"Couldn't open include file {tmp_path}/loop.conf")]
    assert real_doveconf("-n", "-c", path).returncode == 0


def test_main_file_missing(tmp_path):
    _config, diags = parse(str(tmp_path / "nope.conf"))
    assert messages(diags) == [f"fatal: {tmp_path}/nope.conf: open({tmp_path}/nope.conf) "
                               "failed: No such file or directory"]
    assert_doveconf_refuses(str(tmp_path / "nope.conf"), "failed: No such file or directory")


def test_several_errors_all_listed(tmp_path):
    """Dovecot stops at the first error; roost lists every one, in file order."""
    write(tmp_path, "ssl = no\n!include dovecot.conf\n", "loop.inc")
    path = write(tmp_path, "\n".join([
        "protocols = imap pop3",            # 1
        "ssl = sometimes",                  # 2 invalid value
        "what is this",                     # 3 Expecting '{'
        "}",                                # 4 stray
        "!include loop.inc",                # 5 (loop.inc line 2: recursive include)
        "!include none/*.conf",             # 6 no matches
        "!bogus",                           # 7 unknown directive
        "auth_failure_delay = 2",           # 8 missing units
        "ssl_key = </no/such/key.pem",      # 9 missing file
        "passdb {",                         # 10 missing driver
        "  args = x",                       # 11
        "}",                                # 12
        "service imap-login {",             # 13 never closed
        "  inet_listener imap {",           # 14
        "    port = 12345",                 # 15
        "  }",                              # 16
    ]) + "\n")
    _config, diags = parse(path)
    where = [(os.path.basename(d.file), d.line) for d in diags.fatals]
    assert sorted(where) == sorted([
        ("dovecot.conf", 2), ("dovecot.conf", 3), ("dovecot.conf", 4), ("loop.inc", 2),
        ("dovecot.conf", 6), ("dovecot.conf", 7), ("dovecot.conf", 8), ("dovecot.conf", 9),
        ("dovecot.conf", 10), ("dovecot.conf", 13)]), messages(diags)
    assert real_doveconf("-n", "-c", path).returncode == 89


def test_unknown_settings_are_fatal_and_unsupported_ones_warn(tmp_path):
    path = write(tmp_path, "disable_plaintex_auth = no\nmail_privileged_group = mail\n"
                 "mail_fsync = optimized\nservice imap {\n  vsz_limit = 1G\n  bogus = 1\n}\n"
                 "plugin {\n  quota = maildir\n  quota_rule = *:storage=1G\n}\n"
                 "passdb {\n  driver = sql\n  args = /etc/sql.conf\n}\n"
                 "protocols = imap submission\n"
                 "ssl = no\n")
    config, diags = parse(path)
    # Dovecot refuses to start on a name it does not know; roost does too.
    assert [str(d) for d in diags.fatals] == [f"fatal: {path}, line {n}: {m}" for n, m in [
        (1, "unknown setting: disable_plaintex_auth"),
        (6, "unknown setting: service/imap/bogus"),
    ]]
    assert [str(d) for d in diags.items if d not in diags.fatals
            and not d.message.endswith(NOT_YET)] == [
        f"warning: {path}, line {n}: {m}" for n, m in [
            (2, "unsupported setting: mail_privileged_group"),
            (5, "unsupported setting: service/imap/vsz_limit"),
            (9, "unsupported setting: plugin/quota"),
            (16, "unsupported setting: protocols submission"),
            (13, "unsupported setting: passdb driver sql"),
        ]]
    assert config.root.get("mail_fsync") == "optimized"  # the default: nothing to support
    assert "Unknown setting: disable_plaintex_auth" in real_doveconf("-n", "-c", path).stderr


def test_settings_roost_does_not_act_on_yet_are_reported_with_file_and_line(tmp_path):
    path = write(tmp_path, "protocols = imap\nlisten = 127.0.0.1\nssl = no\n"
                 "auth_mechanisms = plain login\nmail_max_userip_connections = 5\n"
                 "postmaster_address = pm@example.org\n"
                 "service imap-login {\n  inet_listener imap {\n    port = 12143\n  }\n}\n"
                 "plugin {\n  quota_rule = *:storage=1G\n}\n")
    _config, diags = parse(path)
    not_yet = [(d.line, d.message) for d in diags.items if d.message.endswith(NOT_YET)]
    # listeners, protocols and ssl are acted on by the master, auth_mechanisms by the auth
    # socket (roost.net.auth), quota_rule by the store; the rest is not silently taken
    assert not_yet == [(6, f"unsupported setting: postmaster_address {NOT_YET}")]
    assert not diags.has_fatal()
