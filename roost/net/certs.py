"""Self-signed TLS certificate and key for a fresh configuration (`roost init`).

Produces a PEM certificate and a PEM private key (RSA 2048, the key type every mail client
accepts) valid for ten years, whose subjectAltName lists the mail host name, `localhost`,
127.0.0.1 and ::1, so clients on this host can verify it by name with the certificate as
their trust anchor (it is marked as its own CA and passes OpenSSL's X509_STRICT checks).
Uses the `cryptography` package (RFC 5280 profile: serial number, key identifiers,
keyUsage, extendedKeyUsage serverAuth).

Invariants: the key file is created with mode 0600 before any key byte is written, and a
file is only ever replaced by rename, so a reader never sees half a key or a world-readable one.
Security: the private key never leaves this process except into its 0600 file.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY_DAYS = 3650
RSA_KEY_BITS = 2048
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class CertificatePair:
    cert_pem: bytes
    key_pem: bytes


def make_self_signed(hostname: str, *, days: int = VALIDITY_DAYS,
                     now: datetime.datetime | None = None) -> CertificatePair:
    """A new key and a self-signed certificate for `hostname`, localhost and the loopbacks."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, hostname),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "roost self-signed"),
    ])
    dns_names = [hostname] + [n for n in LOOPBACK_NAMES if n != hostname]
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in LOOPBACK_ADDRESSES]
    # Backdate a little so a client whose clock is slightly behind still accepts it.
    start = (now or datetime.datetime.now(datetime.timezone.utc)) - datetime.timedelta(hours=1)
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        # CA:TRUE lets clients use this very file as their trust anchor (cafile=cert.pem).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=True, key_cert_sign=True,
            content_commitment=False, data_encipherment=False, key_agreement=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return CertificatePair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def write_file_atomically(path: str, data: bytes, mode: int, uid: int = -1, gid: int = -1) -> None:
    """Write `data` to `path` with `mode` (and owner) set before the data, replacing by rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)  # mkstemp creates it 0600
    try:
        os.fchmod(fd, mode)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as out:
            fd = -1
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd != -1:
            os.close(fd)
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_self_signed(cert_path: str, key_path: str, hostname: str, *, uid: int = -1,
                      gid: int = -1) -> x509.Certificate:
    """Create the pair and store it: certificate mode 0644, key mode 0600 (owned by uid:gid)."""
    pair = make_self_signed(hostname)
    write_file_atomically(key_path, pair.key_pem, 0o600, uid, gid)
    write_file_atomically(cert_path, pair.cert_pem, 0o644, uid, gid)
    return x509.load_pem_x509_certificate(pair.cert_pem)
