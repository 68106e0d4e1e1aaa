"""Server-side TLS contexts for roost's listeners (implicit TLS and STARTTLS/STLS).

Postfix listeners take `smtpd_tls_cert_file` / `smtpd_tls_key_file` (postconf(5); the key
defaults to the certificate file, so one PEM file may hold both). Dovecot listeners take
`ssl_cert` / `ssl_key` (Dovecot's ssl configuration), whose values are either `<path` (read
the file) or the PEM text itself (what the `<file` syntax expands to).
RFC 8314 (implicit TLS on 465/993/995) and RFC 3207 / 2595 (STARTTLS) use the same context.

Invariants: a context is built once, in the master, before privileges are dropped (key files
are usually readable by root only) and is inherited by the forked workers; building fails
with TLSSetupError carrying a one-line reason, never a traceback.
Security: protocol minimum TLS 1.2 (Python's default floor; Dovecot 2.3's ssl_min_protocol
default), or the listener's ssl_min_protocol;
PEM text given inline is written to a 0600 temporary file only for the time of loading.
"""

from __future__ import annotations

import os
import ssl
import tempfile


class TLSSetupError(Exception):
    """A certificate or key that cannot be used; str() is the reason for the log."""


def server_context(cert_file: str, key_file: str | None = None) -> ssl.SSLContext:
    """A server context holding the certificate chain in `cert_file` and key in `key_file`."""
    if not cert_file:
        raise TLSSetupError("no certificate file configured")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # Mail clients do not present certificates by default; asking would only break them.
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(cert_file, key_file or cert_file)
    except FileNotFoundError as exc:
        raise TLSSetupError(f"cannot read {exc.filename or cert_file}: file not found") from None
    except PermissionError as exc:
        raise TLSSetupError(f"cannot read {exc.filename or cert_file}: permission denied") from None
    except (ssl.SSLError, OSError) as exc:
        raise TLSSetupError(f"cannot load certificate {cert_file} and key {key_file or cert_file}: "
                            f"{getattr(exc, 'reason', None) or exc}") from None
    return context


def postfix_context(settings) -> ssl.SSLContext:
    """The context of a Postfix smtpd listener from its (per-service) settings: certificate
    or chain files, protocols and cipher grades (roost.smtpd.tlsconfig)."""
    from roost.smtpd.tlsconfig import server_context as smtpd_server_context

    try:
        return smtpd_server_context(settings)
    except (ValueError, ssl.SSLError, OSError) as exc:
        raise TLSSetupError(str(exc)) from None


# Dovecot 2.3's ssl_min_protocol values (doc: "ssl_min_protocol"); SSLv3 is gone from
# Python's ssl, and so from roost.
MIN_PROTOCOLS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                 "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
                 "ANY": ssl.TLSVersion.MINIMUM_SUPPORTED}


def dovecot_context(ssl_cert: str | None, ssl_key: str | None,
                    ssl_min_protocol: str = "TLSv1.2") -> ssl.SSLContext:
    """The context from Dovecot's ssl_cert/ssl_key values (`<path` or inline PEM) and its
    ssl_min_protocol (the lowest protocol version a client may negotiate)."""
    minimum = MIN_PROTOCOLS.get(ssl_min_protocol.strip())
    if minimum is None:
        raise TLSSetupError(f"Unknown ssl_min_protocol setting '{ssl_min_protocol}'")
    if not ssl_cert:
        raise TLSSetupError("ssl_cert is not set")
    if not ssl_key:
        raise TLSSetupError("ssl_key is not set")
    with tempfile.TemporaryDirectory(prefix="roost-tls-") as private_dir:
        cert_path = _pem_source(ssl_cert, private_dir, "cert.pem")
        key_path = _pem_source(ssl_key, private_dir, "key.pem")
        context = server_context(cert_path, key_path)
    context.minimum_version = minimum
    return context


def _pem_source(value: str, private_dir: str, name: str) -> str:
    """A file name for a Dovecot `<path` value, or a private file holding inline PEM text."""
    value = value.strip()
    if value.startswith("<"):
        return value[1:].strip()
    if "-----BEGIN" not in value:
        # Dovecot 2.3 requires "<" before a path; a bare path is a common slip worth naming.
        raise TLSSetupError(f"value {value[:60]!r} is neither '<path' nor PEM text")
    path = os.path.join(private_dir, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value if value.endswith("\n") else value + "\n")
    return path
