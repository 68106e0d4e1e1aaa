"""roost's smtp(8) client against a private Postfix smtpd offering STARTTLS and SASL AUTH
(through a private Dovecot auth socket): smtp_tls_security_level encrypt/may, AUTH with
smtp_sasl_password_maps for relaying, and what Postfix's own log says it saw."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

from roost.delivery import smtp as smtp_agent
from roost.tables import clear_cache
from tests.conftest import RecordingLog, free_port_base, require_tool
from tests.delivery.helpers import FakeResolver, Sink, request, settings_of
from tests.delivery.postfix_oracle import PrivatePostfix
from tests.master.helpers import wait_until

DOVECOT = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = lmtp
ssl = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home={base}/home/%u
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
service auth {{
  unix_listener {base}/auth {{
    mode = 0666
  }}
}}
"""


@pytest.fixture(scope="module")
def stack():
    require_tool("dovecot")
    require_tool("openssl")
    base = tempfile.mkdtemp(prefix="roost-smtp-tls-", dir="/tmp")
    os.chmod(base, 0o755)
    port_base = free_port_base()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", f"{base}/key.pem", "-out", f"{base}/cert.pem", "-subj", "/CN=oracle.test"],
                   check=True, capture_output=True, timeout=60)
    os.chmod(f"{base}/key.pem", 0o644)
    with open(f"{base}/users", "w") as handle:
        handle.write("alice:{PLAIN}Secret-pw1::::::\n")
    with open(f"{base}/dovecot.conf", "w") as handle:
        handle.write(DOVECOT.format(base=base))
    sink = postfix = None
    dovecot_pid = None
    try:
        sink = Sink("127.0.0.14", port_base + 26)
        postfix = PrivatePostfix(port_base + 25, extra=(
            f"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = {base}/cert.pem\n"
            f"smtpd_tls_key_file = {base}/key.pem\nsmtpd_tls_received_header = yes\nsmtpd_tls_loglevel = 1\n"
            f"smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {base}/auth\n"
            "smtpd_tls_auth_only = yes\nmynetworks = 127.0.0.255/32\n"
            "smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination\n"
            f"relay_domains = \ntransport_maps = inline:{{relay.test=smtp:[127.0.0.14]:{port_base + 26}}}\n"))
        with open(f"{base}/start.log", "w") as errors:   # no pipes: the daemon's children keep them open
            started = subprocess.run(["dovecot", "-c", f"{base}/dovecot.conf"], stdin=subprocess.DEVNULL,
                                     stdout=errors, stderr=errors, timeout=30)
        pid_file = f"{base}/run/master.pid"
        if wait_until(lambda: os.path.exists(pid_file), 10):
            dovecot_pid = int(open(pid_file).read().split()[0])
        assert started.returncode == 0, open(f"{base}/start.log").read()
        assert wait_until(lambda: os.path.exists(f"{base}/auth"), 10)
        postfix.start()
        yield {"postfix": postfix, "port": port_base + 25, "sink": sink, "base": base}
    finally:
        if postfix is not None:
            postfix.stop()
        if sink is not None:
            sink.stop()
        if dovecot_pid:
            os.kill(dovecot_pid, signal.SIGTERM)
            wait_until(lambda: not os.path.exists(f"/proc/{dovecot_pid}"), 10)
        shutil.rmtree(base, ignore_errors=True)


def _deliver(req, settings):
    clear_cache()
    log = RecordingLog()
    results = asyncio.run(smtp_agent.deliver(req, settings, resolver=FakeResolver({}), log=log))
    return results, [text for _, text in log.lines]


