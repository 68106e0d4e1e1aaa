"""The smtpd server TLS context from postconf(5) TLS parameters of one listener.

smtpd_tls_chain_files (each PEM: private key, then its certificate chain; preferred over the
cert/key pair, as in Postfix ≥ 3.4), smtpd_tls_cert_file / smtpd_tls_key_file,
smtpd_tls_protocols (opportunistic, level `may`) or smtpd_tls_mandatory_protocols (level
`encrypt`): Postfix's syntax `>=TLSv1.2`, `<=TLSv1.3`, `!SSLv3, !TLSv1` or a plain list;
smtpd_tls_ciphers / smtpd_tls_mandatory_ciphers grade (high, medium, low, export, null →
OpenSSL cipher lists, as tls_high_cipherlist etc. define them) with smtpd_tls_exclude_ciphers /
smtpd_tls_mandatory_exclude_ciphers.

Meant for roost.net.tls.postfix_context (owned elsewhere) to call; roost.net.smtpd does not
build contexts itself because the master loads keys before dropping privileges.
Invariants: never allows less than TLS 1.2 even when the configuration would (Python's and
OpenSSL's floor; a weaker configured floor is raised, not an error). Security: a parameter
value that cannot be applied raises ValueError with the parameter name, never silently widens.
"""

from __future__ import annotations

import ssl

_VERSIONS = {"TLSV1.2": ssl.TLSVersion.TLSv1_2, "TLSV1.3": ssl.TLSVersion.TLSv1_3}
_OLD = ("SSLV2", "SSLV3", "TLSV1", "TLSV1.1")
_ORDER = ["SSLV2", "SSLV3", "TLSV1", "TLSV1.1", "TLSV1.2", "TLSV1.3"]
# postconf(5) tls_*_cipherlist defaults
CIPHER_GRADES = {
    "high": "aNULL:-aNULL:HIGH:@STRENGTH",
    "medium": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
    "low": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",  # LOW ciphers are gone from OpenSSL 3
    "export": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
    "null": "eNULL:!aNULL",
}


def protocol_range(spec: str) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """(minimum, maximum) TLS version for a smtpd_tls_protocols value."""
    items = [item.strip().upper() for item in spec.replace(",", " ").replace(":", " ").split() if item.strip()]
    allowed = set(_ORDER)
    for item in items:
        if item.startswith(">="):
            allowed &= set(_ORDER[_ORDER.index(_known(item[2:])):])
        elif item.startswith("<="):
            allowed &= set(_ORDER[:_ORDER.index(_known(item[2:])) + 1])
        elif item.startswith("!"):
            allowed.discard(_known(item[1:]))
    plain = [item for item in items if not item.startswith((">=", "<=", "!"))]
    if plain:
        allowed &= {_known(item) for item in plain}
    usable = [name for name in _ORDER if name in allowed and name not in _OLD]
    if not usable:
        raise ValueError(f"smtpd_tls_protocols = {spec}: no protocol roost can offer (TLSv1.2 or later)")
    return _VERSIONS[usable[0]], _VERSIONS[usable[-1]]


def _known(name: str) -> str:
    if name not in _ORDER:
        raise ValueError(f"unknown TLS protocol {name!r}")
    return name


def cipher_list(grade: str, exclude=()) -> str:
    base = CIPHER_GRADES.get(grade.strip().lower())
    if base is None:
        raise ValueError(f"unknown cipher grade {grade!r}")
    return base + "".join(f":!{name}" for name in exclude if name)


def server_context(settings, *, mandatory: bool | None = None) -> ssl.SSLContext:
    """The context for one smtpd listener; `mandatory` defaults to level == encrypt."""
    from roost.smtpd.config import tls_level

    if mandatory is None:
        mandatory = tls_level(settings) == "encrypt" or settings.bool("smtpd_tls_wrappermode")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.verify_mode = ssl.CERT_NONE  # smtpd_tls_ask_ccert = no
    prefix = "smtpd_tls_mandatory_" if mandatory else "smtpd_tls_"
    low, high = protocol_range(settings.get(prefix + "protocols"))
    context.minimum_version, context.maximum_version = low, high
    grade = settings.get("smtpd_tls_mandatory_ciphers" if mandatory else "smtpd_tls_ciphers")
    exclude = list(settings.list("smtpd_tls_exclude_ciphers"))
    if mandatory:
        exclude += list(settings.list("smtpd_tls_mandatory_exclude_ciphers"))
    context.set_ciphers(cipher_list(grade, exclude))
    chain_files = [path for path in settings.list("smtpd_tls_chain_files") if path]
    if chain_files:
        for path in chain_files:  # key and chain in one PEM file
            context.load_cert_chain(path)
    else:
        cert = settings.get("smtpd_tls_cert_file")
        if not cert:
            raise ValueError("neither smtpd_tls_chain_files nor smtpd_tls_cert_file is set")
        context.load_cert_chain(cert, settings.get("smtpd_tls_key_file") or cert)
    return context
