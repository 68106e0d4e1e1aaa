"""Which SASL mechanisms exist, which a connection may use, and creating their machines.

Implements Dovecot 2.3's `auth_mechanisms` (names, case-insensitive, space separated) and
`disable_plaintext_auth` (doc.dovecot.org "Authentication mechanisms", "SSL/TLS"): plaintext
mechanisms (PLAIN, LOGIN) are neither advertised nor accepted on a connection that is not
secured by TLS, unless the client is trusted (localhost, as Dovecot treats a connection whose
remote IP equals the local one, or `login_trusted_networks`).
Invariants: results keep the configured order, upper-case, without duplicates or unknown
names (`unknown_mechanisms` reports those for configuration diagnostics).
Security: `mechanism_allowed` is the single check an adapter needs before starting a machine.
"""

from __future__ import annotations

from roost.proto.sasl.base import Mechanism
from roost.proto.sasl.cram_md5 import CramMd5Mechanism
from roost.proto.sasl.plaintext import LoginMechanism, PlainMechanism
from roost.proto.sasl.scram import ALGORITHMS, ScramMechanism

KNOWN_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", *ALGORITHMS)
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})
PLAINTEXT_DISALLOWED = "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."


def unknown_mechanisms(configured: list[str] | tuple[str, ...]) -> list[str]:
    return [name for name in configured if name.upper() not in KNOWN_MECHANISMS]


def allowed_mechanisms(configured: list[str] | tuple[str, ...], secured: bool, trusted: bool,
                       disable_plaintext_auth: bool) -> list[str]:
    """The mechanisms to advertise: configured ones, minus plaintext ones when not allowed."""
    plaintext_ok = secured or trusted or not disable_plaintext_auth
    result: list[str] = []
    for name in configured:
        upper = name.upper()
        if upper not in KNOWN_MECHANISMS or upper in result:
            continue
        if upper in PLAINTEXT_MECHANISMS and not plaintext_ok:
            continue
        result.append(upper)
    return result


def mechanism_allowed(name: str, configured: list[str] | tuple[str, ...], secured: bool,
                      trusted: bool, disable_plaintext_auth: bool) -> bool:
    return name.upper() in allowed_mechanisms(configured, secured, trusted, disable_plaintext_auth)


def create_mechanism(name: str, initial_response: bytes | None = None, *,
                     hostname: str = "localhost", challenge: bytes | None = None,
                     server_nonce: str | None = None) -> Mechanism | None:
    """A fresh machine for `name` (None if unknown); call `.start()` for its first result."""
    upper = name.upper()
    if upper == "PLAIN":
        return PlainMechanism(initial_response)
    if upper == "LOGIN":
        return LoginMechanism(initial_response)
    if upper == "CRAM-MD5":
        return CramMd5Mechanism(initial_response, hostname=hostname, challenge=challenge)
    if upper in ALGORITHMS:
        return ScramMechanism(upper, initial_response, server_nonce=server_nonce)
    return None
