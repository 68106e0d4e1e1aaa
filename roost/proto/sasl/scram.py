"""SCRAM-SHA-1 and SCRAM-SHA-256 server mechanisms (RFC 5802 §5-7, RFC 7677), no -PLUS.

Exchange: client-first `gs2-header client-first-bare` → NeedCredentials(username) → the caller
supplies ScramCredentials (iterations, salt, StoredKey, ServerKey, as Dovecot stores
`{SCRAM-SHA-*}`) → Challenge(server-first `r=nonce,s=salt,i=iterations`) → client-final
`c=...,r=...,p=proof` → Success(server_final=`v=ServerSignature`) or Failure.
Channel binding: gs2 flag `n` or `y` only (RFC 5802 §6); `p=` is refused since -PLUS is not
offered. Usernames use RFC 5802 §5.1 saslname escaping (`=2C`, `=3D`).
Invariants: never raise; the server nonce is injectable for the RFC test vectors; the
`c=` attribute must equal the base64 of the client's own gs2 header.
Security: the proof is checked as H(ClientProof XOR ClientSignature) == StoredKey, compared
in constant time; an unknown user (supply(None)) gets a decoy server-first with a stable
per-user salt, so the client learns nothing before its proof fails.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from roost.proto.sasl.base import (Challenge, Failure, Mechanism, NeedCredentials, Result,
                                   Success, utf8)

ALGORITHMS = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
PRINTABLE = {chr(c) for c in range(0x21, 0x7F)} - {","}
DECOY_KEY = secrets.token_bytes(32)  # per process: an unknown user's salt is stable but secret
DECOY_ITERATIONS = 4096


@dataclass(frozen=True)
class ScramCredentials:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def decode_saslname(text: str) -> str | None:
    """RFC 5802 §5.1: `=2C` is `,`, `=3D` is `=`; any other `=` (or a bare `,`) is invalid."""
    out, index = [], 0
    while index < len(text):
        char = text[index]
        if char == "=":
            escape = text[index:index + 3]
            if escape == "=2C":
                out.append(",")
            elif escape == "=3D":
                out.append("=")
            else:
                return None
            index += 3
            continue
        if char == "," or char == "\0":
            return None
        out.append(char)
        index += 1
    return "".join(out)


def parse_attributes(text: str) -> list[tuple[str, str]] | None:
    pairs = []
    for part in text.split(","):
        if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
            return None
        pairs.append((part[0], part[2:]))
    return pairs


class ScramMechanism(Mechanism):
    def __init__(self, name: str, initial_response: bytes | None = None, *,
                 server_nonce: str | None = None) -> None:
        super().__init__(initial_response)
        self.name = name
        self.algorithm = ALGORITHMS[name]
        self.server_nonce = server_nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self.gs2_header = ""
        self.client_first_bare = ""
        self.server_first = ""
        self.nonce = ""
        self.authcid = ""
        self.authzid = ""
        self.credentials: ScramCredentials | None = None
        self.unknown_user = False

    def supply(self, credentials: object) -> Result:
        """None (unknown user) still gets a plausible server-first; the failure comes at the end."""
        if credentials is None and self.awaiting_credentials and not self.finished:
            self.unknown_user = True
            credentials = self.decoy_credentials()
        return super().supply(credentials)

    def decoy_credentials(self) -> ScramCredentials:
        size = hashlib.new(self.algorithm).digest_size
        salt = hmac.new(DECOY_KEY, self.authcid.encode(), "sha256").digest()[:16]
        return ScramCredentials(DECOY_ITERATIONS, salt, secrets.token_bytes(size),
                                secrets.token_bytes(size))

    def on_response(self, data: bytes) -> Result:
        text = utf8(data)
        if text is None:
            return Failure("SCRAM message is not UTF-8")
        if not self.gs2_header:
            return self.client_first(text)
        return self.client_final(text)

    def client_first(self, text: str) -> Result:
        flag, comma, rest = text.partition(",")
        if not comma:
            return Failure("missing gs2 header")
        if flag.startswith("p="):
            return Failure("channel binding is not supported (no -PLUS mechanism)")
        if flag not in ("n", "y"):
            return Failure("invalid gs2 channel binding flag")
        authzid_field, comma, bare = rest.partition(",")
        if not comma:
            return Failure("missing gs2 header")
        authzid = ""
        if authzid_field:
            if not authzid_field.startswith("a="):
                return Failure("invalid gs2 authzid")
            decoded = decode_saslname(authzid_field[2:])
            if decoded is None:
                return Failure("invalid authzid encoding")
            authzid = decoded
        attributes = parse_attributes(bare)
        if attributes is None or len(attributes) < 2:
            return Failure("malformed client-first-message")
        if attributes[0][0] == "m":
            return Failure("mandatory extension not supported")
        if attributes[0][0] != "n" or attributes[1][0] != "r":
            return Failure("client-first-message must start with n= and r=")
        username = decode_saslname(attributes[0][1])
        client_nonce = attributes[1][1]
        if not username:
            return Failure("invalid username")
        if not client_nonce or not set(client_nonce) <= PRINTABLE:
            return Failure("invalid client nonce")
        self.gs2_header = f"{flag},{authzid_field},"
        self.client_first_bare = bare
        self.nonce = client_nonce + self.server_nonce
        self.authcid, self.authzid = username, authzid
        return NeedCredentials(username, authzid)

    def on_credentials(self, credentials: object) -> Result:
        if not isinstance(credentials, ScramCredentials) or credentials.iterations < 1:
            return Failure("unusable SCRAM credentials")
        self.credentials = credentials
        salt = base64.b64encode(credentials.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={credentials.iterations}"
        return Challenge(self.server_first.encode())

    def client_final(self, text: str) -> Result:
        credentials = self.credentials
        if credentials is None:
            return Failure("client-final-message before credentials")
        without_proof, separator, proof_b64 = text.rpartition(",p=")
        if not separator:
            return Failure("missing proof")
        attributes = parse_attributes(without_proof)
        if attributes is None or len(attributes) < 2:
            return Failure("malformed client-final-message")
        if attributes[0] != ("c", base64.b64encode(self.gs2_header.encode()).decode()):
            return Failure("channel binding data does not match the gs2 header")
        if attributes[1] != ("r", self.nonce):
            return Failure("nonce mismatch")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except (binascii.Error, ValueError):
            return Failure("malformed proof")
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        client_signature = hmac.new(credentials.stored_key, auth_message, self.algorithm).digest()
        if len(proof) != len(client_signature):
            return Failure("malformed proof")
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature))
        if not hmac.compare_digest(hashlib.new(self.algorithm, client_key).digest(),
                                   credentials.stored_key):
            return Failure("unknown user" if self.unknown_user else "password mismatch")
        server_signature = hmac.new(credentials.server_key, auth_message, self.algorithm).digest()
        return Success(b"v=" + base64.b64encode(server_signature), self.authcid, self.authzid)
