"""`roost doveconf` against Debian's doveconf 2.3.19.1 on the same files.

Outputs are compared without doveconf's leading header comments (`# 2.3.19.1 (...): FILE`,
`# Pigeonhole version ...`, `# OS: ...`, `# Hostname: ...`): the version and OS lines differ
by design, everything after them must be identical.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from tests.conftest import run_roost
from tests.data.dovecot.oracle import (FIXTURES, fixture_conf, real_doveconf, roost_doveconf,
                                       same_output, without_header, write)

IMPLEMENTED = ["protocols", "listen", "base_dir", "disable_plaintext_auth", "ssl", "ssl_cert",
               "ssl_key", "ssl_min_protocol", "login_trusted_networks", "mail_location",
               "mail_uid", "mail_gid", "first_valid_uid", "auth_mechanisms",
               "auth_username_format", "auth_default_realm", "auth_failure_delay", "log_path",
               "info_log_path", "mail_max_userip_connections", "imap_max_line_length",
               "imap_idle_notify_interval", "pop3_uidl_format", "lmtp_save_to_detail_mailbox",
               "recipient_delimiter", "postmaster_address", "hostname", "plugin/quota_rule",
               "service/imap-login/inet_listener/imap/port",
               "service/imap-login/inet_listener/imaps/port",
               "service/imap-login/inet_listener/imaps/ssl",
               "service/pop3-login/inet_listener/pop3s/port",
               "service/lmtp/unix_listener/lmtp/mode"]


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("flags", [("-n",), ("-n", "-P"), ("-x", "-n"), ("-N",)])
def test_n_matches_doveconf(fixture, flags):
    real, mine = same_output(*flags, "-c", fixture_conf(fixture))
    assert mine == real
    assert mine.strip()


def test_n_matches_doveconf_on_this_machines_etc_dovecot():
    """The live Debian tree (its ssl_cert file may be missing: -n does not read it)."""
    real, mine = same_output("-n", "-c", "/etc/dovecot/dovecot.conf")
    assert mine == real and "passdb {" in mine


@pytest.mark.parametrize("fixture", FIXTURES)
def test_names_match_doveconf(fixture):
    real, mine = same_output("-c", fixture_conf(fixture), *IMPLEMENTED)
    assert mine == real
    real, mine = same_output("-P", "-h", "-c", fixture_conf(fixture), *IMPLEMENTED)
    assert mine == real
    assert len(mine.splitlines()) >= len(IMPLEMENTED) - 1  # plugin/quota_rule may be unset


@pytest.mark.parametrize("context", [("-f", "protocol=imap"), ("-f", "service=pop3"),
                                     ("-f", "protocol=lmtp"),
                                     ("-f", "protocol=imap", "-f", "remote=192.168.7.7"),
                                     ("-f", "protocol=imap", "-f", "local=127.0.0.2")])
def test_filtered_names_match_doveconf(context):
    real, mine = same_output(*context, "-c", fixture_conf("full"), *IMPLEMENTED)
    assert mine == real


@pytest.mark.parametrize("fixture", ["seed002", "debian"])
def test_a_global_settings_match_doveconf(fixture):
    """-a: every setting outside the service blocks (roost does not list Dovecot's built-in
    services, which it does not run)."""
    def outside_services(text: str) -> list[str]:
        kept, skipping = [], False
        for line in without_header(text).splitlines():
            skipping = skipping or line.startswith("service ")
            if not skipping:
                kept.append(line)
            skipping = skipping and line != "}"
        return kept

    for flags in (("-a",), ("-a", "-s")):
        real = real_doveconf(*flags, "-c", fixture_conf(fixture))
        code, mine, _err = roost_doveconf(*flags, "-c", fixture_conf(fixture))
        assert code == 0 and outside_services(mine) == outside_services(real.stdout)
        assert len(outside_services(mine)) > 300


def test_defaults_and_sections(tmp_path):
    path = write(tmp_path, "ssl = no\npassdb {\n  driver = pam\n}\n")
    for args in (("-d", "ssl", "login_greeting", "imap_max_line_length"), ("passdb",),
                 ("-n", "passdb"), ("-h", "ssl", "nosuch", "protocols")):
        real, mine = same_output("-c", path, *args)
        assert mine == real, args


def test_header_names_the_file(tmp_path):
    path = write(tmp_path, "ssl = no\n")
    _code, mine, _err = roost_doveconf("-n", "-c", path)
    first = mine.splitlines()[0]
    assert first.startswith("# roost ") and first.endswith(f": {path}")
    assert real_doveconf("-n", "-c", path).stdout.splitlines()[0].endswith(f": {path}")


def test_fatal_configuration_exits_89_without_output(tmp_path):
    path = write(tmp_path, "ssl = no\nservice imap {\n")
    code, out, err = roost_doveconf("-n", "-c", path)
    real = real_doveconf("-n", "-c", path)
    assert (code, real.returncode) == (89, 89)
    assert out == ""
    assert err == (f"doveconf: fatal: {path}, line 2: Missing '}}' (section service imap "
                   "started here is never closed)\n")


def test_warnings_go_to_stderr(tmp_path):
    path = write(tmp_path, "ssl = no\nmail_privileged_group = mail\n")
    code, out, err = roost_doveconf("-n", "-c", path)
    assert code == 0 and "mail_privileged_group = mail" in out
    assert err == f"doveconf: warning: {path}, line 2: unsupported setting: mail_privileged_group\n"


def test_bad_option():
    code, out, err = roost_doveconf("-Z")
    assert code == 89 and out == "" and "Usage: doveconf" in err
    code, _out, err = roost_doveconf("-f", "bogus=imap", "-n")
    assert code == 89 and "Unknown filter argument: bogus=imap" in err
    assert "Unknown filter argument: bogus=imap" in real_doveconf("-f", "bogus=imap").stderr


def test_config_file_from_mail_config(tmp_path):
    """Without -c: main.cf's dovecot_config_file when main.cf can be read (helper A's
    roost.config.settings), else $MAIL_CONFIG/dovecot.conf."""
    write(tmp_path, "ssl = no\nprotocols = imap\n")
    write(tmp_path, "ssl = required\nprotocols = pop3\n", "elsewhere/dovecot.conf")
    write(tmp_path, f"dovecot_config_file = {tmp_path}/elsewhere/dovecot.conf\n", "main.cf")
    code, out, _err = roost_doveconf("-h", "protocols", env={"MAIL_CONFIG": str(tmp_path)})
    main_cf_readable = importlib.util.find_spec("roost.config.settings") is not None
    assert code == 0
    assert out == ("pop3\n" if main_cf_readable else "imap\n")


def test_roost_doveconf_command(tmp_path):
    """Through the installed entry point: `roost -c DIR doveconf -n`."""
    write(tmp_path, "ssl = no\nprotocols = imap\n")
    os.remove(tmp_path / "main.cf") if (tmp_path / "main.cf").exists() else None
    done = run_roost("-c", str(tmp_path), "doveconf", "-n")
    assert done.returncode == 0, done.stderr
    assert without_header(done.stdout) == "protocols = imap\nssl = no\n"
    done = run_roost("doveconf", "-c", str(tmp_path / "dovecot.conf"), "-h", "ssl")
    assert (done.returncode, done.stdout) == (0, "no\n")
