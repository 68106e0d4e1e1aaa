"""Typed view of dovecot.conf: the seeds' snippets, Debian's own /etc/dovecot tree and a
configuration using every implemented setting parse into the expected values; filters and
listeners resolve as Dovecot does (checked with `doveconf -f` and `doveconf -a`)."""

from __future__ import annotations

import os

import pytest

from roost.config import dovecot_table
from roost.config.dovecot_listeners import DovecotListener, dovecot_listeners, listen_addresses
from roost.config.dovecot_settings import dovecot_settings
from tests.data.dovecot.oracle import (DATA, NOT_YET, fixture_conf, messages, parse, real_doveconf,
                                       write)

CERT = (DATA / "certs" / "test-cert.pem").read_text()
KEY = (DATA / "certs" / "test-key.pem").read_text()


def load(name: str):
    config, diags = parse(fixture_conf(name))
    assert not diags.has_fatal(), messages(diags)
    return config, diags


def test_seed000_plain_pop3_imap():
    config, diags = load("seed000")
    view = dovecot_settings(config)
    assert view.protocols == ("imap", "pop3")
    assert view.ssl == "no"
    assert view.setting("ssl").line == 1 and view.setting("ssl").file.endswith("10-ssl.conf")
    assert [(l.service, l.name, l.port, l.addresses) for l in dovecot_listeners(config)] == [
        ("imap-login", "imap", 143, ("0.0.0.0", "::")),
        ("pop3-login", "pop3", 110, ("0.0.0.0", "::"))]  # no imaps/pop3s while ssl = no
    assert messages(diags) == []


def test_seed002_tls_auth_socket_and_log():
    config, diags = load("seed002")
    view = dovecot_settings(config)
    assert view.protocols == ("imap", "pop3", "lmtp")
    assert (view.ssl, view.ssl_cert, view.ssl_key) == ("yes", CERT, KEY)
    assert view.setting("ssl_cert").path == str(DATA / "certs" / "test-cert.pem")
    assert view.auth_username_format == "%n"
    assert view.auth_mechanisms == ("plain", "login")
    assert view.log_path == "/var/log/dovecot"
    assert [(db.kind, db.driver) for db in (*view.passdbs, *view.userdbs)] == [
        ("passdb", "pam"), ("userdb", "passwd")]
    auth = [l for l in dovecot_listeners(config) if l.service == "auth"]
    master_conf = str(DATA / "seed002" / "conf.d" / "10-master.conf")
    assert auth == [DovecotListener(
        service="auth", name="/var/spool/postfix/private/auth", kind="unix", addresses=(),
        port=0, path="/var/spool/postfix/private/auth", ssl=False, mode=0o666, user="postfix",
        group="postfix", file=master_conf, line=17, process_limit=100)]
    assert messages(diags) == []


def test_seed004_centos_dovecot_conf():
    config, diags = load("seed004")
    view = dovecot_settings(config)
    assert view.protocols == ("imap", "pop3", "lmtp")
    assert view.disable_plaintext_auth is False
    assert view.login_trusted_networks == ("192.168.10.0/24",)
    assert view.mail_location == "mbox:~/mail:INBOX=/var/mail/%u"
    assert view.ssl == "required"
    assert config.root.section("dict") is not None
    assert messages(diags) == []
    lmtp = [l for l in dovecot_listeners(config) if l.service == "lmtp"]
    assert [(l.kind, l.path, l.mode) for l in lmtp] == [("unix", "/run/dovecot/lmtp", 0o666)]