def test_starttls_encrypt_then_auth_relays(stack):
    port = stack["port"]
    settings = settings_of(f"smtp_tls_security_level = encrypt\nsmtp_sasl_auth_enable = yes\n"
                           f"smtp_sasl_password_maps = inline:{{[127.0.0.1]:{port}=alice:Secret-pw1}}\n"
                           "smtp_sasl_security_options = noanonymous\n")
    results, lines = _deliver(request("someone@relay.test", nexthop=f"[127.0.0.1]:{port}"), settings)
    assert results[0].status == "sent", results
    assert any(re.match(rf"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.[23] "
                        r"with cipher \S+ \(\d+/\d+ bits\)", line) for line in lines), lines
    log = stack["postfix"].wait_log("sasl_username=alice")
    assert "sasl_method=PLAIN, sasl_username=alice" in log
    assert "Anonymous TLS connection established from" in log
    assert wait_until(lambda: stack["sink"].messages(), 20)
    assert b"X-Rcpt-Args: <someone@relay.test>" in stack["sink"].messages()[0]


def test_relay_without_auth_is_refused_and_may_level(stack):
    port = stack["port"]
    results, _ = _deliver(request("other@relay.test", nexthop=f"[127.0.0.1]:{port}"),
                          settings_of("smtp_tls_security_level = may\n"))
    assert results[0].status == "bounced" and results[0].dsn == "5.7.1"
    assert "Relay access denied (in reply to RCPT TO command)" in results[0].text
    log = stack["postfix"].read_log()
    assert log.count("Anonymous TLS connection established from") >= 1


def test_encrypt_refuses_a_server_without_starttls(stack):
    sink = stack["sink"]
    results, _ = _deliver(request("x@relay.test", nexthop=f"[127.0.0.14]:{sink.port}"),
                          settings_of("smtp_tls_security_level = encrypt\n"))
    assert results[0].status == "deferred" and results[0].dsn == "4.7.4"
    assert results[0].text == "TLS is required, but was not offered by host 127.0.0.14[127.0.0.14]"


def test_verify_level_checks_the_certificate(stack):
    port, base = stack["port"], stack["base"]
    resolver = FakeResolver({("oracle.test", "A"): ["127.0.0.1"]})
    good = settings_of(f"smtp_tls_security_level = verify\nsmtp_tls_CAfile = {base}/cert.pem\n")
    clear_cache()
    log = RecordingLog()
    results = asyncio.run(smtp_agent.deliver(request("root@oracle.test", nexthop=f"[oracle.test]:{port}"), good,
                                             resolver=resolver, log=log))
    assert results[0].status == "sent", results
    assert any(text.startswith("Verified TLS connection established to oracle.test[127.0.0.1]:")
               for _, text in log.lines)
    wrong = settings_of("smtp_tls_security_level = verify\nsmtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt\n")
    results = asyncio.run(smtp_agent.deliver(request("root@oracle.test", nexthop=f"[oracle.test]:{port}"), wrong,
                                             resolver=resolver, log=RecordingLog()))
    assert results[0].status == "deferred" and results[0].dsn == "4.7.5"
    assert results[0].text.startswith("Cannot start TLS: handshake failure with oracle.test[127.0.0.1]")


def test_mandatory_protocols_cap_the_tls_version(stack):
    from roost.net.smtp_client import protocol_range
    assert protocol_range([">=TLSv1"]) == ("TLSv1", "TLSv1.3")
    assert protocol_range(["!SSLv2", "!SSLv3", "!TLSv1", "!TLSv1.1"]) == ("TLSv1.2", "TLSv1.3")
    assert protocol_range(["<=TLSv1.2", ">=TLSv1.2"]) == ("TLSv1.2", "TLSv1.2")
    port = stack["port"]
    log = RecordingLog()
    settings = settings_of("smtp_tls_security_level = encrypt\nsmtp_tls_mandatory_protocols = <=TLSv1.2\n"
                           "smtp_tls_mandatory_ciphers = high\n")
    results = asyncio.run(smtp_agent.deliver(request("root@oracle.test", nexthop=f"[127.0.0.1]:{port}"), settings,
                                             resolver=FakeResolver({}), log=log))
    assert results[0].status == "sent"
    assert any(" TLSv1.2 with cipher " in text for _, text in log.lines), log.lines
