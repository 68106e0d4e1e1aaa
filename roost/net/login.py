"""The login service POP3 and IMAP share: who may log in how, and checking the credentials.

One `LoginService` per worker, built from dovecot.conf (roost.config.dovecot_settings with the
connection's protocol/local/remote filters, roost.auth.lookup.AuthLookup). It implements, as
Dovecot 2.3's login processes and auth service do:
- `policy(local_ip, remote_ip, tls)`: the connection's view: `secured` (TLS, a
  `login_trusted_networks` address, or remote IP == local IP), the mechanisms of
  `auth_mechanisms` roost serves (PLAIN, LOGIN), `disable_plaintext_auth`, `ssl = required`,
  `login_greeting`;
- `password_login` and `sasl_login` (driving roost.proto.sasl machines; `exchange` is the
  protocol's async callback that sends a challenge and returns the client's decoded answer):
  the per-IP penalty (roost.auth.penalty, Dovecot's anvil; not for trusted networks, as
  Dovecot's `no-penalty`) is waited out before the check, password hashing runs in the
  worker's own pool of one thread per core (hashing_pool: a burst of SHA512-CRYPT logins
  must not queue ahead of the store work the mail sessions send to asyncio's default
  executor; bench/login_bench.py measures it), a failure is answered `auth_failure_delay`
  after the credentials arrived whatever the reason (unknown user and wrong password look alike), then the userdb
  lookup (in the same trip to the pool) gives the UserRecord the mail session needs.

Invariants: a login result is final (ok with a UserRecord, or a failure kind); exceptions of
the databases become `temporary` failures, never escape; all waits are asyncio sleeps.
Security: failure kinds other than `temporary`/`cancelled` are answered with one text by the
protocols; passwords go only to the passdb verification and the penalty's keyed digest.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from roost.auth.lookup import AuthLookup, UserRecord
from roost.auth.penalty import PenaltyTable, failure_reply_delay
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_settings import dovecot_settings
from roost.proto import sasl

SERVED_MECHANISMS = ("PLAIN", "LOGIN")  # need only a password check (see roost.net.auth)
SETTINGS_CACHE_MAX = 256
_hashing: ThreadPoolExecutor | None = None


def hashing_pool() -> ThreadPoolExecutor:
    """The threads that verify passwords (created in the worker, on its first login)."""
    global _hashing
    if _hashing is None:
        _hashing = ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                      thread_name_prefix="roost-login-hash")
    return _hashing

Exchange = Callable[[bytes], Awaitable["bytes | sasl.Cancel"]]


class ExchangeAborted(Exception):
    """Raised by an `exchange` callback when the client's answer was malformed."""


@dataclass(frozen=True)
class LoginPolicy:
    mechanisms: tuple[str, ...]
    secured: bool
    trusted: bool
    disable_plaintext_auth: bool
    ssl_required: bool
    greeting: str
    settings: Any  # the DovecotSettings view of this connection

    def mechanisms_for(self, secured: bool) -> tuple[str, ...]:
        plaintext_ok = secured or not (self.disable_plaintext_auth or self.ssl_required)
        return tuple(m for m in self.mechanisms if m not in sasl.PLAINTEXT_MECHANISMS
                     or plaintext_ok)


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    user: str  # the name the databases used (or the name tried)
    record: UserRecord | None = None
    temporary: bool = False  # an internal failure: [SYS/TEMP], no penalty
    cancelled: bool = False  # the client sent `*`
    malformed: bool = False  # the client's SASL data was not base64
    reason: str | None = None  # for logs only


def in_networks(ip: str, networks) -> bool:
    """Whether address `ip` is in one of `networks` (CIDR or single addresses)."""
    return _in_networks(ip, tuple(networks))


@functools.lru_cache(maxsize=SETTINGS_CACHE_MAX)
def _in_networks(ip: str, networks: tuple[str, ...]) -> bool:
    # remembered: every login asks for its client address once or twice, and parsing the
    # address and the networks each time cost more than the rest of the policy check
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