def test_debian_tree():
    """Debian's /etc/dovecot as installed (paths of the certificate files made relative)."""
    config, diags = load("debian")
    view = dovecot_settings(config)
    assert view.protocols == ("imap", "lmtp", "pop3")  # from protocols.d, $protocols
    assert view.raw("protocols") == " imap lmtp pop3"
    assert view.mail_location == "mbox:~/mail:INBOX=/var/mail/%u"
    assert view.auth_mechanisms == ("plain",)
    assert view.ssl_cert == CERT
    assert view.first_valid_uid == 500 and view.auth_username_format == "%Lu"
    assert view.auth_failure_delay == 2.0 and view.imap_max_line_length == 65536
    inbox = config.root.section("namespace", "inbox")
    assert [m.name for m in inbox.sections("mailbox")] == [
        "Drafts", "Junk", "Trash", "Sent", "Sent Messages"]
    assert [os.path.basename(f) for f in config.files[:4]] == [
        "dovecot.conf", "imapd.protocol", "lmtpd.protocol", "pop3d.protocol"]
    # what roost does not implement is said, with file and line
    assert sorted((os.path.basename(d.file), d.line, d.message) for d in diags.items
                  if not d.message.endswith(NOT_YET)) == [
        ("10-mail.conf", 114, "unsupported setting: mail_privileged_group"),
        ("10-ssl.conf", 36, "unsupported setting: ssl_client_ca_dir"),
        ("10-ssl.conf", 55, "unsupported setting: ssl_dh")]
    listeners = [(l.service, l.name, l.kind, l.port or l.path, l.ssl)
                 for l in dovecot_listeners(config)]
    assert listeners == [
        ("imap-login", "imap", "inet", 143, False), ("imap-login", "imaps", "inet", 993, True),
        ("lmtp", "lmtp", "unix", "/run/dovecot/lmtp", False),
        ("pop3-login", "pop3", "inet", 110, False), ("pop3-login", "pop3s", "inet", 995, True),
        ("auth", "auth-userdb", "unix", "/run/dovecot/auth-userdb", False)]


def test_defaults_are_dovecots(tmp_path):
    config, _diags = parse(write(tmp_path, "ssl = no\n"))
    view = dovecot_settings(config)
    names = ["listen", "base_dir", "disable_plaintext_auth", "ssl_min_protocol",
             "auth_mechanisms", "auth_username_format", "auth_failure_delay", "log_path",
             "mail_max_userip_connections", "imap_max_line_length", "imap_idle_notify_interval",
             "pop3_uidl_format", "lmtp_save_to_detail_mailbox", "recipient_delimiter",
             "postmaster_address", "first_valid_uid", "mail_location", "hostname"]
    real = real_doveconf("-c", config.path, *names).stdout.splitlines()
    assert [f"{name} = {view.raw(name)}" for name in names] == real
    assert (view.listen, view.disable_plaintext_auth, view.imap_idle_notify_interval,
            view.mail_max_userip_connections, view.recipient_delimiter) == (
        ("*", "::"), True, 120.0, 10, "+")
    assert view.protocols == () and dovecot_listeners(config) == ()


FULL_FILTERS = [
    ({}, {"mail_max_userip_connections": 20, "imap_idle_notify_interval": 90.0,
          "postmaster_address": "postmaster@example.test", "disable_plaintext_auth": False,
          "imap_max_line_length": 131072}),
    ({"protocol": "imap"}, {"mail_max_userip_connections": 50,
                            "imap_idle_notify_interval": 300.0}),
    ({"protocol": "pop3"}, {"mail_max_userip_connections": 3, "pop3_uidl_format": "%08Xv%08Xu"}),
    ({"protocol": "lmtp"}, {"lmtp_save_to_detail_mailbox": True,
                            "postmaster_address": "lmtp-postmaster@example.test"}),
    ({"protocol": "imap", "remote": "192.168.1.1"}, {"disable_plaintext_auth": True}),
    ({"protocol": "imap", "local": "127.0.0.2"}, {"imap_max_line_length": 262144}),
    ({"protocol": "pop3", "local": "127.0.0.2"}, {"imap_max_line_length": 131072}),
]


@pytest.mark.parametrize(("context", "expected"), FULL_FILTERS)
def test_filters_resolve_like_doveconf_f(context, expected):
    config, _diags = load("full")
    view = dovecot_settings(config, **context)
    for name, value in expected.items():
        assert getattr(view, name) == value, name
    flags = [f"-f{'service' if k == 'protocol' else k}={v}" for k, v in context.items()]
    real = real_doveconf("-c", config.path, *flags, "-h", *expected).stdout.splitlines()
    assert real == [dovecot_table.normalize("global", name, view.raw(name)) for name in expected]


