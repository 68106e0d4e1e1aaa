"""Server side of the Dovecot authentication protocol 1.2, sans-IO: bytes in, events out.

Implements the client/server protocol of Dovecot 2.3's auth socket (doc.dovecot.org
"Dovecot Authentication Protocol"), which Postfix's `smtpd_sasl_type = dovecot` speaks.
The server greets at once with `VERSION 1 2`, one `MECH name flags...` per mechanism, `SPID`,
`CUID`, `COOKIE` and `DONE` (TAB-separated, LF-terminated). The client must send
`VERSION 1 minor` first (any minor, major 1) and `CPID pid` before requests, then
`AUTH id MECH service=.. [secured] [rip=..] [lip=..] [resp=base64]...` and
`CONT id base64`; the server answers `CONT id base64`, `OK id user=..` or
`FAIL id [code=..] [user=..] [reason=..]`. Values are TAB-escaped (\\001 -> \\0011,
TAB -> \\001t, CR -> \\001r, LF -> \\001n).

Observed from Debian's Dovecot 2.3.19.1 and kept here: a line of 16384 bytes or more, an empty
line, an unknown command, a bad VERSION, AUTH before CPID, an AUTH without `service=`, with a
non-numeric or zero id, a duplicate id or an unknown mechanism are protocol errors after
which the server closes the connection; unknown AUTH parameters are ignored; mechanism names
are case-insensitive; a trailing CR is ignored; `CONT` for an unknown id is answered
`FAIL id reason=Authentication request timed out` and the connection stays.

Invariants: `receive` never raises on any bytes; after a ProtocolError every further input is
ignored; buffered input is bounded by MAX_LINE_LENGTH.
Security: nothing the client sends is echoed unescaped; responses stay one line each.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field

MAX_LINE_LENGTH = 16384  # Dovecot: "Auth client 0 sent us more than 16384 bytes"
MAX_ID = 2 ** 32 - 1
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 2
# Mechanism flags as Dovecot's auth server announces them in MECH lines.
MECHANISM_FLAGS = {
    "PLAIN": ("plaintext",),
    "LOGIN": ("plaintext",),
    "CRAM-MD5": ("dictionary", "active"),
    "SCRAM-SHA-1": ("mutual-auth",),
    "SCRAM-SHA-256": ("mutual-auth",),
}
TIMED_OUT = "Authentication request timed out"

_ESCAPES = {"\001": "\0011", "\t": "\001t", "\r": "\001r", "\n": "\001n"}
_UNESCAPES = {"1": "\001", "t": "\t", "r": "\r", "n": "\n", "0": "\0"}


def escape(value: str) -> str:
    """TAB-escape a value for one protocol field."""
    return "".join(_ESCAPES.get(char, char) for char in value)


def unescape(value: str) -> str:
    if "\001" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\001":
            following = next(chars, "")
            out.append(_UNESCAPES.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def decode_base64(text: str) -> bytes | None:
    """The decoded SASL data, or None when it is not valid base64."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


# --- events ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClientHandshake:
    """VERSION and CPID received: requests may follow."""
    minor_version: int
    client_pid: str


@dataclass(frozen=True)
class AuthRequest:
    request_id: int
    mechanism: str  # upper case
    service: str
    params: dict[str, str] = field(default_factory=dict)  # unescaped key=value parameters
    flags: frozenset[str] = frozenset()  # parameters without "=" (secured, nologin, ...)
    initial_response: str | None = None  # base64 text of resp=, None without one

    @property
    def secured(self) -> bool:
        return "secured" in self.flags or "secured" in self.params

    @property
    def remote_ip(self) -> str:
        return self.params.get("rip", "")

    @property
    def local_ip(self) -> str:
        return self.params.get("lip", "")


@dataclass(frozen=True)
class ContinueRequest:
    request_id: int
    response: str  # base64 text as sent


@dataclass(frozen=True)
class ProtocolError:
    """The client broke the protocol: log `reason` (Dovecot's words) and close."""
    reason: str


Event = ClientHandshake | AuthRequest | ContinueRequest | ProtocolError


def _request_id(text: str) -> int | None:
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None