class LoginService:
    def __init__(self, dovecot_config: Any, lookup: AuthLookup, log: Any, *,
                 protocol: str, sleep=asyncio.sleep, clock=time.monotonic,
                 penalty: PenaltyTable | None = None):
        self.config = dovecot_config
        self.lookup = lookup
        self.log = log
        self.protocol = protocol
        self.sleep = sleep
        self.clock = clock
        self.penalty = penalty or PenaltyTable(clock)
        self._views: dict[tuple[str, str], Any] = {}
        self._policies: dict[tuple[str, str, bool], LoginPolicy] = {}

    @classmethod
    def from_config(cls, dovecot_config: Any, log: Any, *, protocol: str,
                    **kwargs) -> "LoginService":
        settings = dovecot_settings(dovecot_config, protocol=protocol)
        diags = Diagnostics()
        lookup = AuthLookup.from_settings(settings, diags, logger=log)
        for diag in diags.items:
            log.warning(str(diag))
        skipped = [m.upper() for m in settings.auth_mechanisms
                   if m.upper() not in SERVED_MECHANISMS]
        if skipped:
            log.warning(f"auth_mechanisms: {' '.join(skipped)} not served by roost's "
                        f"{protocol}-login yet")
        return cls(dovecot_config, lookup, log, protocol=protocol, **kwargs)

    def settings(self, local_ip: str | None, remote_ip: str | None) -> Any:
        key = (local_ip or "", remote_ip or "")
        view = self._views.get(key)
        if view is None:
            if len(self._views) >= SETTINGS_CACHE_MAX:
                self._views.clear()
            view = dovecot_settings(self.config, protocol=self.protocol,
                                    local=local_ip or None, remote=remote_ip or None)
            self._views[key] = view
        return view

    def policy(self, local_ip: str, remote_ip: str, tls: bool) -> LoginPolicy:
        """The connection's LoginPolicy; one shared (frozen) object per address pair, not
        one per connection (an idle IMAP connection keeps its policy)."""
        key = (local_ip or "", remote_ip or "", bool(tls))
        found = self._policies.get(key)
        if found is None:
            if len(self._policies) >= SETTINGS_CACHE_MAX:
                self._policies.clear()
            found = self._policies[key] = self._policy(local_ip, remote_ip, tls)
        return found

    def _policy(self, local_ip: str, remote_ip: str, tls: bool) -> LoginPolicy:
        view = self.settings(local_ip, remote_ip)
        trusted = bool(remote_ip) and in_networks(remote_ip, view.login_trusted_networks)
        secured = tls or trusted or (bool(remote_ip) and remote_ip == local_ip)
        mechanisms: list[str] = []
        for name in view.auth_mechanisms:
            if name.upper() in SERVED_MECHANISMS and name.upper() not in mechanisms:
                mechanisms.append(name.upper())
        return LoginPolicy(tuple(mechanisms), secured, trusted, view.disable_plaintext_auth,
                           view.ssl == "required", view.str("login_greeting"), view)

    def mechanisms(self, secured: bool, trusted: bool, local_ip: str = "",
                   remote_ip: str = "") -> tuple[str, ...]:
        return self.policy(local_ip, remote_ip, False).mechanisms_for(secured or trusted)

    # --- credential checks ---------------------------------------------------------------

    def _penalised(self, remote_ip: str, local_ip: str) -> str | None:
        if not remote_ip:
            return None
        view = self.settings(local_ip, remote_ip)
        if in_networks(remote_ip, view.login_trusted_networks):
            return None  # Dovecot's login processes send `no-penalty` for trusted clients
        return remote_ip

    async def _wait_penalty(self, ip: str | None) -> None:
        if ip is not None:
            delay = self.penalty.delay_for(ip)
            if delay > 0:
                await self.sleep(delay)

    async def _fail(self, ip: str | None, started: float, checksum: bytes | None) -> None:
        if ip is not None:
            self.penalty.record_failure(ip, checksum)
        await self.sleep(failure_reply_delay(self.clock() - started,
                                             self.settings("", "").auth_failure_delay))

    async def password_login(self, user: str, password: str, *, service: str, remote_ip: str,
                             local_ip: str, secured: bool, mechanism: str = "PLAIN"
                             ) -> LoginResult:
        ip = self._penalised(remote_ip, local_ip)
        await self._wait_penalty(ip)
        return await self._verify(user, "", password, service=service, remote_ip=remote_ip,
                                  local_ip=local_ip, secured=secured, mechanism=mechanism,
                                  ip=ip, started=self.clock())

    async def _verify(self, user: str, authzid: str, password: str, *, service: str,
                      remote_ip: str, local_ip: str, secured: bool, mechanism: str,
                      ip: str | None, started: float) -> LoginResult:
        checksum = self.penalty.attempt_checksum(user, password)
        if authzid and authzid != user:
            # No master users: another authorization identity fails like a wrong password.
            await self._fail(ip, started, checksum)
            return LoginResult(False, user, reason="master user login not supported")
        try:
            # one hand-off to the pool for both the passdb check and (when it succeeds) the
            # userdb lookup: each trip to a thread and back costs the loop a wake-up
            result, record, lookup_error = await asyncio.get_running_loop().run_in_executor(
                hashing_pool(), functools.partial(self._check, user, password, service,
                                                  remote_ip, local_ip, secured, mechanism))
        except Exception as error:  # noqa: BLE001 - a database bug is a temporary failure
            self.log.error(f"{mechanism.lower()}({user},{remote_ip}): lookup failed: "
                           f"{type(error).__name__}")
            return LoginResult(False, user, temporary=True, reason="internal failure")
        if not result.ok:
            if result.reason == "internal failure":
                await self.sleep(failure_reply_delay(self.clock() - started,
                                                     self.settings("", "").auth_failure_delay))
                return LoginResult(False, result.user, temporary=True, reason=result.reason)
            await self._fail(ip, started, checksum)
            return LoginResult(False, result.user, reason=result.reason)
        if ip is not None:
            self.penalty.record_success(ip)
        if lookup_error is not None:
            self.log.error(f"userdb lookup of {result.user} failed: "
                           f"{type(lookup_error).__name__}")
        if record is None:
            self.log.error(f"user {result.user}: authenticated but the userdb lookup failed")
            return LoginResult(False, result.user, temporary=True, reason="userdb lookup failed")
        return LoginResult(True, result.user, record)

    def _check(self, user: str, password: str, service: str, remote_ip: str, local_ip: str,
               secured: bool, mechanism: str):
        """In the pool: (passdb result, userdb record or None, the userdb's exception or
        None); the record is looked up only for a successful check."""
        result = self.lookup.authenticate(user, password, service, remote_ip, local_ip,
                                          secured, mechanism=mechanism)
        if not result.ok:
            return result, None, None
        try:
            return result, self.lookup.lookup_user(result.user, service,
                                                   result.userdb_fields), None
        except Exception as error:  # noqa: BLE001 - reported by the caller, on the loop
            return result, None, error

    async def sasl_login(self, mechanism: str, initial_response: bytes | None,
                         exchange: Exchange, *, service: str, remote_ip: str, local_ip: str,
                         secured: bool) -> LoginResult:
        """Run one SASL exchange (RFC 4422 §3) with the roost.proto.sasl machine."""
        ip = self._penalised(remote_ip, local_ip)
        await self._wait_penalty(ip)
        started = self.clock()
        machine = sasl.create_mechanism(mechanism, initial_response)
        if machine is None or mechanism.upper() not in SERVED_MECHANISMS:
            return LoginResult(False, "", reason="unsupported mechanism")
        step = machine.start()
        while isinstance(step, sasl.Challenge):
            try:
                answer = await exchange(step.data)
            except ExchangeAborted:
                return LoginResult(False, "", malformed=True, reason="invalid base64")
            if isinstance(answer, sasl.Cancel):
                return LoginResult(False, "", cancelled=True, reason="cancelled by client")
            started = self.clock()
            step = machine.step(answer)
        if isinstance(step, sasl.NeedCredentials):
            return await self._verify(step.authcid, step.authzid, step.password or "",
                                      service=service, remote_ip=remote_ip,
                                      local_ip=local_ip, secured=secured,
                                      mechanism=mechanism.upper(), ip=ip, started=started)
        reason = step.reason if isinstance(step, sasl.Failure) else "unexpected SASL result"
        await self._fail(ip, started, None)
        return LoginResult(False, "", reason=reason)
