"""Credentials lookups: the stored secret a challenge-response SASL mechanism needs.

Implements Dovecot 2.3's "credentials lookup" (doc.dovecot.org "Authentication mechanisms"
and "Password schemes"): CRAM-MD5 and SCRAM-SHA-1/-256 cannot be checked by hashing a
password the client sends, so the passdb chain is asked for the user's stored password and
the mechanism computes the proof itself. Which stored schemes can serve which mechanism:

- CRAM-MD5: a plaintext password (`PLAIN`, `CLEARTEXT`, `PLAIN-TRUNC`-free) or the HMAC-MD5
  context Dovecot stores as `{CRAM-MD5}` (RFC 2195 §2);
- SCRAM-SHA-1 / SCRAM-SHA-256: a plaintext password (salted keys derived here, RFC 5802 §3,
  RFC 7677) or the stored `{SCRAM-SHA-1}` / `{SCRAM-SHA-256}` secret.

Any other scheme fails the login with Dovecot's words: `Requested CRAM-MD5 scheme, but we
have only SHA512-CRYPT`. The passdb chain's actions (skip, result_success...) apply as for a
password login: the lookup runs `AuthLookup.run_passdbs` with a capture in place of the
password check, so the first passdb that has the user and a password supplies the secret.

Invariants: synchronous and pure apart from reading the databases (callers run it in a
thread, like `authenticate`); never raises.
Security: the secret is returned to the in-process SASL machine only, never logged; a
password derived SCRAM secret uses a fresh random salt each time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from roost.auth import schemes
from roost.auth.lookup import AuthLookup
from roost.auth.passdb import AuthContext
from roost.auth.schemes_md5ctx import hmac_md5_context

PLAINTEXT_SCHEMES = ("PLAIN", "CLEARTEXT")
SCRAM_ALGORITHMS = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
# Which stored scheme (besides plaintext) carries each mechanism's secret.
NATIVE_SCHEME = {"CRAM-MD5": "CRAM-MD5", "SCRAM-SHA-1": "SCRAM-SHA-1",
                 "SCRAM-SHA-256": "SCRAM-SHA-256"}


@dataclass(frozen=True)
class CredentialsResult:
    found: bool  # the user exists and has a secret usable by the mechanism
    user: str
    secret: object | None = field(default=None, repr=False)  # what Mechanism.supply takes
    reason: str | None = None  # like AuthResult.reason
    log: tuple[tuple[str, str], ...] = ()


def secret_for(mechanism: str, stored: str, default_scheme: str, user: str) -> object | None:
    """The mechanism's secret from a stored password, or None when its scheme cannot serve."""
    scheme_name, data = schemes.split_scheme(stored, default_scheme)
    scheme_name = scheme_name.upper()
    try:
        if scheme_name in PLAINTEXT_SCHEMES:
            if mechanism == "CRAM-MD5":
                return data
            algorithm = SCRAM_ALGORITHMS[mechanism]
            return schemes.scram_secret_from_password(
                algorithm, data.encode("utf-8", "surrogateescape"), secrets.token_bytes(16),
                schemes.SCRAM_DEFAULT_ITERATIONS)
        if scheme_name != NATIVE_SCHEME.get(mechanism):
            return None
        scheme, encoding = schemes.lookup_scheme(scheme_name)
        raw = schemes.decode_stored(scheme, encoding or scheme.encoding, data)
        if mechanism == "CRAM-MD5":
            return raw if len(raw) == 32 else None
        return schemes.parse_scram_secret(raw.decode("utf-8", "replace"))
    except (schemes.SchemeError, KeyError, ValueError):
        return None


def stored_scheme_name(stored: str, default_scheme: str) -> str:
    return schemes.split_scheme(stored, default_scheme)[0].upper()


def explain_unusable(log: tuple[tuple[str, str], ...], unusable: list[str],
                     mechanism: str) -> tuple[tuple[str, str], ...]:
    """A passdb whose stored scheme cannot serve the mechanism logged `Password mismatch`;
    Dovecot says why instead: `passwd-file(u,ip): Requested CRAM-MD5 scheme, but we have
    only SHA512-CRYPT`. The captures ran in the same order as those lines were written."""
    pending = list(unusable)
    out = []
    for level, text in log:
        if pending and text.endswith(": Password mismatch"):
            prefix = text[: -len(": Password mismatch")]
            text = (f"{prefix}: Requested {NATIVE_SCHEME[mechanism]} scheme, but we have only "
                    f"{pending.pop(0)}")
        out.append((level, text))
    return tuple(out)


def lookup_credentials(lookup: AuthLookup, username: str, mechanism: str, service: str = "",
                       remote_ip: str = "", local_ip: str = "",
                       secured: bool = False) -> CredentialsResult:
    """The chain's stored secret of `username` for `mechanism` (CRAM-MD5, SCRAM-SHA-*)."""
    mechanism = mechanism.upper()
    user, refusal = lookup.check_login_name(username, service)
    if user is None:
        where = f",{remote_ip}" if remote_ip else ""
        line = (("info", f"{mechanism.lower()}(?{where}): {refusal}"),)
        lookup.emit(line)
        return CredentialsResult(False, username, None, "unknown user", line)
    found: dict[str, object] = {}
    unusable: list[str] = []

    def capture(stored: str, _password: str, default_scheme: str, who: str) -> bool:
        secret = secret_for(mechanism, stored, default_scheme, who)
        if secret is None:
            unusable.append(stored_scheme_name(stored, default_scheme))
            return False
        found.setdefault("secret", secret)
        return True

    context = AuthContext(user, service, remote_ip, local_ip, secured)
    result = lookup.run_passdbs(context, lambda db, ctx: db.verify(ctx, capture))
    log = explain_unusable(result.log, unusable, mechanism)
    lookup.emit(log)
    if not result.ok or "secret" not in found:
        return CredentialsResult(False, result.user, None, result.reason or "password mismatch",
                                 log)
    return CredentialsResult(True, result.user, found["secret"], None, log)


def hmac_context_of(password: str) -> bytes:
    """The `{CRAM-MD5}` secret of a plaintext password (for tests and doveadm)."""
    return hmac_md5_context(password.encode("utf-8"))
