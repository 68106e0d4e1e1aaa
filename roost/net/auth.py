"""The Dovecot auth socket: `service auth { unix_listener PATH }` served with roost's passdbs.

Runs roost.proto.dovecot_auth on each connection (Postfix's smtpd with `smtpd_sasl_type =
dovecot` is the usual client), drives the SASL machines of roost.proto.sasl for the PLAIN,
LOGIN, CRAM-MD5 and SCRAM-SHA-1/-256 mechanisms of `auth_mechanisms`, and verifies passwords
with roost.auth.lookup (CRAM-MD5 and SCRAM: the stored secret from roost.auth.credentials)
in a thread (hashing is CPU work and must not stall the event loop). Each failed request is
answered `auth_failure_delay` after its credentials arrived (roost.auth.penalty's
`failure_reply_delay`, so hashing time does not tell a wrong password from an unknown user),
and, as Dovecot's auth does with anvil, a request whose `rip` has recent failures waits the
per-IP penalty (roost.auth.penalty.PenaltyTable, one per worker) before it is handled,
unless the client flagged it `no-penalty`. All waits are asyncio sleeps: other requests go on.

Behaviour checked against Debian's Dovecot 2.3.19.1 auth socket
(tests/proto/test_dovecot_auth_differential.py): plaintext mechanisms are announced with the
`plaintext` flag and served whatever `secured` says, because on this socket
`disable_plaintext_auth` is the client's business (Dovecot's login processes, Postfix's
`smtpd_tls_auth_only`); answers are `OK id user=NAME`, `FAIL id user=NAME` for a wrong
password or an unknown user alike, `FAIL id` for malformed SASL data and
`FAIL id code=invalid_base64 reason=...` for bad base64. Log lines are Dovecot's
(`passwd-file(alice,127.0.0.2): Password mismatch` with auth_verbose, `plain(?,IP): invalid
input`, protocol errors as `Error: BUG: ...`).

Invariants: every accepted request gets exactly one OK or FAIL unless the client leaves
first; a protocol error closes only its connection; pending verifications are cancelled when
the connection ends.
Security: wrong password and unknown user get the same answer after the same delay and raise
the same penalty; passwords never reach a log line (the penalty keeps a keyed digest only).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from roost.auth.credentials import lookup_credentials
from roost.auth.lookup import AuthLookup
from roost.auth.penalty import PenaltyTable, failure_reply_delay
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_settings import dovecot_settings
from roost.net.server import Connection, ServiceContext
from roost.proto import sasl
from roost.proto.dovecot_auth import (TIMED_OUT, AuthRequest, AuthServerProtocol,
                                      ContinueRequest, ProtocolError, decode_base64)

# Mechanisms this socket serves: PLAIN and LOGIN check a password; CRAM-MD5 and SCRAM get
# the stored secret from the passdbs (roost.auth.credentials).
SERVED_MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256")
READ_SIZE = 4096
DEFAULT_FAILURE_DELAY = 2.0
NO_PENALTY_FLAG = "no-penalty"  # AUTH flag of Dovecot's login processes for trusted clients

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(eq=False)
class Exchange:
    request: AuthRequest
    machine: sasl.Mechanism
    verifying: asyncio.Task | None = None  # the penalty wait, then the password check
    user: str | None = None  # the user a credentials lookup found (SCRAM's last step fails as them)
    started: float = 0.0  # when the credentials were looked up (failure delay base)
    secret_found: bool = False  # a wrong proof is then a "Password mismatch"


@dataclass(eq=False)
class AuthService:
    """Shared by the connections of one worker: the lookup chain and the auth settings."""

    lookup: AuthLookup
    mechanisms: tuple[str, ...]
    log: Any
    failure_delay: float = DEFAULT_FAILURE_DELAY
    sleep: Sleep = asyncio.sleep
    clock: Clock = time.monotonic
    penalty: PenaltyTable | None = None  # built from `clock` when not given
    connection_ids: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        if self.penalty is None:
            self.penalty = PenaltyTable(self.clock)

    def penalised_ip(self, request: AuthRequest) -> str | None:
        """The remote IP whose penalty this request waits for and updates, if any."""
        if not request.remote_ip or NO_PENALTY_FLAG in request.flags:
            return None
        return request.remote_ip

    async def fail_later(self, request: AuthRequest, started: float,
                         checksum: bytes | None = None) -> None:
        """Count a failure against the request's IP and wait out auth_failure_delay."""
        ip = self.penalised_ip(request)
        if ip is not None:
            self.penalty.record_failure(ip, checksum)
        await self.sleep(failure_reply_delay(self.clock() - started, self.failure_delay))

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    stopping: asyncio.Event | None = None) -> None:
        session = _Session(self, AuthServerProtocol(self.mechanisms, server_pid=os.getpid(),
                                                    connection_id=next(self.connection_ids)),
                           writer)
        writer.write(session.protocol.handshake())
        await writer.drain()
        stop_waiter = asyncio.ensure_future(stopping.wait()) if stopping is not None else None
        try:
            while True:
                reading = asyncio.ensure_future(reader.read(READ_SIZE))
                waiters = {reading} if stop_waiter is None else {reading, stop_waiter}
                done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                if reading not in done:
                    # Shutting down: answer what is in progress, then close.
                    reading.cancel()
                    await session.finish_pending()
                    break
                data = reading.result()
                if not data or not session.feed(data):
                    break
                await writer.drain()
        finally:
            if stop_waiter is not None:
                stop_waiter.cancel()
            session.cancel_all()


