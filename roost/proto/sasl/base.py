"""SASL server mechanisms, sans-IO: the result types, the machine base class, response decoding.

Implements the server side of RFC 4422 §3 (exchanges of challenges and responses, initial
response, abort) independently of the carrying protocol: a machine consumes one whole decoded
client response per `step` and answers Challenge, NeedCredentials, Success or Failure.
Credentials are looked up by the caller (passdb): after NeedCredentials it calls `supply` with
the mechanism's kind of secret (see each mechanism) or None for an unknown user
(SCRAM then answers a decoy challenge and fails only at the proof).
Base64 framing and `*` cancel belong to the protocol adapters (RFC 4954 §4 for SMTP, RFC 3501
§6.2.2 for IMAP, RFC 5034 §4 for POP3); `decode_client_response` is their shared helper.
Invariants: `step` and `supply` never raise on any input; after Success or Failure every
further call is a Failure. Security: malformed input is a Failure with a reason suitable for
logs; reasons never contain the password.
"""

from __future__ import annotations

import abc
import base64
import binascii
from dataclasses import dataclass


@dataclass(frozen=True)
class Challenge:
    """Send `data` to the client (the adapter base64-encodes it) and wait for a response."""
    data: bytes


@dataclass(frozen=True)
class NeedCredentials:
    """Look up `authcid`; PLAIN/LOGIN carry the `password` to verify, others None."""
    authcid: str
    authzid: str
    password: str | None = None

    def __repr__(self) -> str:
        return f"NeedCredentials(authcid={self.authcid!r}, authzid={self.authzid!r})"


@dataclass(frozen=True)
class Success:
    """Authenticated; `server_final` is additional data for the client (SCRAM), else None."""
    server_final: bytes | None
    authcid: str
    authzid: str


@dataclass(frozen=True)
class Failure:
    reason: str


Result = Challenge | NeedCredentials | Success | Failure


@dataclass(frozen=True)
class Cancel:
    """The client sent `*`: abort the exchange (RFC 4422 §3.5)."""


@dataclass(frozen=True)
class MalformedBase64:
    """The response was not valid base64."""


@dataclass(frozen=True)
class TooLong:
    """The encoded response exceeded the adapter's limit."""


def decode_client_response(line: bytes, max_len: int) -> bytes | Cancel | MalformedBase64 | TooLong:
    """Decode one base64 response line (CRLF optional); `=` is the empty response (RFC 4954)."""
    if line.endswith(b"\r\n"):
        line = line[:-2]
    elif line.endswith(b"\n"):
        line = line[:-1]
    if len(line) > max_len:
        return TooLong()
    if line == b"*":
        return Cancel()
    if line == b"=":
        return b""
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        return MalformedBase64()


def utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Mechanism(abc.ABC):
    """One authentication exchange. Subclasses implement `on_response` and `on_credentials`."""

    name = ""

    def __init__(self, initial_response: bytes | None = None) -> None:
        self.initial_response = initial_response
        self.finished = False
        self.awaiting_credentials = False

    def start(self) -> Result:
        """The first result: uses the initial response when there was one."""
        if self.initial_response is not None:
            return self.step(self.initial_response)
        return self.guard(self.on_start())

    def step(self, client_bytes: bytes) -> Result:
        if self.finished:
            return Failure("authentication already finished")
        if self.awaiting_credentials:
            return Failure("response received while credentials are pending")
        try:
            return self.guard(self.on_response(bytes(client_bytes)))
        except Exception as error:  # noqa: BLE001 - garbage must end as a Failure, never a crash
            return self.fail(f"malformed response ({type(error).__name__})")

    def supply(self, credentials: object) -> Result:
        """The caller's answer to NeedCredentials; None means unknown user."""
        if self.finished or not self.awaiting_credentials:
            return self.fail("credentials supplied out of turn")
        self.awaiting_credentials = False
        if credentials is None:
            return self.fail("unknown user")
        try:
            return self.guard(self.on_credentials(credentials))
        except Exception as error:  # noqa: BLE001 - a bad secret must not crash the session
            return self.fail(f"invalid credentials ({type(error).__name__})")

    def guard(self, result: Result) -> Result:
        if isinstance(result, (Success, Failure)):
            self.finished = True
        elif isinstance(result, NeedCredentials):
            self.awaiting_credentials = True
        return result

    def fail(self, reason: str) -> Failure:
        self.finished = True
        return Failure(reason)

    def on_start(self) -> Result:
        return Challenge(b"")

    @abc.abstractmethod
    def on_response(self, data: bytes) -> Result:
        """The next step after one decoded client response."""

    @abc.abstractmethod
    def on_credentials(self, credentials: object) -> Result:
        """The next step once the caller supplied what NeedCredentials asked for."""