class AuthServerProtocol:
    """One client connection of the auth socket."""

    def __init__(self, mechanisms: list[str] | tuple[str, ...], *, server_pid: int,
                 connection_id: int, cookie: str | None = None) -> None:
        self.mechanisms = tuple(name.upper() for name in mechanisms)
        self.server_pid = server_pid
        self.connection_id = connection_id
        self.cookie = cookie or secrets.token_hex(16)
        self.buffer = b""
        self.minor_version: int | None = None
        self.client_pid: str | None = None
        self.closed = False
        self.pending: set[int] = set()  # request ids between AUTH and OK/FAIL

    # --- output --------------------------------------------------------------------------

    def handshake(self) -> bytes:
        lines = [f"VERSION\t{PROTOCOL_MAJOR}\t{PROTOCOL_MINOR}"]
        for name in self.mechanisms:
            lines.append("\t".join(("MECH", name, *MECHANISM_FLAGS.get(name, ()))))
        lines += [f"SPID\t{self.server_pid}", f"CUID\t{self.connection_id}",
                  f"COOKIE\t{self.cookie}", "DONE"]
        return "".join(line + "\n" for line in lines).encode("ascii")

    def cont(self, request_id: int, data: bytes) -> bytes:
        return f"CONT\t{request_id}\t{base64.b64encode(data).decode('ascii')}\n".encode("ascii")

    def ok(self, request_id: int, user: str, **fields: str) -> bytes:
        self.pending.discard(request_id)
        return self._line("OK", request_id, [("user", user), *fields.items()])

    def fail(self, request_id: int, *, user: str | None = None, reason: str | None = None,
             code: str | None = None, original_user: str | None = None) -> bytes:
        self.pending.discard(request_id)
        pairs = [("code", code), ("user", user), ("original_user", original_user),
                 ("reason", reason)]
        return self._line("FAIL", request_id, [(key, value) for key, value in pairs
                                               if value is not None])

    @staticmethod
    def _line(verb: str, request_id: int, pairs: list[tuple[str, str]]) -> bytes:
        fields = [verb, str(request_id), *(f"{key}={escape(value)}" for key, value in pairs)]
        return ("\t".join(fields) + "\n").encode("utf-8", "surrogateescape")

    # --- input ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Events for the complete lines in `data` (plus what was buffered)."""
        if self.closed:
            return []
        self.buffer += data
        events: list[Event] = []
        while not self.closed:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) >= MAX_LINE_LENGTH:
                    events.append(self._error(
                        f"Auth client {self.connection_id} sent us more than "
                        f"{MAX_LINE_LENGTH} bytes"))
                break
            raw, self.buffer = self.buffer[:end], self.buffer[end + 1:]
            if len(raw) >= MAX_LINE_LENGTH:
                events.append(self._error(f"Auth client {self.connection_id} sent us more "
                                          f"than {MAX_LINE_LENGTH} bytes"))
                break
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            event = self._line_event(raw.decode("utf-8", "surrogateescape"))
            if event is not None:
                events.append(event)
        return events

    def _error(self, reason: str) -> ProtocolError:
        self.closed = True
        self.buffer = b""
        return ProtocolError(reason)

    def _line_event(self, line: str) -> Event | None:
        fields = line.split("\t")
        shown = line.replace("\t", "?")
        if self.minor_version is None:
            if len(fields) >= 3 and fields[0] == "VERSION" and fields[1].isascii() \
                    and fields[1].isdigit() and fields[2].isascii() and fields[2].isdigit():
                if int(fields[1]) != PROTOCOL_MAJOR:
                    return self._error("Authentication client not compatible with this server "
                                       "(mixed old and new binaries?)")
                self.minor_version = int(fields[2])
                return None
            return self._error(f"Authentication client sent invalid VERSION line: {shown}")
        if self.client_pid is None:
            if len(fields) >= 2 and fields[0] == "CPID" and fields[1]:
                self.client_pid = fields[1]
                return ClientHandshake(self.minor_version, self.client_pid)
            return self._error(f"BUG: Authentication client sent unknown handshake command: "
                               f"{shown}")
        if fields[0] == "AUTH":
            return self._auth(fields)
        if fields[0] == "CONT":
            request_id = _request_id(fields[1]) if len(fields) >= 3 else None
            if request_id is None:
                return self._error(f"BUG: Authentication client {self.client_pid} sent "
                                   "broken CONT request")
            return ContinueRequest(request_id, fields[2])
        return self._error(f"BUG: Authentication client sent unknown command: {shown}")

    def _auth(self, fields: list[str]) -> Event:
        client = self.client_pid
        request_id = _request_id(fields[1]) if len(fields) >= 3 else None
        if request_id is None:
            return self._error(f"BUG: Authentication client {client} sent broken AUTH request")
        mechanism = fields[2].upper()
        if mechanism not in self.mechanisms:
            return self._error(f"BUG: Authentication client {client} requested unsupported "
                               f"authentication mechanism {escape(fields[2])}")
        params: dict[str, str] = {}
        flags: set[str] = set()
        for item in fields[3:]:
            key, equals, value = item.partition("=")
            if equals:
                params[key] = unescape(value)
            elif key:
                flags.add(key)
        if not params.get("service"):
            return self._error(f"BUG: Authentication client {client} didn't specify service "
                               "in request")
        if request_id in self.pending:
            return self._error(f"BUG: Authentication client {client} sent a duplicate ID "
                               f"{request_id}")
        self.pending.add(request_id)
        initial = params.pop("resp", None)
        return AuthRequest(request_id, mechanism, params["service"], params, frozenset(flags),
                           initial)
