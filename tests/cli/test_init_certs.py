"""The self-signed certificate `roost init` writes (roost/net/certs.py): loads into the stdlib
ssl module, names the host, localhost and the loopback addresses, verifies as its own trust
anchor under OpenSSL's strict X.509 checks, and its key is never readable by others."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import stat

import pytest
from cryptography import x509

from roost.net import certs
from tests.cli.test_init import init_ok


def handshake(cert_file: str, key_file: str, server_hostname: str) -> None:
    """A full TLS handshake in memory; the client trusts only `cert_file`."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=cert_file)
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    directory = tmp_path_factory.mktemp("certs")
    cert_file, key_file = str(directory / "cert.pem"), str(directory / "key.pem")
    old_umask = os.umask(0)  # the key must be 0600 whatever the umask
    try:
        cert = certs.write_self_signed(cert_file, key_file, "mail.example.test")
    finally:
        os.umask(old_umask)
    return cert_file, key_file, cert


def test_key_is_0600_and_certificate_0644(pair):
    cert_file, key_file, _ = pair
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert_file).st_mode) == 0o644
    assert not [n for n in os.listdir(os.path.dirname(key_file)) if n.startswith(".tmp-")]


def test_loads_into_the_stdlib_ssl_context(pair):
    cert_file, key_file, _ = pair
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file)


def test_names_the_host_localhost_and_loopback_addresses(pair):
    _, _, cert = pair
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mail.example.test", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]


def test_valid_now_and_for_ten_years(pair):
    _, _, cert = pair
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert.not_valid_before_utc <= now
    assert cert.not_valid_after_utc - now > datetime.timedelta(days=3649)


@pytest.mark.parametrize("server_hostname", ["mail.example.test", "localhost", "127.0.0.1", "::1"])
def test_clients_verify_it_by_name_with_the_certificate_as_trust_anchor(pair, server_hostname):
    cert_file, key_file, _ = pair
    handshake(cert_file, key_file, server_hostname)


def test_another_name_fails_verification(pair):
    cert_file, key_file, _ = pair
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(cert_file, key_file, "other.example.test")


def test_init_writes_a_matching_pair_for_its_hostname(tmp_path):
    init_ok(tmp_path / "d", "--hostname", "imap.example.test")
    handshake(str(tmp_path / "d/tls/cert.pem"), str(tmp_path / "d/tls/key.pem"), "imap.example.test")


def test_atomic_write_replaces_content_and_mode(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    certs.write_file_atomically(str(target), b"new secret", 0o600)
    assert target.read_bytes() == b"new secret"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["file"]
