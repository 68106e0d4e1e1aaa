"""The CRAM-MD5 SASL mechanism (RFC 2195 §2).

The server challenges with a unique msg-id `<random.timestamp@hostname>`; the client answers
`user SP hex(HMAC-MD5(secret, challenge))` (lowercase hex, one space, RFC 2195 §2). After
NeedCredentials the caller supplies the user's CRAM-MD5 secret: the 32-byte HMAC-MD5 context
Dovecot stores as `{CRAM-MD5}` (roost.auth.schemes_md5ctx), or the plaintext password as str.
Invariants: never raise; the challenge is injectable for tests (RFC 2195's example).
Security: digests compared in constant time; the challenge carries 64 random bits.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time

from roost.auth.schemes_md5ctx import hmac_md5_context, hmac_md5_from_context
from roost.proto.sasl.base import (Challenge, Failure, Mechanism, NeedCredentials, Result,
                                   Success, utf8)

RESPONSE = re.compile(r"(.+) ([0-9a-fA-F]{32})", re.DOTALL)


def make_challenge(hostname: str) -> bytes:
    return f"<{secrets.randbits(64)}.{int(time.time())}@{hostname}>".encode()


class CramMd5Mechanism(Mechanism):
    name = "CRAM-MD5"

    def __init__(self, initial_response: bytes | None = None, *, hostname: str = "localhost",
                 challenge: bytes | None = None) -> None:
        super().__init__(initial_response)
        self.challenge = challenge if challenge is not None else make_challenge(hostname)
        self.authcid = ""
        self.digest = b""

    def start(self) -> Result:
        if self.initial_response:  # RFC 2195 has no initial response: the server speaks first
            return self.fail("CRAM-MD5 does not take an initial response")
        return self.guard(Challenge(self.challenge))

    def on_response(self, data: bytes) -> Result:
        text = utf8(data)
        match = RESPONSE.fullmatch(text or "")
        if match is None:
            return Failure("malformed CRAM-MD5 response")
        self.authcid, self.digest = match.group(1), bytes.fromhex(match.group(2))
        if "\0" in self.authcid:
            return Failure("NUL in CRAM-MD5 user name")
        return NeedCredentials(self.authcid, "")

    def on_credentials(self, credentials: object) -> Result:
        if isinstance(credentials, str):
            context = hmac_md5_context(credentials.encode("utf-8"))
        elif isinstance(credentials, (bytes, bytearray)) and len(credentials) == 32:
            context = bytes(credentials)
        else:
            return Failure("unusable CRAM-MD5 secret")
        expected = hmac_md5_from_context(context, self.challenge)
        if hmac.compare_digest(expected, self.digest):
            return Success(None, self.authcid, "")
        return Failure("password mismatch")