def test_full_fixture_typed_values():
    config, diags = load("full")
    view = dovecot_settings(config)
    assert view.listen == ("127.0.0.1", "::1")
    assert view.base_dir == "/run/roost-test/"
    assert view.login_trusted_networks == ("10.0.0.0/8", "192.168.0.0/16")
    assert view.auth_mechanisms == ("plain", "login", "cram-md5")
    assert view.auth_default_realm == "example.test" and view.auth_failure_delay == 3.0
    assert view.first_valid_uid == 1000 and view.hostname == "mail.example.test"
    assert view.ssl == "required" and view.ssl_min_protocol == "TLSv1.3"
    assert view.quota_rule == "*:storage=1G"
    assert view.raw("login_greeting") == "Welcome # to the test server"
    assert dovecot_settings(config, protocol="imap").raw("mail_plugins") == "quota imap_quota"
    first, second = view.passdbs
    assert (first.driver, first.args, first.result_failure, first.result_success) == (
        "passwd-file", "scheme=SHA512-CRYPT username_format=%u /etc/roost/users", "continue",
        "return-ok")
    assert (second.driver, second.deny, second.default_fields) == ("pam", False, "nopassword=n")
    (userdb,) = view.userdbs
    assert (userdb.driver, userdb.override_fields) == (
        "static", "mail=maildir:/var/vmail/%d/%n/Maildir")
    assert [m for m in messages(diags) if "unsupported" not in m] == []


def test_full_fixture_listeners():
    config, _diags = load("full")
    master = str(DATA / "full" / "conf.d" / "10-master.conf")
    got = [(l.service, l.name, l.kind, l.addresses, l.port, l.path, l.ssl, l.mode, l.user,
            l.group, l.line, l.process_limit) for l in dovecot_listeners(config)]
    assert got == [
        ("imap-login", "imap", "inet", ("127.0.0.1", "::1"), 10143, "", False, None, "", "", 2,
         50),
        ("pop3-login", "pop3", "inet", ("127.0.0.1", "::1"), 110, "", False, None, "", "", 10,
         100),  # built in: where its service is configured
        ("pop3-login", "pop3s", "inet", ("127.0.0.2",), 10995, "", True, None, "", "", 11, 100),
        ("lmtp", "lmtp", "unix", (), 0, "/run/roost-test/lmtp", False, 0o666, "", "", 16, 100),
        ("lmtp", "/var/spool/postfix/private/dovecot-lmtp", "unix", (), 0,
         "/var/spool/postfix/private/dovecot-lmtp", False, 0o600, "postfix", "postfix", 17, 100),
        ("lmtp", "lmtp", "inet", ("127.0.0.1",), 10024, "", False, None, "", "", 22, 100),
        ("auth", "/var/spool/postfix/private/auth", "unix", (), 0,
         "/var/spool/postfix/private/auth", False, 0o660, "postfix", "postfix", 28, 100)]
    assert all(l.file == master for l in dovecot_listeners(config))
    real = real_doveconf("-c", config.path, "-h",
                         "service/imap-login/inet_listener/imaps/port",
                         "service/pop3-login/inet_listener/pop3/port").stdout.split()
    assert real == ["0", "110"]


def test_protocol_listen_becomes_listener_address(tmp_path):
    path = write(tmp_path, "protocols = imap\nssl = no\nprotocol imap {\n  listen = 127.0.0.5\n}\n")
    config, diags = parse(path)
    assert [(l.name, l.addresses) for l in dovecot_listeners(config)] == [
        ("imap", ("127.0.0.5",))]
    assert "Obsolete setting: protocol { listen }" in messages(diags)[0]
    assert "address = 127.0.0.5" in real_doveconf("-n", "-c", path).stdout


def test_listen_addresses():
    assert listen_addresses("*, ::") == ("0.0.0.0", "::")
    assert listen_addresses("[::1] 127.0.0.1,127.0.0.1") == ("::1", "127.0.0.1")
    assert listen_addresses("") == ()


def test_ssl_required_needs_a_certificate(tmp_path):
    config, diags = parse(write(tmp_path, "protocols = imap\nssl = required\n"))
    assert messages(diags) == [
        f"fatal: {config.path}, line 2: ssl enabled, but ssl_cert not set",
        f"fatal: {config.path}, line 2: ssl enabled, but ssl_key not set"]
    _config, diags = parse(write(tmp_path, "protocols = lmtp\n"))
    assert not diags.items  # no login service, no TLS needed