class _Session:
    """One client connection: its protocol state and the exchanges in progress."""

    def __init__(self, service: AuthService, protocol: AuthServerProtocol,
                 writer: asyncio.StreamWriter) -> None:
        self.service = service
        self.protocol = protocol
        self.writer = writer
        self.exchanges: dict[int, Exchange] = {}
        self.tasks: set[asyncio.Task] = set()

    def feed(self, data: bytes) -> bool:
        """Handle the events in `data`; False when the connection must close."""
        for event in self.protocol.receive(data):
            if isinstance(event, ProtocolError):
                self.service.log.error(event.reason)
                return False
            if isinstance(event, AuthRequest):
                self.begin(event)
            elif isinstance(event, ContinueRequest):
                self.resume(event)
        return True

    def send(self, line: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(line)

    def begin(self, request: AuthRequest) -> None:
        initial = None
        if request.initial_response is not None:
            initial = decode_base64(request.initial_response)
            if initial is None:
                self.refuse(request, "Invalid base64 data in initial response",
                            code="invalid_base64")
                return
        machine = sasl.create_mechanism(request.mechanism, initial)
        exchange = Exchange(request, machine)
        self.exchanges[request.request_id] = exchange
        ip = self.service.penalised_ip(request)
        delay = self.service.penalty.delay_for(ip) if ip is not None else 0.0
        if delay <= 0:
            self.advance(exchange, machine.start())
            return

        async def after_penalty() -> None:
            await self.service.sleep(delay)
            exchange.verifying = None
            self.advance(exchange, machine.start())

        # A CONT during the wait finds `verifying` set and is refused as unexpected.
        exchange.verifying = self.spawn(after_penalty())

    def resume(self, event: ContinueRequest) -> None:
        exchange = self.exchanges.get(event.request_id)
        if exchange is None:
            self.send(self.protocol.fail(event.request_id, reason=TIMED_OUT))
            return
        if exchange.verifying is not None:
            exchange.verifying.cancel()
            self.forget(exchange)
            self.refuse(exchange.request, "Unexpected continuation")
            return
        data = decode_base64(event.response)
        if data is None:
            self.forget(exchange)
            self.refuse(exchange.request, "Invalid base64 data in continued response",
                        code="invalid_base64")
            return
        self.advance(exchange, exchange.machine.step(data))

    def advance(self, exchange: Exchange, result: object) -> None:
        request = exchange.request
        if isinstance(result, sasl.Challenge):
            self.send(self.protocol.cont(request.request_id, result.data))
        elif isinstance(result, sasl.NeedCredentials):
            check = self.verify if result.password is not None else self.fetch_secret
            exchange.verifying = self.spawn(check(exchange, result))
        elif isinstance(result, sasl.Success):
            self.forget(exchange)
            self.succeeded(request)
            self.send(self.protocol.ok(request.request_id, exchange.user or result.authcid))
        elif exchange.user is not None:
            # The secret was looked up (SCRAM): the proof was wrong, a password failure.
            self.forget(exchange)
            self.spawn(self.fail_as_user(exchange))
        else:
            self.forget(exchange)
            reason = result.reason if isinstance(result, sasl.Failure) else "invalid input"
            self.refuse(request, reason, logged_reason="invalid input"
                        if request.mechanism == "PLAIN" else reason)

    async def fetch_secret(self, exchange: Exchange, need: sasl.NeedCredentials) -> None:
        """CRAM-MD5 / SCRAM: look the stored secret up and hand it to the machine."""
        request = exchange.request
        exchange.started = self.service.clock()
        if await self.refused_master_user(exchange, need, exchange.started, None):
            return
        try:
            found = await asyncio.to_thread(
                lookup_credentials, self.service.lookup, need.authcid, request.mechanism,
                request.service, request.remote_ip, request.local_ip, request.secured)
        except Exception as error:  # noqa: BLE001 - a lookup bug must still get an answer
            self.service.log.error(f"{request.mechanism.lower()}(?{_where(request)}): "
                                   f"lookup failed: {type(error).__name__}")
            self.forget(exchange)
            self.send(self.protocol.fail(request.request_id, user=need.authcid))
            return
        exchange.user = found.user
        exchange.secret_found = found.found
        exchange.verifying = None
        self.advance(exchange, exchange.machine.supply(found.secret if found.found else None))

    async def fail_as_user(self, exchange: Exchange) -> None:
        request = exchange.request
        if exchange.secret_found:
            self.service.log.info(f"{request.mechanism.lower()}({exchange.user}"
                                  f"{_where(request)}): Password mismatch")
        await self.service.fail_later(exchange.request, exchange.started)
        self.send(self.protocol.fail(exchange.request.request_id, user=exchange.user))

    async def refused_master_user(self, exchange: Exchange, need: sasl.NeedCredentials,
                                  started: float, checksum: bytes | None) -> bool:
        """Master-user logins are not supported: an authorization identity other than the
        authentication identity is refused like a wrong password."""
        if not need.authzid or need.authzid == need.authcid:
            return False
        request = exchange.request
        self.service.log.info(f"{request.mechanism.lower()}({need.authcid}"
                              f"{_where(request)}): login user: Master user login "
                              "attempted without master passdbs")
        await self.service.fail_later(request, started, checksum)
        self.forget(exchange)
        self.send(self.protocol.fail(request.request_id, user=need.authcid))
        return True

    async def verify(self, exchange: Exchange, need: sasl.NeedCredentials) -> None:
        request = exchange.request
        started = self.service.clock()
        checksum = self.service.penalty.attempt_checksum(need.authcid, need.password) \
            if need.password is not None else None
        if await self.refused_master_user(exchange, need, started, checksum):
            return
        try:
            result = await asyncio.to_thread(
                self.service.lookup.authenticate, need.authcid, need.password or "",
                request.service, request.remote_ip, request.local_ip, request.secured,
                mechanism=request.mechanism)
        except Exception as error:  # noqa: BLE001 - a lookup bug must still get an answer
            # An internal failure is not the client's fault: no penalty (as in Dovecot).
            self.service.log.error(f"{request.mechanism.lower()}(?{_where(request)}): "
                                   f"lookup failed: {type(error).__name__}")
            self.forget(exchange)
            self.send(self.protocol.fail(request.request_id, user=need.authcid))
            return
        outcome = exchange.machine.supply(result.ok)
        original = self.original_user(need.authcid, result.user, request.service)
        if isinstance(outcome, sasl.Success):
            self.forget(exchange)
            self.succeeded(request)
            self.send(self.protocol.ok(request.request_id, result.user, original_user=original)
                      if original is not None else self.protocol.ok(request.request_id,
                                                                    result.user))
            return
        if result.reason == "internal failure":
            await self.service.sleep(failure_reply_delay(self.service.clock() - started,
                                                         self.service.failure_delay))
        else:
            await self.service.fail_later(request, started, checksum)
        self.forget(exchange)
        self.send(self.protocol.fail(request.request_id, user=result.user,
                                     original_user=original))

    def original_user(self, login: str, user: str, service: str) -> str | None:
        """Dovecot's `original_user=`: the login name as sent, when the databases saw another
        name (auth_username_format, auth_default_realm) or refused it."""
        if user != login or self.service.lookup.login_name(login, service) is None:
            return login
        return None

    def refuse(self, request: AuthRequest, reason: str, *, code: str | None = None,
               logged_reason: str | None = None) -> None:
        """Log and FAIL a request that never reached the passdbs, after the failure delay."""
        self.service.log.info(f"{request.mechanism.lower()}(?{_where(request)}): "
                              f"{logged_reason or reason}")

        started = self.service.clock()

        async def answer() -> None:
            await self.service.fail_later(request, started)
            self.protocol.pending.discard(request.request_id)
            if code is not None:
                self.send(self.protocol.fail(request.request_id, code=code, reason=reason))
            else:
                self.send(self.protocol.fail(request.request_id))

        self.spawn(answer())

    def succeeded(self, request: AuthRequest) -> None:
        ip = self.service.penalised_ip(request)
        if ip is not None:
            self.service.penalty.record_success(ip)

    def spawn(self, coroutine: Awaitable[None]) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def forget(self, exchange: Exchange) -> None:
        self.exchanges.pop(exchange.request.request_id, None)

    async def finish_pending(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks))

    def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()


