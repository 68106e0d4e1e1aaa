"""The Dovecot settings table and typed values, against Debian's doveconf 2.3.19.1."""

from __future__ import annotations

import pytest

from roost.config import dovecot_table
from roost.config.dovecot_listeners import BUILTIN_LISTENERS
from tests.data.dovecot.make_settings_table import SKELETON, defaults
from tests.data.dovecot.oracle import real_doveconf, write


def test_table_names_and_defaults_match_doveconf():
    """Every (scope, name, default) of the table is what `doveconf -a -s` shows today."""
    real_doveconf("-n")  # fails the test (not skips) when doveconf is missing
    observed = defaults()
    table = {(s.scope, s.name): s.default for s in dovecot_table.table().values()}
    assert table == {(scope, name): default for scope, names in observed.items()
                     for name, default in names.items()}
    assert len(table) > 380


def test_builtin_listeners_match_doveconf(tmp_path):
    path = write(tmp_path, "")
    for service, listeners in BUILTIN_LISTENERS.items():
        for kind, name, port, ssl, mode in listeners:
            prefix = f"service/{service}/{kind}_listener/{name}"
            if kind == "inet":
                shown = real_doveconf("-c", path, "-h", f"{prefix}/port", f"{prefix}/ssl").stdout
                assert shown.split() == [str(port), "yes" if ssl else "no"]
            else:
                shown = real_doveconf("-c", path, "-h", f"{prefix}/mode").stdout
                assert shown.split() == [f"0{mode:o}"]
    assert SKELETON  # the generator's skeleton config is importable


# (setting, value) -> compared with doveconf -n's line, or its error
VALUES = [("imap_idle_notify_interval", v) for v in (
    "0", "90s", "90 s", "90secs", "90 seconds", "1sec", "60s", "120s", "3600s", "86400s", "1d",
    "2w", "1h", "1 hours", "3min", "1m", "1M", "1ms", "1000ms", "1y", "3 mins 2 s", "1.5s", "",
    "1S", "1Min", "2weeks", "7d", "1500s", "1msec", "2000msecs", "5000000000s", "4294967295s",
    "1 minute", "1 milliseconds", "1 hr", "00", "5")] + [
    ("imap_max_line_length", v) for v in (
        "0", "1", "1024", "1025", "64k", "64 k", "64kB", "64KiB", "1M", "1024k", "1g", "1T",
        "1P", "1b", "1 bytes", "1.5k", "-1", "18446744073709551615", "18446744073709551616",
        "1kib", "1kbytes", "1bb", "1ib", " 1k", "01k", "2000k")] + [
    ("disable_plaintext_auth", v) for v in (
        "yes", "no", "Yes", "YES", "y", "1", "true", "no0", "n", "0", "nO", "2")] + [
    ("mail_max_userip_connections", v) for v in (
        "10", "010", "0", "-1", "4294967295", "4294967296", "1k", "+5", "5x", "0x10")] + [
    ("ssl", v) for v in ("yes", "no", "required", "Yes", "maybe")] + [
    ("imapc_connection_retry_interval", v) for v in ("1500ms", "2s", "1m")]


@pytest.mark.parametrize(("name", "value"), VALUES)
def test_typed_values_like_doveconf(tmp_path, name, value):
    path = write(tmp_path, f"{name} = {value}\n")
    real = real_doveconf("-n", "-c", path)
    spec = dovecot_table.spec("global", name)
    parsed, error = dovecot_table.parse_value("global", name, spec.kind, value.strip())
    if real.returncode:
        dovecot_error = real.stderr.split("line 1: ", 1)[1].strip()
        assert error is not None and error.startswith(dovecot_error)
        return
    assert error is None
    shown = dovecot_table.format_value(spec.kind, parsed)
    lines = [line for line in real.stdout.splitlines() if not line.startswith("#")]
    if shown == dovecot_table.normalize("global", name, spec.default):
        assert lines == []
    else:
        assert lines == [f"{name} = {shown}"]


@pytest.mark.parametrize("value", ["666", "0666", "1777", "0", "8", "0x1", "-1", "777777", "x",
                                   "08"])
def test_octal_modes_like_doveconf(tmp_path, value):
    path = write(tmp_path, f"service auth {{\n unix_listener x {{\n  mode = {value}\n }}\n}}\n")
    real = real_doveconf("-n", "-c", path)
    parsed, error = dovecot_table.parse_octal(value)
    if real.returncode:
        assert error is not None and error in real.stderr
    else:
        assert f"mode = 0{parsed:o}\n" in real.stdout


@pytest.mark.parametrize("value", ["143", "0143", "0", "65535", "65536", "-1", "x"])
def test_ports_like_doveconf(tmp_path, value):
    path = write(tmp_path, f"service imap-login {{\n inet_listener x {{\n  port = {value}\n"
                 " }\n}\n")
    real = real_doveconf("-n", "-c", path)
    parsed, error = dovecot_table.parse_port(value)
    if real.returncode:
        assert error is not None and error in real.stderr
    else:
        assert f"port = {parsed}\n" in real.stdout


def test_enum_words_are_accepted_by_doveconf(tmp_path):
    for (scope, name), words in dovecot_table.ENUM_VALUES.items():
        before, after = {"global": ("", ""), "passdb": ("passdb {\n driver = pam\n", "}\n"),
                         "userdb": ("userdb {\n driver = passwd\n", "}\n"),
                         "namespace": ("namespace n {\n", "}\n"),
                         "mailbox": ("namespace n {\n mailbox m {\n", " }\n}\n")}[scope]
        for word in (*words, "bogus"):
            path = write(tmp_path, f"{before}{name} = {word}\n{after}")
            refused = "Invalid value" in real_doveconf("-n", "-c", path).stderr
            assert refused == (word == "bogus"), (scope, name, word)


@pytest.mark.parametrize(("text", "msecs"), [("2 secs", 2000), ("1500 ms", 1500), ("0", 0),
                                             ("3 weeks", 3 * 604_800_000)])
def test_time_round_trip(text, msecs):
    assert dovecot_table.parse_time_msecs(text) == (msecs, None)
    assert dovecot_table.format_time_msecs(msecs) == text
