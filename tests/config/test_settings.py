"""Settings (roost.config.settings): defaults, typed getters, overrides, load-time checks."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from roost.cli.postconf import run as postconf_run
from roost.config.diagnostics import Diagnostics, Severity
from roost.config.main_cf import parse_main_cf_text
from roost.config.params import PARAMS, POSTFIX_DEFAULTS, Kind
from roost.config.settings import Settings, split_list
from tests.conftest import DATA, require_tool

PATH = "/etc/roost/main.cf"


def settings_of(text: str, services=None) -> tuple[Settings, Diagnostics]:
    diags = Diagnostics()
    main_cf = parse_main_cf_text(text, PATH, diags)
    return Settings.from_main_cf(main_cf, "/etc/roost", diags, services=services), diags


def test_every_param_has_a_kind_a_doc_and_postfix_default():
    for name, param in PARAMS.items():
        assert param.doc and len(param.doc) < 120, name
        if param.kind is Kind.TIME:
            assert param.unit in "smhdw" and param.unit, name
        if name in POSTFIX_DEFAULTS:
            assert param.default == POSTFIX_DEFAULTS[name], name
    assert PARAMS["dovecot_config_file"].default == "$config_directory/dovecot.conf"


@pytest.mark.parametrize("fixture", ["compat-level-0", "compat-level-1", "compat-level-2",
                                     "compat-level-3.6", "seed002", "expand-relational"])
def test_expanded_values_match_postconf_x(fixture):
    directory = DATA / "maincf" / fixture
    names = [n for n in PARAMS if n not in ("mail_version", "dovecot_config_file")]
    real = subprocess.run(["postconf", "-c", str(directory), "-x", *names], capture_output=True,
                          text=True, executable=require_tool("postconf"), check=True)
    expected = dict(line.split(" =", 1) for line in real.stdout.splitlines())
    diags = Diagnostics()
    main_cf = parse_main_cf_text((directory / "main.cf").read_bytes(), str(directory), diags)
    settings = Settings.from_main_cf(main_cf, str(directory), diags)
    for name in names:
        assert " ".join(settings.get(name).split()) == expected[name].strip(), name


def test_defaults_depend_on_compatibility_level():
    old, _ = settings_of("compatibility_level = 0\n")
    new, _ = settings_of("compatibility_level = 3.6\n")
    assert old.get("smtpd_relay_restrictions") == ""
    assert new.list("smtpd_relay_restrictions") == (
        "permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination")
    assert old.bool("smtputf8_enable") is False and new.bool("smtputf8_enable") is True
    assert old.get("mynetworks_style") == "subnet" and new.get("mynetworks_style") == "host"
    assert old.list("relay_domains") == old.list("mydestination") and new.get("relay_domains") == ""


def test_raw_get_and_origin():
    settings, _ = settings_of("myhostname = mail.$mydomain\nmydomain = example.com\n")
    assert settings.raw("myhostname") == "mail.$mydomain"
    assert settings.get("myhostname") == "mail.example.com"
    assert settings.get("myorigin") == "mail.example.com"
    assert settings.raw("myorigin") == "$myhostname"
    assert settings.origin("mydomain") == (PATH, 2) and settings.origin("myorigin") is None
    assert settings.explicit == {"myhostname", "mydomain"}
    assert settings.get("no_such_parameter") == "" and settings.raw("no_such_parameter") == ""
    assert settings.get("dovecot_config_file") == "/etc/roost/dovecot.conf"


def test_raw_parameters_are_not_expanded():
    settings, _ = settings_of("luser_relay = $user@$mydomain\n")
    assert settings.get("luser_relay") == "$user@$mydomain"
    assert settings.get("forward_path").startswith("$home/.forward")


@pytest.mark.parametrize("value, seconds", [("300s", 300), ("5m", 300), ("1h", 3600),
                                            ("1d", 86400), ("1w", 604800), ("45", 45)])
def test_time_values_use_postfix_units(value, seconds):
    settings, diags = settings_of(f"smtpd_proxy_timeout = {value}\n")
    assert settings.time("smtpd_proxy_timeout") == seconds
    settings.validate(diags)
    # parsed and checked, and reported as not acted on (no before-queue proxy in roost yet)
    assert [d.message for d in diags.items] == [
        "unsupported parameter: smtpd_proxy_timeout (roost does not implement it yet)"]


def test_time_default_unit_is_the_parameters_own():
    settings, _ = settings_of("maximal_queue_lifetime = 2\ndelay_warning_time = 4\n")
    assert settings.time("maximal_queue_lifetime") == 2 * 86400
    assert settings.time("delay_warning_time") == 4 * 3600
    assert settings.time("bounce_queue_lifetime") == 5 * 86400
    assert settings.time("smtpd_timeout") == 300  # ${stress?{10}:{300}}s


def test_booleans_sizes_ints_and_lists():
    settings, _ = settings_of("smtpd_tls_auth_only = YES\nsmtpd_sasl_auth_enable = No\n"
                              "message_size_limit = 52428800\ndefault_process_limit = 7\n"
                              "mydestination = a, b  c,,d\n")
    assert settings.bool("smtpd_tls_auth_only") is True
    assert settings.bool("smtpd_sasl_auth_enable") is False
    assert settings.size("message_size_limit") == 52428800
    assert settings.int("default_process_limit") == 7
    assert settings.int("smtpd_hard_error_limit") == 20
    assert settings.list("mydestination") == ("a", "b", "c", "d")


def test_list_keeps_brace_groups_whole():
    assert split_list("check_client_access inline:{ a=OK, b = REJECT no }, reject") == (
        "check_client_access", "inline:{ a=OK, b = REJECT no }", "reject")
    assert split_list("{ x y }, z") == ("{ x y }", "z")
    assert split_list(" ,\t\n") == ()


def test_bad_typed_values_are_fatal_at_validate_and_getters_fall_back():
    settings, diags = settings_of("message_size_limit = lots\nsmtpd_timeout = soon\n"
                                  "smtpd_tls_auth_only = maybe\nsmtpd_tls_security_level = always\n"
                                  "default_process_limit = 1.5\n")
    assert settings.size("message_size_limit") == 10240000
    assert settings.time("smtpd_timeout") == 300
    assert settings.bool("smtpd_tls_auth_only") is False
    settings.validate(diags)
    fatal_lines = sorted(d.line for d in diags.fatals)
    assert fatal_lines == [1, 2, 3, 4, 5]
    assert all(d.file == PATH for d in diags.fatals)


def test_unknown_and_unsupported_names_warn_with_line():
    settings, diags = settings_of("myhostname = h.example\nfoo_bar = 1\nuses = $helper\n"
                                  "helper = x\nsmtpd_proxy_filter = $uses\n"
                                  "address_verify_poll_count = 3\nvirtual_maps = hash:/x\n")
    messages = {(d.line, d.message) for d in diags.items}
    assert (2, "unused parameter: foo_bar=1") in messages
    unsupported = "unsupported parameter: {} (roost does not implement it yet)"
    assert (6, unsupported.format("address_verify_poll_count")) in messages
    assert (5, unsupported.format("smtpd_proxy_filter")) in messages  # has a default, no effect yet
    assert (1, unsupported.format("myhostname")) not in messages  # implemented
    assert all(line not in (3, 4, 7) for line, _ in messages), messages
    assert all(d.severity is Severity.WARNING for d in diags.items)


class FakeService:
    def __init__(self, name, command, overrides=()):
        self.name, self.command, self.overrides = name, command, tuple(overrides)


def test_services_make_transport_parameters_and_references_known():
    services = [FakeService("relay", "smtp"), FakeService("submission", "smtpd",
                                                          [("smtpd_client_restrictions", "$mua")])]
    settings, diags = settings_of("relay_destination_concurrency_limit = 3\nmua = permit\n"
                                  "other_destination_concurrency_limit = 4\n", services)
    assert [d.message for d in diags.items] == ["unused parameter: other_destination_concurrency_limit=4"]
    assert settings.int("relay_destination_concurrency_limit") == 3
    assert settings.int("relay_destination_recipient_limit") == 50
    assert settings.time("relay_destination_rate_delay") == 0


def test_with_overrides_applies_warns_and_validates():
    settings, _ = settings_of("smtpd_tls_security_level = may\nmua_restrictions = permit\n")
    diags = Diagnostics()
    own = settings.with_overrides(
        [("smtpd_tls_security_level", "encrypt"), ("smtpd_client_restrictions", "$mua_restrictions"),
         ("no_such_thing", "1"), ("smtpd_tls_wrappermode", "perhaps"), ("smtpd_proxy_filter", "x")],
        "/etc/roost/master.cf", 17, diags)
    assert own.get("smtpd_tls_security_level") == "encrypt"
    assert settings.get("smtpd_tls_security_level") == "may"
    assert own.list("smtpd_client_restrictions") == ("permit",)
    assert own.origin("smtpd_tls_security_level") == ("/etc/roost/master.cf", 17)
    assert {(d.severity, d.line, d.message.split(":")[0]) for d in diags.items} == {
        (Severity.WARNING, 17, "unused parameter"),
        (Severity.WARNING, 17, "unsupported parameter"),  # smtpd_proxy_filter
        (Severity.FATAL, 17, 'bad boolean value for smtpd_tls_wrappermode')}
    assert own.bool("smtpd_tls_wrappermode") is False


def test_machine_defaults_follow_postfix_rules():
    settings, _ = settings_of("myhostname = mx1.mail.example.co.uk\n")
    assert settings.get("mydomain") == "mail.example.co.uk"
    loop_free, _ = settings_of("myhostname = x.$mydomain\n")
    assert loop_free.get("mydomain") == "" and loop_free.get("myhostname") == "x."
    with_domain, _ = settings_of("mydomain = example.net\n")
    host = socket.gethostname()
    assert with_domain.get("myhostname") == (host if "." in host else host + ".example.net")
    plain, _ = settings_of("")
    assert plain.get("myhostname") == (host if "." in host else host + ".localdomain")
    assert plain.get("mydomain") == (host.partition(".")[2] if "." in host else "localdomain")


def test_validate_reports_loops_and_bad_defaults():
    settings, diags = settings_of("a = $b\nb = $a\nmyorigin = $a\ninet_interfaces = 10.255.255.254\n")
    settings.validate(diags)
    messages = [(d.line, d.message) for d in diags.fatals]
    assert any(line == 3 and "expansion loop" in message for line, message in messages)
    assert any(line == 4 and "no local interface found for 10.255.255.254" in message
               for line, message in messages)
    assert settings.get("myorigin") == ""


def test_settings_are_fast():
    settings, _ = settings_of((DATA / "maincf" / "seed004" / "main.cf").read_text())
    started = time.perf_counter()
    for _ in range(1000):
        settings.get("mydestination")
        settings.time("smtpd_timeout")
        settings.list("smtpd_relay_restrictions")
    assert time.perf_counter() - started < 1.0


TOKENS = list("$${}()?:=<>!# \t\n,.ab\0\xe9") + [
    "myhostname", "mydomain", "compatibility_level", "level", "smtpd_timeout", "mynetworks_style",
    "inet_protocols", "3.6", "yes", "host", " = ", "\n  "]
main_cf_garbage = st.lists(st.sampled_from(TOKENS), max_size=40).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(main_cf_garbage)
def test_garbage_configurations_give_only_diagnostics(text):
    settings, diags = settings_of(text)
    settings.validate(diags)
    for name in ("myhostname", "mydomain", "mynetworks", "smtpd_timeout", "relay_domains"):
        settings.get(name)
        settings.list(name)
    settings.time("smtpd_timeout")
    settings.bool("smtputf8_enable")
    with tempfile.TemporaryDirectory() as directory:
        with open(os.path.join(directory, "main.cf"), "w", encoding="utf-8") as handle:
            handle.write(text)
        open(os.path.join(directory, "master.cf"), "w").close()
        for args in (["-n"], ["-x", "myhostname", "mynetworks"], ["-e", "relayhost = x"]):
            status = postconf_run(["postconf", "-c", directory, *args], io.StringIO(), io.StringIO())
            assert status in (0, 1)