def _where(request: AuthRequest) -> str:
    return f",{request.remote_ip}" if request.remote_ip else ""


def served_mechanisms(configured: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """auth_mechanisms in order, upper case, limited to what this socket serves."""
    result: list[str] = []
    for name in configured:
        upper = name.upper()
        if upper in SERVED_MECHANISMS and upper not in result:
            result.append(upper)
    return tuple(result)


def build_service(dovecot_config: Any, log: Any, *, sleep: Sleep = asyncio.sleep,
                  clock: Clock = time.monotonic, verify: Any = None) -> AuthService:
    """An AuthService from a parsed dovecot.conf; configuration problems are logged."""
    settings = dovecot_settings(dovecot_config)
    diags = Diagnostics()
    kwargs = {"verify": verify} if verify is not None else {}
    lookup = AuthLookup.from_settings(settings, diags, logger=log, **kwargs)
    for diag in diags.items:
        log.warning(str(diag))
    configured = settings.auth_mechanisms
    skipped = [name.upper() for name in configured
               if name.upper() not in SERVED_MECHANISMS]
    if skipped:
        log.warning(f"auth_mechanisms: {' '.join(skipped)} not served on the auth socket "
                    "by roost yet")
    return AuthService(lookup, served_mechanisms(configured), log,
                       failure_delay=settings.auth_failure_delay, sleep=sleep, clock=clock)


def make_service(context: ServiceContext):
    """Registry entry point (roost.master.services): the handler for `auth` listeners."""
    if context.config.dovecot is None:
        async def no_config(conn: Connection) -> None:
            conn.log.error("auth socket without a dovecot.conf: closing")
        return no_config
    service = build_service(context.config.dovecot, context.log)

    async def handler(conn: Connection) -> None:
        await service.serve(conn.reader, conn.writer, conn.stopping)

    return handler
