"""Dovecot password schemes: verify and generate `{SCHEME}hash` strings.

Implements the schemes of Dovecot 2.3 "Password schemes" (doc.dovecot.org) under their
Dovecot names: PLAIN/CLEARTEXT/CLEAR, CRYPT (any crypt(3) format: DES, `$1$`, `$5$`, `$6$`,
`$2y$`, yescrypt `$y$`), DES-CRYPT, MD5-CRYPT (alias MD5), SHA256-CRYPT, SHA512-CRYPT,
BLF-CRYPT, ARGON2I, ARGON2ID, SHA/SHA1, SHA256, SHA512, SSHA, SSHA256, SSHA512, SMD5,
PLAIN-MD5, LDAP-MD5, DIGEST-MD5 (needs the user name), PBKDF2 (`$1$salt$rounds$hex`, PBKDF2-HMAC-SHA1), CRAM-MD5/HMAC-MD5 (the
HMAC-MD5 context, roost.auth.schemes_md5ctx), SCRAM-SHA-1 and SCRAM-SHA-256
(`iterations,salt,StoredKey,ServerKey`, RFC 5802 §3). A `.HEX` or `.B64` suffix selects the
encoding of binary schemes; like Dovecot, a stored value whose length is the hex (base64)
length of a fixed-size digest is also accepted in that encoding. A stored value without a
`{SCHEME}` prefix uses `default_pass_scheme` (Dovecot also reads a bare `$1$...` as MD5-CRYPT).

Invariants: `verify` and `generate` are plain synchronous functions doing CPU-bound work
(crypt, PBKDF2, argon2): run them in a thread or process pool, never on the event loop
(libcrypt and argon2 release the GIL). `verify` returns False for a wrong password and raises
SchemeError only for an unknown scheme or undecodable stored data (the passdb reports those
as internal failures, Dovecot does the same).
Security: every comparison is constant-time (hmac.compare_digest); salts come from `secrets`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from roost.auth.schemes_crypt import crypt_hash, crypt_setting, crypt_verify
from roost.auth.schemes_md5ctx import hmac_md5_context
from roost.proto.sasl.scram import ScramCredentials

NONE, BASE64, HEX = "none", "base64", "hex"
SALT_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SALTED_SALT_SIZE = 4  # Dovecot's salt length for SSHA*, SMD5
PBKDF2_DEFAULT_ROUNDS = 5000
SCRAM_DEFAULT_ITERATIONS = 4096
SHA_CRYPT_DEFAULT_ROUNDS = 5000
BCRYPT_DEFAULT_COST = 5


class SchemeError(ValueError):
    """Unknown scheme or stored data the scheme cannot decode (Dovecot's wording in str())."""


@dataclass(frozen=True)
class Scheme:
    """One password scheme: `verify(raw, password, user)`, `generate(password, user, rounds)`."""
    name: str
    encoding: str
    verify: Callable[[bytes, bytes, str], bool]
    generate: Callable[[bytes, str, int], bytes]
    raw_size: int = 0  # fixed decoded size, 0 = variable


def constant_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def random_salt_text(length: int) -> str:
    return "".join(secrets.choice(SALT_ALPHABET) for _ in range(length))


# ---- plain and digests ----------------------------------------------------------------------

def plain_scheme(name: str) -> Scheme:
    return Scheme(name, NONE, lambda raw, pw, user: constant_equal(raw, pw),
                  lambda pw, user, rounds: pw)


def digest_scheme(name: str, algorithm: str, encoding: str = BASE64) -> Scheme:
    size = hashlib.new(algorithm).digest_size
    return Scheme(name, encoding,
                  lambda raw, pw, user: constant_equal(raw, hashlib.new(algorithm, pw).digest()),
                  lambda pw, user, rounds: hashlib.new(algorithm, pw).digest(), size)


def salted_scheme(name: str, algorithm: str) -> Scheme:
    size = hashlib.new(algorithm).digest_size

    def verify(raw: bytes, password: bytes, user: str) -> bool:
        if len(raw) <= size:
            return False
        digest, salt = raw[:size], raw[size:]
        return constant_equal(digest, hashlib.new(algorithm, password + salt).digest())

    def generate(password: bytes, user: str, rounds: int) -> bytes:
        salt = secrets.token_bytes(SALTED_SALT_SIZE)
        return hashlib.new(algorithm, password + salt).digest() + salt

    return Scheme(name, BASE64, verify, generate)


def cram_md5_scheme(name: str) -> Scheme:
    return Scheme(name, HEX, lambda raw, pw, user: constant_equal(raw, hmac_md5_context(pw)),
                  lambda pw, user, rounds: hmac_md5_context(pw), 32)


def digest_md5_secret(password: bytes, user: str) -> bytes:
    """MD5(user:realm:password), realm = after the last `@` of user (RFC 2831 §2.1.2.1)."""
    if not user:
        raise SchemeError("digest_md5_generate(): username not given")
    name, _, realm = user.rpartition("@") if "@" in user else (user, "", "")
    return hashlib.md5(f"{name}:{realm}:".encode() + password).digest()


def digest_md5_scheme() -> Scheme:
    return Scheme("DIGEST-MD5", HEX,
                  lambda raw, pw, user: constant_equal(raw, digest_md5_secret(pw, user)),
                  lambda pw, user, rounds: digest_md5_secret(pw, user), 16)


# ---- crypt(3) family ---------------------------------------------------------------------------

def crypt_scheme(name: str, make_setting: Callable[[int], str]) -> Scheme:
    def verify(raw: bytes, password: bytes, user: str) -> bool:
        return crypt_verify(password, raw.decode("utf-8", "replace"))

    def generate(password: bytes, user: str, rounds: int) -> bytes:
        result = crypt_hash(password, make_setting(rounds))
        if result is None:
            raise SchemeError(f"{name}: crypt() refused the password")
        return result.encode("ascii")

    return Scheme(name, NONE, verify, generate)


def sha_crypt_setting(prefix: str) -> Callable[[int], str]:
    def make(rounds: int) -> str:
        if rounds in (0, SHA_CRYPT_DEFAULT_ROUNDS):
            return crypt_setting(prefix)
        return crypt_setting(prefix, min(max(rounds, 1000), 999_999_999))
    return make


def bcrypt_setting(rounds: int) -> str:
    return crypt_setting("$2y$", min(max(rounds or BCRYPT_DEFAULT_COST, 4), 31))


# ---- argon2 ------------------------------------------------------------------------------------

ARGON2_FORMAT = re.compile(r"\$argon2(?:i|id|d)\$v=\d{1,3}\$m=\d{1,10},t=\d{1,10},p=\d{1,3}"
                           r"\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+")
ARGON2_DEFAULTS = {"ARGON2I": ("i", 4, 32768), "ARGON2ID": ("id", 3, 65536)}


def argon2_scheme(name: str) -> Scheme:
    variant, default_time_cost, memory_cost = ARGON2_DEFAULTS[name]

    def verify(raw: bytes, password: bytes, user: str) -> bool:
        from argon2 import exceptions, low_level  # noqa: PLC0415 - optional native dependency
        text = raw.decode("ascii", "replace")
        if not ARGON2_FORMAT.fullmatch(text):
            raise SchemeError(f"{name}: invalid hash")
        hash_type = low_level.Type.ID if text.startswith("$argon2id$") else (
            low_level.Type.I if text.startswith("$argon2i$") else low_level.Type.D)
        try:
            return low_level.verify_secret(raw, password, hash_type)
        except exceptions.VerificationError:
            return False
        except (exceptions.InvalidHashError, ValueError) as error:
            raise SchemeError(f"{name}: invalid hash: {error}") from error

    def generate(password: bytes, user: str, rounds: int) -> bytes:
        from argon2 import low_level  # noqa: PLC0415 - optional native dependency
        hash_type = low_level.Type.ID if variant == "id" else low_level.Type.I
        return low_level.hash_secret(password, secrets.token_bytes(16),
                                     time_cost=rounds or default_time_cost,
                                     memory_cost=memory_cost, parallelism=1, hash_len=32,
                                     type=hash_type)

    return Scheme(name, NONE, verify, generate)


# ---- PBKDF2 and SCRAM -------------------------------------------------------------------------

def pbkdf2_verify(raw: bytes, password: bytes, user: str) -> bool:
    parts = raw.decode("utf-8", "replace").split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "1" or not parts[3].isdigit():
        raise SchemeError("PBKDF2: invalid stored data")
    rounds = int(parts[3])
    if rounds < 1:
        raise SchemeError("PBKDF2: invalid rounds")
    computed = hashlib.pbkdf2_hmac("sha1", password, parts[2].encode(), rounds).hex()
    return constant_equal(computed.encode(), parts[4].lower().encode())


def pbkdf2_generate(password: bytes, user: str, rounds: int) -> bytes:
    rounds = rounds or PBKDF2_DEFAULT_ROUNDS
    salt = random_salt_text(16)
    digest = hashlib.pbkdf2_hmac("sha1", password, salt.encode(), rounds).hex()
    return f"$1${salt}${rounds}${digest}".encode()


def parse_scram_secret(stored: str) -> ScramCredentials:
    """`iterations,salt_b64,StoredKey_b64,ServerKey_b64` (after the `{SCRAM-SHA-*}` prefix)."""
    parts = stored.split(",")
    if len(parts) != 4 or not parts[0].isdigit() or int(parts[0]) < 1:
        raise SchemeError("SCRAM: invalid stored data")
    try:
        salt, stored_key, server_key = (base64.b64decode(p, validate=True) for p in parts[1:])
    except binascii.Error as error:
        raise SchemeError("SCRAM: invalid base64 in stored data") from error
    return ScramCredentials(int(parts[0]), salt, stored_key, server_key)


def scram_secret_from_password(algorithm: str, password: bytes, salt: bytes,
                               iterations: int) -> ScramCredentials:
    salted = hashlib.pbkdf2_hmac(algorithm, password, salt, iterations)
    client_key = hmac.new(salted, b"Client Key", algorithm).digest()
    server_key = hmac.new(salted, b"Server Key", algorithm).digest()
    stored_key = hashlib.new(algorithm, client_key).digest()
    return ScramCredentials(iterations, salt, stored_key, server_key)


def scram_scheme(name: str, algorithm: str) -> Scheme:
    def verify(raw: bytes, password: bytes, user: str) -> bool:
        secret = parse_scram_secret(raw.decode("utf-8", "replace"))
        computed = scram_secret_from_password(algorithm, password, secret.salt, secret.iterations)
        return constant_equal(computed.stored_key, secret.stored_key)

    def generate(password: bytes, user: str, rounds: int) -> bytes:
        secret = scram_secret_from_password(algorithm, password, secrets.token_bytes(16),
                                            rounds or SCRAM_DEFAULT_ITERATIONS)
        fields = (secret.salt, secret.stored_key, secret.server_key)
        return (f"{secret.iterations}," + ",".join(base64.b64encode(f).decode() for f in fields)
                ).encode()

    return Scheme(name, NONE, verify, generate)


# ---- the table ----------------------------------------------------------------------------

def build_schemes() -> dict[str, Scheme]:
    md5_crypt = crypt_scheme("MD5-CRYPT", lambda rounds: crypt_setting("$1$"))
    blf_crypt = crypt_scheme("BLF-CRYPT", bcrypt_setting)
    table = [
        plain_scheme("PLAIN"), plain_scheme("CLEARTEXT"), plain_scheme("CLEAR"),
        # Dovecot 2.3.19 generates CRYPT as bcrypt `$2y$05$`; verification takes any crypt(3)
        crypt_scheme("CRYPT", bcrypt_setting),
        crypt_scheme("DES-CRYPT", lambda rounds: crypt_setting("")),
        md5_crypt, crypt_scheme("MD5", lambda rounds: crypt_setting("$1$")),
        crypt_scheme("SHA256-CRYPT", sha_crypt_setting("$5$")),
        crypt_scheme("SHA512-CRYPT", sha_crypt_setting("$6$")),
        blf_crypt,
        argon2_scheme("ARGON2I"), argon2_scheme("ARGON2ID"),
        digest_scheme("SHA", "sha1"), digest_scheme("SHA1", "sha1"),
        digest_scheme("SHA256", "sha256"), digest_scheme("SHA512", "sha512"),
        digest_scheme("PLAIN-MD5", "md5", HEX), digest_scheme("LDAP-MD5", "md5"),
        salted_scheme("SSHA", "sha1"), salted_scheme("SSHA256", "sha256"),
        salted_scheme("SSHA512", "sha512"), salted_scheme("SMD5", "md5"),
        Scheme("PBKDF2", NONE, pbkdf2_verify, pbkdf2_generate),
        cram_md5_scheme("CRAM-MD5"), cram_md5_scheme("HMAC-MD5"), digest_md5_scheme(),
        scram_scheme("SCRAM-SHA-1", "sha1"), scram_scheme("SCRAM-SHA-256", "sha256"),
    ]
    return {scheme.name: scheme for scheme in table}


SCHEMES = build_schemes()


def known_schemes() -> tuple[str, ...]:
    return tuple(SCHEMES)


def lookup_scheme(name: str) -> tuple[Scheme, str | None]:
    """(scheme, encoding override or None) for `NAME`, `NAME.HEX`, `NAME.B64`; SchemeError."""
    upper = name.upper()
    base, _, suffix = upper.rpartition(".")
    if base and suffix in ("HEX", "B64", "BASE64") and base in SCHEMES:
        return SCHEMES[base], HEX if suffix == "HEX" else BASE64
    if upper in SCHEMES:
        return SCHEMES[upper], None
    raise SchemeError("Unknown scheme")


def split_scheme(stored: str, default_scheme: str) -> tuple[str, str]:
    """(scheme name, data) of a stored password: `{SCHEME}data`, else the default scheme."""
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 0:
            return stored[1:end], stored[end + 1:]
    if stored.startswith("$1$") and stored.count("$") >= 3:
        return "MD5-CRYPT", stored
    return default_scheme, stored


def is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def decode_stored(scheme: Scheme, encoding: str, data: str) -> bytes:
    if encoding == NONE:
        return data.encode("utf-8", "surrogateescape")
    size = scheme.raw_size
    if encoding == BASE64 and size and len(data) == size * 2 and is_hex(data):
        encoding = HEX
    elif encoding == HEX and size and not (len(data) == size * 2 and is_hex(data)):
        encoding = BASE64
    if encoding == HEX:
        if len(data) % 2 or not is_hex(data):
            raise SchemeError("Input isn't valid HEX encoded data")
        return bytes.fromhex(data)
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise SchemeError("Input isn't valid base64 encoded data") from error


def verify(stored: str, password: str, default_scheme: str = "CRYPT", user: str = "") -> bool:
    """True when `password` matches `stored` (`{SCHEME}data`, else `default_scheme`).

    CPU-bound and synchronous: call it from a thread/process pool (asyncio.to_thread).
    Raises SchemeError for an unknown scheme or undecodable stored data.
    """
    scheme_name, data = split_scheme(stored, default_scheme)
    scheme, encoding = lookup_scheme(scheme_name)
    raw = decode_stored(scheme, encoding or scheme.encoding, data)
    return scheme.verify(raw, password.encode("utf-8", "surrogateescape"), user)


def generate(scheme: str, password: str, user: str = "", rounds: int = 0) -> str:
    """`{SCHEME}data` for `password` (rounds 0 = Dovecot's default); SchemeError if unknown.

    CPU-bound and synchronous: call it from a thread/process pool when serving requests.
    """
    found, encoding = lookup_scheme(scheme)
    raw = found.generate(password.encode("utf-8", "surrogateescape"), user, rounds)
    encoding = encoding or found.encoding
    if encoding == HEX:
        data = raw.hex()
    elif encoding == BASE64:
        data = base64.b64encode(raw).decode("ascii")
    else:
        data = raw.decode("utf-8", "surrogateescape")
    return "{" + scheme.upper() + "}" + data
