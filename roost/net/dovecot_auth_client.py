"""Client side of the Dovecot authentication protocol 1.2, for `smtpd_sasl_type = dovecot`.

What Postfix's smtpd does with `smtpd_sasl_path` (postconf(5); relative paths are under
`queue_directory`, `inet:host:port` is TCP): connect, send `VERSION 1 2` and `CPID pid`, read
the server's `VERSION`, `MECH name flags...`, `SPID`, `CUID`, `COOKIE`, `DONE`; then per AUTH
command send `AUTH id MECH service=smtp nologin lip= rip= [secured] [resp=base64]` and relay
`CONT` challenges until `OK` or `FAIL` (doc.dovecot.org "Dovecot Authentication Protocol").
Values are TAB-escaped with roost.proto.dovecot_auth.escape/unescape. roost's own
`roost init` configuration points smtpd at roost's auth socket this way.

Mechanism filtering follows smtpd_sasl_security_options: `noplaintext` drops mechanisms
flagged `plaintext`, `noanonymous` those flagged `anonymous`, `noactive` / `nodictionary`
likewise, `mutual_auth` keeps only `mutual-auth` ones; `private` mechanisms are never offered.

Invariants: one connection per SMTP session at a time, opened lazily (roost.smtpd.authpool
hands idle connections to later sessions of the same worker); a broken or silent auth server
gives AuthOutcome("tempfail") (454 4.7.0), never an exception to the SMTP session.
Security: passwords only travel inside base64 SASL data over the local socket; nothing from
the auth server reaches an SMTP reply except its `reason=` (control characters removed by Reply).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from roost.proto.dovecot_auth import escape, unescape

HANDSHAKE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0  # Dovecot's own auth request limit is about a minute
MAX_LINE = 16384
_FLAG_OPTIONS = {"noplaintext": "plaintext", "noanonymous": "anonymous", "noactive": "active",
                 "nodictionary": "dictionary"}


class AuthUnavailable(Exception):
    """The auth server cannot be reached or broke the protocol."""


@dataclass(frozen=True)
class AuthOutcome:
    status: str  # "ok" | "continue" | "fail" | "tempfail"
    user: str | None = None
    challenge: str | None = None  # base64 text for a 334 reply when status == "continue"
    reason: str | None = None


def socket_address(path: str, queue_directory: str) -> tuple[str, object]:
    """("unix", path) or ("inet", (host, port)) for an smtpd_sasl_path value."""
    if path.startswith("inet:"):
        host, _, port = path[5:].rpartition(":")
        return "inet", (host.strip("[]") or "127.0.0.1", int(port))
    if path.startswith("unix:"):
        path = path[5:]
    if not os.path.isabs(path):
        path = os.path.join(queue_directory, path)
    return "unix", path


def filter_mechanisms(mechanisms: dict[str, frozenset], security_options) -> tuple[str, ...]:
    """Mechanism names allowed by smtpd_sasl_security_options, in the server's order."""
    options = {option.lower() for option in security_options}
    out = []
    for name, flags in mechanisms.items():
        if "private" in flags:
            continue
        if any(flag in flags for option, flag in _FLAG_OPTIONS.items() if option in options):
            continue
        if "mutual_auth" in options and "mutual-auth" not in flags:
            continue
        out.append(name)
    return tuple(out)


class DovecotAuthClient:
    def __init__(self, path: str, queue_directory: str = "", *, service: str = "smtp"):
        self.kind, self.address = socket_address(path, queue_directory)
        self.service = service
        self.mechanisms: dict[str, frozenset] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next_id = 1
        self._request_id: int | None = None

    async def connect(self) -> None:
        """Open the socket and read the handshake (raises AuthUnavailable)."""
        if self._writer is not None:
            return
        try:
            if self.kind == "unix":
                opened = asyncio.open_unix_connection(self.address, limit=MAX_LINE * 2)
            else:
                opened = asyncio.open_connection(*self.address, limit=MAX_LINE * 2)
            self._reader, self._writer = await asyncio.wait_for(opened, HANDSHAKE_TIMEOUT)
            self._writer.write(f"VERSION\t1\t2\nCPID\t{os.getpid()}\n".encode())
            await self._writer.drain()
            while True:
                fields = await asyncio.wait_for(self._read_fields(), HANDSHAKE_TIMEOUT)
                if fields[0] == "VERSION" and (len(fields) < 2 or fields[1] != "1"):
                    raise AuthUnavailable(f"unsupported protocol version {fields[1:]}")
                if fields[0] == "MECH" and len(fields) >= 2:
                    self.mechanisms[fields[1].upper()] = frozenset(f.lower() for f in fields[2:])
                if fields[0] == "DONE":
                    return
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            raise AuthUnavailable(f"cannot talk to auth server {self.address}: {exc}") from None
        except AuthUnavailable:
            await self.close()
            raise

    async def _read_fields(self) -> list[str]:
        line = await self._reader.readuntil(b"\n")
        return [unescape(part) for part in line.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")]

    async def start(self, mechanism: str, initial_response: str | None, *, local_ip: str,
                    remote_ip: str, secured: bool, local_port: int | None = None,
                    remote_port: int | None = None) -> AuthOutcome:
        """Send AUTH; the outcome is the first server answer."""
        try:
            await self.connect()
        except AuthUnavailable:
            return AuthOutcome("tempfail", reason="Temporary authentication failure")
        request_id = self._next_id
        self._next_id += 1
        self._request_id = request_id
        parts = ["AUTH", str(request_id), mechanism, f"service={escape(self.service)}", "nologin"]
        if local_ip:
            parts.append(f"lip={escape(local_ip)}")
        if remote_ip:
            parts.append(f"rip={escape(remote_ip)}")
        if local_port:
            parts.append(f"lport={local_port}")
        if remote_port:
            parts.append(f"rport={remote_port}")
        if secured:
            parts.append("secured")
        if initial_response is not None:
            parts.append("resp=" + ("" if initial_response == "=" else escape(initial_response)))
        return await self._exchange("\t".join(parts))

    async def respond(self, response: str) -> AuthOutcome:
        """Send one CONT with the client's base64 response."""
        if self._request_id is None:
            return AuthOutcome("tempfail", reason="no request in progress")
        return await self._exchange(f"CONT\t{self._request_id}\t{escape(response)}")

    async def _exchange(self, line: str) -> AuthOutcome:
        try:
            self._writer.write(line.encode("utf-8") + b"\n")
            await self._writer.drain()
            while True:
                fields = await asyncio.wait_for(self._read_fields(), REQUEST_TIMEOUT)
                if len(fields) >= 2 and fields[1] == str(self._request_id):
                    break
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, AttributeError):
            await self.close()
            return AuthOutcome("tempfail", reason="Temporary authentication failure")
        params = dict(p.partition("=")[::2] for p in fields[2:])
        flags = {p for p in fields[2:] if "=" not in p}
        if fields[0] == "CONT":
            return AuthOutcome("continue", challenge=fields[2] if len(fields) > 2 else "")
        self._request_id = None
        if fields[0] == "OK":
            return AuthOutcome("ok", user=params.get("user"))
        if "temp" in flags or "temp" in params:
            return AuthOutcome("tempfail", user=params.get("user"), reason=params.get("reason"))
        return AuthOutcome("fail", user=params.get("user"), reason=params.get("reason"))

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (Exception, asyncio.CancelledError):
                pass
