"""The plaintext SASL mechanisms PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login).

PLAIN: one message `[authzid] NUL authcid NUL passwd` (RFC 4616 §2): exactly two NULs, authcid
and passwd non-empty, all UTF-8; an empty initial challenge when the client sent no initial
response. LOGIN: challenges `Username:` then `Password:`; an initial response is the user name.
Both answer NeedCredentials carrying the password; the caller verifies it (passdb) and calls
`supply(True|False)`.
Invariants: never raise; NUL inside LOGIN's user name or password is refused.
Security: the password lives only in NeedCredentials (hidden from its repr), never in reasons.
"""

from __future__ import annotations

from roost.proto.sasl.base import (Challenge, Failure, Mechanism, NeedCredentials, Result,
                                   Success, utf8)


class PlaintextMechanism(Mechanism):
    """Shared ending: the caller verified the password and supplies the verdict."""

    authcid = ""
    authzid = ""

    def on_credentials(self, credentials: object) -> Result:
        if credentials is True:
            return Success(None, self.authcid, self.authzid)
        return Failure("password mismatch")


class PlainMechanism(PlaintextMechanism):
    name = "PLAIN"

    def on_response(self, data: bytes) -> Result:
        fields = data.split(b"\0")
        if len(fields) != 3:
            return Failure("PLAIN message must contain exactly two NULs")
        decoded = [utf8(field) for field in fields]
        if any(field is None for field in decoded):
            return Failure("PLAIN message is not UTF-8")
        authzid, authcid, password = decoded  # type: ignore[misc]
        if not authcid:
            return Failure("empty authcid")
        if not password:
            return Failure("empty password")
        self.authcid, self.authzid = authcid, authzid
        return NeedCredentials(authcid, authzid, password)


class LoginMechanism(PlaintextMechanism):
    name = "LOGIN"

    def __init__(self, initial_response: bytes | None = None) -> None:
        super().__init__(initial_response)
        self.username: str | None = None

    def on_start(self) -> Result:
        return Challenge(b"Username:")

    def on_response(self, data: bytes) -> Result:
        text = utf8(data)
        if text is None:
            return Failure("LOGIN response is not UTF-8")
        if "\0" in text:
            return Failure("NUL in LOGIN response")
        if self.username is None:
            if not text:
                return Failure("empty username")
            self.username = text
            return Challenge(b"Password:")
        if not text:
            return Failure("empty password")
        self.authcid = self.username
        return NeedCredentials(self.username, "", text)
