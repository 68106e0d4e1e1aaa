"""Fuzzing the dovecot.conf parser: garbage gives diagnostics, never an exception; and random
well-formed-ish configurations are accepted or refused, and printed, as Debian's doveconf does."""

from __future__ import annotations

import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import MAX_SECTION_DEPTH, parse_dovecot_text
from roost.config.dovecot_listeners import dovecot_listeners
from roost.config.dovecot_settings import dovecot_settings
from tests.data.dovecot.oracle import real_doveconf, roost_doveconf, without_header, write

FAST = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


def parse_garbage(data: str | bytes, tmp: str = "/nonexistent-roost-dir/dovecot.conf"):
    diags = Diagnostics()
    config = parse_dovecot_text(data, tmp, diags)
    for protocol in ("", "imap", "pop3", "lmtp"):
        view = dovecot_settings(config, protocol=protocol, remote="127.0.0.1")
        view.protocols, view.passdbs, view.auth_failure_delay, view.imap_max_line_length
    dovecot_listeners(config)
    for item in diags.items:
        assert item.file and str(item)
    return config, diags


@FAST
@given(st.text(max_size=400))
def test_text_garbage_only_diagnoses(text):
    parse_garbage(text)


@FAST
@given(st.binary(max_size=400))
def test_binary_garbage_only_diagnoses(data):
    parse_garbage(data)


TOKENS = st.sampled_from(["{", "}", "=", " ", "\n", "\\\n", "#", '"', "'", "<", "$", "\0",
                          "service", "protocol imap", "local 10.0.0.0/8", "inet_listener x",
                          "!include", "!include_try", "*.conf", "port", "ssl", "passdb",
                          "remote", "\t", "\r\n", "0666", "x" * 300])


@FAST
@given(st.lists(TOKENS, max_size=60).map("".join))
def test_token_soup_only_diagnoses(text):
    parse_garbage(text)


def test_deep_nesting_is_bounded():
    """10,000 nested sections: a diagnostic about the depth, no RecursionError."""
    depth = 10_000
    assert depth > sys.getrecursionlimit()
    text = "".join(f"service s{i} {{\n" for i in range(depth)) + "}\n" * depth + "ssl = no\n"
    config, diags = parse_garbage(text)
    fatals = [str(d) for d in diags.fatals]
    assert fatals == [f"fatal: /nonexistent-roost-dir/dovecot.conf, line {MAX_SECTION_DEPTH + 1}: "
                      f"Sections nested deeper than {MAX_SECTION_DEPTH}"]
    assert config.root.get("ssl") == "no"  # the braces balanced out again
    for braces in ("{" * depth, "{\n" * depth, "x {\n" * depth + "}\n" * (depth + 5)):
        parse_garbage(braces)
    config, diags = parse_garbage("a {\n" * depth)
    # the depth, each section left open, and the ones nested beyond the limit
    assert len(diags.fatals) == 1 + MAX_SECTION_DEPTH + 1


def test_huge_line():
    config, diags = parse_garbage("login_greeting = " + "x" * 2_000_000 + "\n" + "y" * 100_000)
    assert len(config.root.get("login_greeting")) == 2_000_000
    assert any(len(d.message) < 300 for d in diags.fatals)


GLOBAL = ["ssl = no", "ssl = required", "login_greeting = x  y", "mail_plugins = $mail_plugins a",
          "auth_failure_delay = 3s", "imap_max_line_length = 1k", "first_valid_uid = 0500",
          'login_greeting = "q # r"', "auth_mechanisms = plain \\\n login",
          "disable_plaintext_auth = no", "mail_max_userip_connections = 20",
          "imap_idle_notify_interval = 120s", "listen = *", "pop3_uidl_format = %v",
          "ssl_key = <x.pem", "protocols = imap pop3"]


def block(items):
    return st.lists(items, max_size=4).map(lambda xs: [line for x in xs for line in x])


def section(headers, body):
    return st.tuples(st.sampled_from(headers), body).map(lambda t: [t[0] + " {", *t[1], "}"])


def lines(vocabulary):
    return st.sampled_from(vocabulary).map(lambda line: [line])


LISTENER = st.one_of(
    section(["inet_listener imap", "inet_listener imaps", "inet_listener x"],
            block(lines(["port = 1143", "ssl = yes", "port = 0"]))),
    section(["unix_listener x", "unix_listener /a/b"], block(lines(["mode = 0666", "user = u"]))))
SERVICE = section(["service imap", "service imap-login", "service auth", "service pop3-login"],
                  block(st.one_of(lines(["executable = y", "process_limit = 5",
                                         "vsz_limit = 1G"]), LISTENER)))
PASSDB = section(["passdb", "userdb"],
                 block(lines(["driver = pam", "args = a  b", "result_success = continue"])))
OTHER = st.one_of(
    section(["plugin", "dict"], block(lines(["k = v", "quota = x  $y", "k = 'q'"]))),
    section(["namespace inbox"], block(st.one_of(
        lines(["inbox = yes", "separator = /"]),
        section(["mailbox Sent", 'mailbox "Sent Messages"'],
                block(lines(["special_use = \\Sent", "auto = create"])))))))
FILTER = st.recursive(lines(GLOBAL), lambda inner: section(
    ["protocol imap", "protocol pop3", "protocol !imap", "local 127.0.0.1", "remote 10.0.0.0/8",
     "remote 10.1.0.0/16", "local_name a.b"], block(inner)), max_leaves=8)
GARBAGE = lines(["}", "{", "foo", "= x", "!foo", "# c", "", "x \\"])
CONFIG = st.lists(st.one_of(FILTER, FILTER, SERVICE, PASSDB, OTHER, GARBAGE), max_size=8).map(
    lambda xs: [line for x in xs for line in x])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(CONFIG)
def test_random_configurations_like_doveconf(tmp_path_factory, config_lines):
    """Differential: Debian's doveconf -n accepts exactly what roost accepts (roost's
    "unknown setting" warnings stand for doveconf's fatal "Unknown setting"), and prints the
    same settings (header comments excluded)."""
    directory = tmp_path_factory.mktemp("cfg")
    write(directory, "-----BEGIN\n", "x.pem")
    path = write(directory, "\n".join(config_lines) + "\n")
    real = real_doveconf("-n", "-c", path)
    code, mine, err = roost_doveconf("-n", "-c", path)
    mine_ok = code == 0 and "unknown s" not in err
    assert mine_ok == (real.returncode == 0), (real.stderr, err)
    if mine_ok:
        assert without_header(mine) == without_header(real.stdout)
