"""roost.smtpd.tlsconfig: smtpd_tls_protocols / mandatory_protocols, cipher grades, chain files,
checked by real TLS handshakes against roost's smtpd (STARTTLS and the smtps wrapper)."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from roost.smtpd.tlsconfig import cipher_list, protocol_range, server_context
from tests.net.smtpd_harness import SmtpdServer

V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


@pytest.mark.parametrize("spec, expected", [
    (">=TLSv1", (V12, V13)),
    (">=TLSv1.3", (V13, V13)),
    ("<=TLSv1.2", (V12, V12)),
    ("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", (V12, V13)),
    ("!SSLv2:!SSLv3:!TLSv1.3", (V12, V12)),
    ("TLSv1.2 TLSv1.3", (V12, V13)),
])
def test_protocol_range(spec, expected):
    assert protocol_range(spec) == expected


@pytest.mark.parametrize("spec", ["<=TLSv1.1", "TLSv1", "!TLSv1.2 !TLSv1.3", ">=TLSv9"])
def test_protocol_range_refuses_what_cannot_be_offered(spec):
    with pytest.raises(ValueError):
        protocol_range(spec)


def test_cipher_list():
    assert cipher_list("high", ["aNULL", "RC4"]) == "aNULL:-aNULL:HIGH:@STRENGTH:!aNULL:!RC4"
    with pytest.raises(ValueError):
        cipher_list("bogus")


def client(maximum=None, minimum=None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum:
        context.maximum_version = maximum
    if minimum:
        context.minimum_version = minimum
    return context


def test_mandatory_protocols_on_encrypt_listener(tmp_path):
    master_cf = ("127.0.0.1:{submission} inet n - n - - smtpd\n"
                 "  -o smtpd_tls_security_level=encrypt\n"
                 "  -o smtpd_tls_mandatory_protocols=>=TLSv1.3\n")
    with SmtpdServer(tmp_path, tls=True, master_cf=master_cf, tls_context_factory=server_context) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            smtp.starttls(context=client(minimum=V13))
            assert smtp.sock.version() == "TLSv1.3"
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            with pytest.raises((ssl.SSLError, ConnectionError)):
                smtp.starttls(context=client(maximum=V12))


def test_chain_file_and_wrapper_mode(tmp_path):
    with SmtpdServer(tmp_path / "first", tls=True) as _server:  # writes cert.pem and key.pem
        pass
    key = (tmp_path / "first" / "key.pem").read_text()
    cert = (tmp_path / "first" / "cert.pem").read_text()
    chain = tmp_path / "chain.pem"
    chain.write_text(key + cert)
    master_cf = ("127.0.0.1:{smtps} inet n - n - - smtpd\n"
                 "  -o smtpd_tls_wrappermode=yes\n"
                 f"  -o smtpd_tls_chain_files={chain}\n"
                 "  -o smtpd_tls_cert_file=\n")
    with SmtpdServer(tmp_path / "second", master_cf=master_cf, tls_context_factory=server_context) as server:
        with smtplib.SMTP_SSL("127.0.0.1", server.port, timeout=10, context=client()) as smtp:
            assert smtp.ehlo()[0] == 250
            der = smtp.sock.getpeercert(binary_form=True)
    assert ssl.DER_cert_to_PEM_cert(der).split()[2:4] == cert.split()[2:4]
