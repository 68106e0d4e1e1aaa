"""roost.smtpd.tlsconfig: smtpd_tls_protocols / mandatory_protocols, cipher grades, chain files,
checked by real TLS handshakes against roost's smtpd (STARTTLS and the smtps wrapper)."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from roost.smtpd.tlsconfig import cipher_list, protocol_range, server_context
from tests.conftest import require_tool
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


@pytest.mark.parametrize("wrapper", [False, True])
def test_received_header_tls_details(tmp_path, wrapper):
    """Postfix 3.7 writes `(using TLSv1.3 with cipher C (256/256 bits)\\n key-exchange ...)\\n
    (No client certificate requested)`; roost writes the same minus the key-exchange
    continuation, which Python's ssl cannot tell (see roost.net.smtpd._tls_details)."""
    master_cf = ("127.0.0.1:{smtps} inet n - n - - smtpd\n  -o smtpd_tls_wrappermode=yes\n" if wrapper
                 else "127.0.0.1:{smtp} inet n - n - - smtpd\n")
    with SmtpdServer(tmp_path, tls=True, master_cf=master_cf, main_cf="smtpd_tls_received_header = yes\n",
                     tls_context_factory=server_context) as server:
        if wrapper:
            smtp = smtplib.SMTP_SSL("127.0.0.1", server.port, timeout=10, context=client())
        else:
            smtp = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
            smtp.starttls(context=client())
        with smtp:
            cipher, version, bits = smtp.sock.cipher()
            smtp.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\nbody\r\n")
        files = server.queue_files()
        assert len(files) == 1
        content = open(files[0], "rb").read().decode("utf-8", "replace")
    expected = (f"\t(using {version} with cipher {cipher} ({bits}/{bits} bits))\n"
                "\t(No client certificate requested)\n")
    assert expected in content, content


def _tls_lines(received: str) -> list[str]:
    """The TLS comment lines of a Received header (tabs and Postfix's continuation kept)."""
    return [line for line in received.split("\n") if line.startswith(("\t(using ", "\t key-exchange ", "\t(No client",
                                                                      "\t(Client "))]


def test_received_tls_details_like_postfix(tmp_path):
    """The same client (TLS 1.3, no certificate) against Debian's Postfix 3.7 and roost: the
    Received header's TLS lines agree except for Postfix's ` key-exchange ... server-digest
    ...)` continuation, which roost cannot know (roost closes the first line instead)."""
    from tests.cleanup.postfix_ref import PostfixRef
    from tests.conftest import free_port_base

    require_tool("postfix")
    with SmtpdServer(tmp_path, tls=True, main_cf="smtpd_tls_received_header = yes\n",
                     tls_context_factory=server_context) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as smtp:
            smtp.starttls(context=client())
            smtp.sendmail("a@example.test", ["b@example.test"], b"Subject: x\r\n\r\nbody\r\n")
        roost_file = open(server.queue_files()[0], "rb").read().decode("utf-8", "replace")
    roost_lines = _tls_lines(roost_file[roost_file.index("Received: "):])

    ref = PostfixRef(free_port_base() + 40, f"smtpd_tls_security_level = may\nsmtpd_tls_received_header = yes\n"
                                            f"smtpd_tls_cert_file = {tmp_path}/cert.pem\n"
                                            f"smtpd_tls_key_file = {tmp_path}/key.pem\n")
    try:
        ref.start()
        with smtplib.SMTP("127.0.0.1", ref.port, timeout=30) as smtp:
            smtp.starttls(context=client())
            smtp.ehlo("client.example.org")
            smtp.mail("a@example.test")
            smtp.rcpt("b@example.test")
            code, text = smtp.data(b"Subject: x\r\n\r\nbody\r\n")
        assert code == 250, text
        queue_id = text.decode().rsplit(" ", 1)[1]
        shown = ref.postcat(queue_id, "-h")
    finally:
        ref.stop()
    postfix_lines = _tls_lines(shown[shown.index("Received: "):])
    assert len(postfix_lines) == 3 and postfix_lines[1].startswith("\t key-exchange "), shown
    assert roost_lines == [postfix_lines[0] + ")", postfix_lines[2]], (roost_lines, postfix_lines)


@pytest.mark.parametrize("verify_mode, peer, expected", [
    (ssl.CERT_NONE, b"", "(No client certificate requested)"),
    (ssl.CERT_OPTIONAL, b"", "(Client did not present a certificate)"),
    (ssl.CERT_OPTIONAL, b"der", "(Client certificate not verified)"),
])
def test_received_tls_text_client_certificate_line(verify_mode, peer, expected):
    from types import SimpleNamespace

    from roost.smtpd.tlsinfo import received_tls_text

    fake = SimpleNamespace(cipher=lambda: ("TLS_AES_128_GCM_SHA256", "TLSv1.3", 128), version=lambda: "TLSv1.3",
                           context=SimpleNamespace(verify_mode=verify_mode),
                           getpeercert=lambda binary_form=False: peer)
    assert received_tls_text(fake) == f"(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits))\n{expected}"
    assert received_tls_text(None) is None
