"""smtpd(8): the SMTP server's socket loop around roost.proto.smtp.machine.

One `SmtpSession` per client: banner (`220 smtpd_banner`), then bytes from the socket go into
the machine and its events are answered with roost.policy.SmtpPolicy (restrictions at each
stage), the Dovecot auth client (AUTH, `smtpd_sasl_type = dovecot`) and
roost.cleanup.CleanupService (DATA/BDAT content streamed into the queue file; `250 2.0.0 Ok:
queued as ID` only after the file and its directory are fsynced: `finish_async()` hands the
fsyncs to the cleanup service's committer thread, roost.queue.committer). RFC 5321,
RFC 2920 (replies are flushed only when no pipelined input is waiting), RFC 3207 (STARTTLS;
wrapper mode is done by roost.net.server for tls_wrapper listeners).

Limits (postconf(5)): smtpd_timeout (`421 4.4.2 host Error: timeout exceeded`),
smtpd_soft_error_limit / smtpd_error_sleep_time / smtpd_hard_error_limit (`421 4.7.0 host
Error: too many errors`), smtpd_client_connection_count_limit (across the service's workers,
roost.master.anvil; clients in smtpd_client_event_limit_exceptions networks are exempt), message_size_limit while the
content streams, line_length_limit and smtpd_recipient_limit in the machine.

As Postfix's smtpd (observed with 3.7, compared in tests/interop/test_restrictions_matrix.py):
the queue file is opened at the first accepted RCPT (later log lines carry its ID, not
NOQUEUE); a CONNECT-time reject (smtpd_delay_reject = no) answers every later command but QUIT
with `503 5.7.0 Error: access denied for host[addr]`; after a DISCARD action nothing more of
the transaction is checked and the message is discarded; HOLD/FILTER/REDIRECT/BCC actions go
to the message; smtpd_reject_footer (roost.smtpd.footer) follows every 4XX/5XX reply; a
`policy.fatal` configuration or an empty SASL mechanism list ends the session before the
greeting (Postfix's smtpd exits); smtpd_forbid_unauth_pipelining answers `554 5.5.0 Error:
SMTP protocol synchronization` and hangs up; TLS details for the Received header come from
roost.smtpd.tlsinfo.

Invariants: a client that disappears before the final reply leaves no queue file (abort);
one session's exception never reaches another; every log line is Postfix's.
Security: after `220 Ready to start TLS` every byte already received — in the machine and
in the StreamReader's buffer — is dropped before the handshake (CVE-2011-0411 class).
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import os
import ssl
import sys
import termios
from dataclasses import dataclass, field
from typing import Any, Callable

from roost.net.dovecot_auth_client import DovecotAuthClient, filter_mechanisms
from roost.master import anvil
from roost.net.server import Connection, ServiceContext, hold_plaintext
from roost.proto.smtp import events as E
from roost.proto.smtp import reply as R
from roost.proto.smtp.machine import SmtpServerMachine
from roost.proto.smtp.reply import Reply
from roost.smtpd import logtext
from roost.smtpd.authpool import AuthClientPool
from roost.smtpd.config import machine_settings, session_limits, with_mechanisms
from roost.smtpd.footer import RejectFooter
from roost.smtpd.hosts import HostsTable
from roost.smtpd.readtimer import ReadTimer
from roost.smtpd.tlsinfo import received_tls_text

READ_SIZE = 256 * 1024
PEER_LOOKUP_TIMEOUT = 5.0


@dataclass
class ServiceState:
    """Per worker process: shared by the sessions of every listener of this service."""

    context: Any
    policy_factory: Callable | None
    cleanup_factory: Callable | None
    auth_pool: AuthClientPool = field(default_factory=AuthClientPool)  # kept between sessions
    _policies: dict = field(default_factory=dict)
    _cleanups: dict = field(default_factory=dict)
    _settings: dict = field(default_factory=dict)
    _per_listener: dict = field(default_factory=dict)

    @property
    def anvil_path(self) -> str:
        """The connection counter shared by the workers (the master prepares it as root)."""
        return anvil.anvil_lock_path(self.context.config.main.get("queue_directory"))

    def per_listener(self, listener, name: str, compute: Callable):
        """`compute()` once per listener and worker: settings are fixed for a worker's life
        (a reload starts new workers), so per-session parsing would only repeat itself."""
        key = (id(listener), name)
        try:
            return self._per_listener[key]
        except KeyError:
            value = self._per_listener[key] = compute()
            return value

    def session_setup(self, conn) -> tuple:
        """What every session of conn's listener (and TLS state) starts from, computed once:
        (SessionLimits, MachineSettings, policy, policy.needs, cleanup service)."""
        key = (id(conn.listener), conn.tls, conn.ssl_context is not None)
        found = self._settings.get(key)
        if found is None:
            listener = conn.listener
            settings = listener.settings
            policy = self.policy(listener, conn.log)
            found = self._settings[key] = (
                session_limits(settings),
                machine_settings(settings, tls_wrapper=listener.tls_wrapper or conn.tls,
                                 tls_possible=conn.ssl_context is not None),
                policy, getattr(policy, "needs", None), self.cleanup(listener, conn.log))
        return found

    def policy(self, listener, log):
        key = id(listener)
        if key not in self._policies:
            self._policies[key] = self.policy_factory(listener.settings, log) if self.policy_factory else None
        return self._policies[key]

    def cleanup(self, listener, log):
        key = id(listener)
        if key not in self._cleanups:
            self._cleanups[key] = (self.cleanup_factory(listener.settings, self.cleanup_log or log)
                                   if self.cleanup_factory else None)
        return self._cleanups[key]

    @property
    def cleanup_log(self):
        """cleanup's lines go out as `postfix/cleanup[pid]`, as Postfix's cleanup(8) writes them."""
        setup = getattr(self.context, "log_setup", None)
        if setup is None:
            return None
        try:
            return setup.postfix("cleanup", self.context.config.main.get("syslog_name"))
        except Exception:
            return None


def _default_policy_factory():
    try:
        from roost.net.dns import Resolver
        from roost.policy import SmtpPolicy
    except ImportError:
        return None

    def factory(settings, log):
        return SmtpPolicy(settings, resolver=Resolver(), log=log)
    return factory


def _default_cleanup_factory():
    try:
        from roost.cleanup import CleanupService
    except ImportError:
        return None
    return CleanupService


def _client_info_class():
    try:
        from roost.cleanup import ClientInfo
    except ImportError:
        return None
    return ClientInfo


_CLIENT_INFO = _client_info_class()  # looked up once, not at every queue file


def _state_class():
    try:
        from roost.policy.state import SmtpState
        return SmtpState
    except ImportError:
        return None


_STATE_CLASS = _state_class()  # looked up once: an import statement per policy check adds up


def make_service(ctx: ServiceContext, *, policy_factory=None, cleanup_factory=None):
    """Registry entry point (roost.master.services): the handler for smtpd listeners."""
    state = ServiceState(ctx, policy_factory or _default_policy_factory(),
                         cleanup_factory or _default_cleanup_factory())

    def handler(conn: Connection):
        # the session's own coroutine, not one awaiting it: every resume of the session
        # task passes through one coroutine frame fewer
        return SmtpSession(conn, state).run()

    return handler


def _exempt(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for item in networks:
        try:
            if ip in ipaddress.ip_network(item.strip("[]"), strict=False):
                return True
        except ValueError:
            continue
    return False


class SmtpSession:
    def __init__(self, conn: Connection, service: ServiceState):
        self.conn = conn
        self.service = service
        self.settings = conn.settings
        self.log = conn.log
        self.limits, base_settings, self.policy, self._policy_needs, self.cleanup = service.session_setup(conn)
        self.machine = SmtpServerMachine(base_settings)
        self.hostname = base_settings.hostname
        self.client_name = "unknown"
        self.reverse_name = "unknown"
        self.who = logtext.client("unknown", conn.peer_host or "127.0.0.1")
        self.auth_client: DovecotAuthClient | None = None
        self.auth_ready = False
        self.sasl_method: str | None = None
        self.sasl_username: str | None = None
        self.auth_mechanism: str | None = None
        self.connect_reject: Reply | None = None
        self.out: list[bytes] = []
        self.helo_protocol = "SMTP"
        self.pipelining_logged = False
        self.tls_info: str | None = None
        self.died = False
        self.forbid_unauth_pipelining = self._bool("smtpd_forbid_unauth_pipelining", False)
        self.footer = service.per_listener(conn.listener, "footer", self._parse_footer)
        self.message = None
        self._reset_message()

    def _parse_footer(self) -> RejectFooter:
        return RejectFooter.parse(self._get("smtpd_reject_footer", ""))

    def _greeting(self) -> bytes:
        return Reply(220, None, self._get("smtpd_banner", f"{self.hostname} ESMTP")).to_bytes()

    # --- transaction state ----------------------------------------------------------------
    def _reset_message(self) -> None:
        """End of a transaction (RSET, HELO, STARTTLS, after DATA): an open queue file goes."""
        self._abort_message()
        self.message = None
        self.discard = False          # a DISCARD action was met: Postfix checks nothing more
        self.message_actions: list = []  # HOLD/DISCARD/FILTER/REDIRECT/BCC for cleanup
        self.message_size = 0
        self.complete_bytes = 0
        self.last_content_byte = b""
        self.content_error: Reply | None = None
        self.recipients: list = []  # (address, params)
        self.sender: str | None = None
        self.mail_params = None
        self.pipelined = False

    def _abort_message(self) -> None:
        if self.message is not None:
            try:
                self.message.abort()
            except Exception as exc:
                self.log.warning(f"{self.message.queue_id}: abort: {exc}")
        self.message = None

    def _policy_state(self, **changes):
        cls = _STATE_CLASS
        fields = dict(
            client_address=self.conn.peer_host, client_port=self.conn.peer_port,
            client_name=self.client_name, reverse_client_name=self.reverse_name,
            helo_name=self.machine.helo_name, protocol=self.helo_protocol,
            sender=self.sender, recipient=None, sasl_method=self.sasl_method, discard=self.discard,
            sasl_username=self.sasl_username, tls=self.machine.tls_active,
            recipient_count=len(self.recipients),
            message_size=self.mail_params.size if self.mail_params else None,
            pipelined=self.pipelined, queue_id=self.message.queue_id if self.message else None,
            instance=self.conn.session_id)
        fields.update(changes)
        if cls is None:
            from types import SimpleNamespace
            return SimpleNamespace(**fields)
        return cls(**fields)

    def _checks(self, stage: str) -> bool:
        """False when `_check(stage)` would answer None without looking at anything (the
        policy needs nothing at this stage): the caller then skips making the coroutine."""
        needs = self._policy_needs
        return self.policy is None or needs is None or needs(stage)

    async def _check(self, stage: str, **changes) -> Reply | None:
        if self.policy is None:  # fail closed: never an open relay for want of a policy
            if stage in ("rcpt", "data", "end_of_data"):
                self.log.warning("restriction module roost.policy is not available")
                return R.CONFIG_ERROR
            return None
        needs = self._policy_needs
        if needs is not None and not needs(stage):  # nothing to check: no state to build
            return None
        result = await getattr(self.policy, f"check_{stage}")(self._policy_state(**changes))
        if getattr(result, "log", None):
            self.log.info(result.log)
        if result.reply is None and getattr(result, "actions", ()):
            self.message_actions.extend(result.actions)
            # Postfix: after DISCARD nothing more of this transaction is checked
            self.discard = self.discard or any(kind == "DISCARD" for kind, *_ in result.actions)
            if self.message is not None:
                _apply_actions(self.message, result.actions)
        return result.reply

    # --- output ---------------------------------------------------------------------------
    async def _send(self, data: bytes, flush: bool = False) -> None:
        self.out.append(data)
        if (flush or not self.machine.buffered) and self._write_out():
            await self.conn.writer.drain()

    async def _flush(self) -> None:
        if self.out and self._write_out():
            await self.conn.writer.drain()

    def _write_out(self) -> bool:
        """Hand the waiting replies to the transport. True when the caller must await
        `drain()`: the transport holds unsent bytes (it may be over its high-water mark) or
        is closing (drain raises the connection's error). Otherwise drain() would only look
        and return: a reply that went out whole needs no await."""
        out = self.out
        if not out:
            return False
        writer = self.conn.writer
        writer.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        transport = writer.transport
        return transport.is_closing() or bool(transport.get_write_buffer_size())

    async def _reply(self, reply) -> None:
        if self.footer:  # postconf(5) smtpd_reject_footer: after every 4XX/5XX reply
            reply = [self._with_footer(r) for r in reply] if isinstance(reply, list) else self._with_footer(reply)
        first = reply[0] if isinstance(reply, list) else reply
        if first.code >= 400 and self.machine.error_count + 1 > self.limits.soft_error_limit:
            await self._flush()
            await asyncio.sleep(self.limits.error_sleep_time)  # smtpd_error_sleep_time
        if self._queue_reply(reply):
            await self.conn.writer.drain()

    def _queue_reply(self, reply: Reply) -> bool:
        """The end of `_reply`, and all of it for a 2XX/3XX reply (no footer, no error pause
        apply), without a coroutine. True when the caller must await `drain()` (`_write_out`)."""
        self.out.append(self.machine.reply(reply))
        return not self.machine.buffered and self._write_out()

    def _with_footer(self, reply: Reply) -> Reply:
        return self.footer.apply(reply, client_address=self.conn.peer_host,
                                 client_port=self.conn.peer_port, server_name=self.hostname)

    # --- main loop ------------------------------------------------------------------------
    async def run(self) -> None:
        fatal = getattr(self.policy, "fatal", None)
        if fatal:  # Postfix's smtpd exits at start-up: the client never sees a greeting
            getattr(self.log, "fatal", self.log.warning)(fatal)
            return
        address = self.conn.peer_host
        slot = anvil.UNLIMITED
        try:
            if self.conn.peer_host and self._bool("smtpd_peername_lookup", True):
                await self._lookup_client()  # else client_name stays "unknown", as self.who says
            self.log.info(logtext.connect(self.who))
            slot = self._connection_slot(address)
            if slot is None:
                self.log.warning(f"Connection concurrency limit exceeded: "
                                 f"{self.limits.connection_count_limit + 1} from {self.who} "
                                 f"for service {self.conn.listener.service}")
                await self._send(Reply(421, "4.7.0", f"{self.hostname} Error: too many connections "
                                       f"from {address}").to_bytes(), flush=True)
                return
            if self.conn.tls:  # smtps (wrapper mode): the handshake is already done
                self.tls_info = self._tls_text()
            self.connect_reject = await self._check("connect") if self._checks("connect") else None
            if self.machine.settings.auth_enabled:
                if not await self._prepare_auth():  # as Postfix: the mechanism list before the banner
                    self.died = True  # Postfix's smtpd exits: no greeting, no disconnect line
                    return
            if getattr(self.conn.reader, "_buffer", None) or _bytes_waiting(self.conn.writer):
                # the client spoke first: let what it sent with its connect reach the reader
                # (a loop turn; a silent client, the usual one, is told apart by one ioctl)
                await asyncio.sleep(0)
            early = bytes(getattr(self.conn.reader, "_buffer", b""))
            if early:  # RFC 5321 §4.3.1: the client must wait for the greeting
                self.pipelining_logged = True
                self.log.info(logtext.improper_pipelining("CONNECT", self.who, early))
                if self.forbid_unauth_pipelining:
                    await self._send(R.SYNC_ERROR.to_bytes(), flush=True)
                    return
            self.out.append(self.service.per_listener(self.conn.listener, "greeting", self._greeting))
            if self._write_out():
                await self.conn.writer.drain()
            # smtpd_timeout, one timer for the session (here, not in a coroutine of its own:
            # every resume of the task would pass through one more frame)
            timer = ReadTimer(self.limits.timeout, getattr(self.conn, "loop", None))
            try:
                await self._serve(self.conn.reader, timer)
            finally:
                timer.close()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            self.log.info(logtext.lost_connection(self.machine.last_command, self.who))
            del exc
        finally:
            self._abort_message()
            if slot is not None:
                slot.release()
            if self.auth_client is not None:
                self.service.auth_pool.release(self.auth_client)
            if not self.died:
                self.log.info(logtext.disconnect(self.who, self.machine.stats))

    def _connection_slot(self, address: str) -> anvil.Slot | None:
        """smtpd_client_connection_count_limit, counted like Postfix's anvil(8) across every
        worker of the service (roost.master.anvil); None when the client is over it. Clients
        in smtpd_client_event_limit_exceptions are not counted."""
        limit = self.limits.connection_count_limit
        if not limit or _exempt(address, self._list("smtpd_client_event_limit_exceptions")):
            return anvil.UNLIMITED
        try:
            return anvil.acquire(self.service.anvil_path, ("smtpd", self.conn.listener.service,
                                                          address), limit)
        except OSError as error:
            self.log.warning(f"smtpd_client_connection_count_limit: {error}")
            return anvil.UNLIMITED

    def _setting(self, kind: str, name: str, default):
        """settings.<kind>(name) of this listener, `default` when it cannot be read."""
        found = self.service._per_listener.get((id(self.conn.listener), (kind, name, default)), _MISSING)
        if found is not _MISSING:  # the usual case: no closure to make
            return found

        def compute():
            try:
                value = getattr(self.settings, kind)(name)
            except Exception:
                return default
            return tuple(value) if kind == "list" else value
        return self.service.per_listener(self.conn.listener, (kind, name, default), compute)

    def _get(self, name: str, default: str) -> str:
        return self._setting("get", name, default)

    def _list(self, name: str) -> tuple:
        return self._setting("list", name, ())

    def _bool(self, name: str, default: bool) -> bool:
        return self._setting("bool", name, default)

    async def _lookup_client(self) -> None:
        """client_name / reverse_client_name (smtpd_peername_lookup): /etc/hosts first, as the
        system resolver Postfix uses does, then the policy's DNS resolver; "unknown" when
        neither names the address (or the forward lookup does not confirm it)."""
        address = self.conn.peer_host
        resolver = getattr(self.policy, "resolver", None)
        lookup = self._bool("smtpd_peername_lookup", True)
        hosts_name = _hosts_table().name_of(address) if lookup and address else None
        if hosts_name:
            self.reverse_name = hosts_name
            self.client_name = hosts_name if address in _hosts_table().addresses_of(hosts_name) else "unknown"
        elif resolver is not None and lookup and address:
            try:
                self.reverse_name, self.client_name = await asyncio.wait_for(
                    _verified_name(resolver, address), PEER_LOOKUP_TIMEOUT)
            except (asyncio.TimeoutError, Exception):
                pass
        self.who = logtext.client(self.client_name, address or "127.0.0.1")

    async def _serve(self, reader, timer: ReadTimer) -> None:
        machine = self.machine
        while not machine.closed:
            previous_command = machine.last_command
            event = machine.next_event()
            if event is None:
                if self.out and self._write_out():
                    await self.conn.writer.drain()
                data = await timer.read(reader, READ_SIZE)
                if data is None:
                    self.log.info(logtext.timeout(machine.last_command, self.who))
                    await self._send(machine.close(R.timeout_exceeded(self.hostname)), flush=True)
                    return
                if not data:
                    machine.receive_eof()
                else:
                    machine.receive(data)
                continue
            if type(event) is E.DataContent:  # the most frequent event: straight to the file
                self._content(event.data, event.crlf_only)
                continue
            if isinstance(event, E.ConnectionClosed):
                during = event.during
                if during in ("DATA", "BDAT") and self.message is not None:
                    during = f"{during} ({self.complete_bytes} bytes)"  # Postfix: whole lines so far
                self.log.info(logtext.lost_connection(during, self.who))
                return
            if isinstance(event, E.BdatStart):
                await self._bdat_start(event)
                continue
            if (self.machine.error_count >= self.limits.hard_error_limit
                    and not isinstance(event, (E.DataEnd, E.BdatEnd, E.AuthResponse))):
                self.log.info(logtext.too_many_errors(previous_command, self.who))
                await self._send(self.machine.close(R.too_many_errors(self.hostname)), flush=True)
                return
            kind = type(event)
            if (kind in _PLAIN_EVENTS and self.connect_reject is None
                    and getattr(event, "pipelined", False) is not True):
                self.pipelined = False  # what _handle would do, without its coroutine
                await getattr(self, _HANDLER_NAMES.get(kind) or _handler_name(kind))(event)
            else:
                await self._handle(event)

    # --- commands -------------------------------------------------------------------------
    async def _handle(self, event) -> None:
        self.pipelined = getattr(event, "pipelined", False) is True
        if self.pipelined and self._improper_pipelining(event):
            if not self.pipelining_logged:  # Postfix logs the early bytes once per session
                self.pipelining_logged = True
                self.log.info(logtext.improper_pipelining(self.machine.last_command, self.who, self.machine.peek()))
            if self.forbid_unauth_pipelining:  # postconf(5); the command is not executed
                await self._reply(R.SYNC_ERROR)
                self.machine.close()
                await self._flush()
                return
        if isinstance(event, E.ProtocolError):
            if (self.connect_reject is not None and event.verb not in (None, "UNKNOWN", "QUIT")
                    and not event.fatal):
                await self._reply(self._access_denied())  # Postfix: before any syntax/sequence check
                return
            if event.reply == R.AUTH_INVALID_MECHANISM:
                mechanism = (self.machine.last_argument.split() or ["?"])[0]
                self.log.warning(logtext.sasl_failed(self.who, mechanism, "Invalid authentication mechanism"))
            await self._reply(event.reply)
            if event.fatal:
                await self._flush()
            return
        if self.connect_reject is not None and not isinstance(event, (E.Quit, E.AuthResponse)):
            await self._reply(self._access_denied())
            return
        kind = type(event)
        await getattr(self, _HANDLER_NAMES.get(kind) or _handler_name(kind))(event)

    def _improper_pipelining(self, event) -> bool:
        """RFC 2920 §3.1: EHLO/HELO, DATA, STARTTLS, AUTH, VRFY, NOOP, ETRN, QUIT end a command
        group; without PIPELINING announced (no EHLO yet, HELO, or the keyword discarded)
        nothing may be sent ahead at all (observed with Postfix 3.7)."""
        if isinstance(event, (E.Helo, E.Data, E.StartTls, E.Quit, E.Vrfy, E.Noop, E.Etrn, E.Auth)):
            return True
        if isinstance(event, (E.ProtocolError, E.AuthResponse, E.DataEnd, E.BdatEnd)):
            return False
        announced = (self.machine.helo_name is not None and self.helo_protocol == "ESMTP"
                     and "PIPELINING" not in self.machine.settings.discard_ehlo_keywords)
        return not announced

    def _access_denied(self) -> Reply:
        try:
            from roost.policy import access_denied_reply
            return access_denied_reply(self._policy_state())
        except ImportError:
            return Reply(503, "5.7.0", f"Error: access denied for {self.who}")

    async def _on_helo(self, event: E.Helo) -> None:
        reject = await self._check("helo", helo_name=event.name) if self._checks("helo") else None
        if reject:
            await self._reply(reject)
            return
        self._reset_message()
        self.helo_protocol = "SMTP" if event.verb == "HELO" else "ESMTP"
        if self._queue_reply(self.machine.helo_reply(event)):
            await self.conn.writer.drain()

    async def _on_mail(self, event: E.Mail) -> None:
        reject = (await self._check("mail", sender=event.address, message_size=event.params.size)
                  if self._checks("mail") else None)
        if reject:
            await self._reply(reject)
            return
        self.sender = event.address
        self.mail_params = event.params
        if self._queue_reply(R.MAIL_OK):
            await self.conn.writer.drain()

    async def _on_rcpt(self, event: E.Rcpt) -> None:
        reject = await self._check("rcpt", recipient=event.address)
        if reject:
            await self._reply(reject)
            return
        if self.message is None:
            # Postfix opens the queue file at the first accepted RCPT: from here on the
            # log lines of this transaction carry its queue ID instead of NOQUEUE
            problem = await self._open_message([(event.address, event.params)])
            if problem:
                await self._reply(problem)
                return
        else:
            message = self.message
            try:  # table look-ups and a buffered record: cheap enough for the loop
                message.add_recipient(event.address, orcpt=event.params.orcpt, notify=event.params.notify)
            except Exception as exc:
                self.log.warning(f"{message.queue_id}: cleanup: {type(exc).__name__}: {exc}")
                self._abort_message()
                await self._reply(R.LOCAL_ERROR)
                return
        self.recipients.append((event.address, event.params))
        if self._queue_reply(R.RCPT_OK):
            await self.conn.writer.drain()

    def _last_recipient(self) -> dict:
        return {"recipient": self.recipients[-1][0]} if self.recipients else {}

    async def _on_data(self, event: E.Data) -> None:
        reject = await self._check("data", **self._last_recipient()) if self._checks("data") else None
        if reject:
            await self._reply(reject)
            return
        if self.message is None:
            await self._reply(R.LOCAL_ERROR)
        else:
            self.out.append(self.machine.reply(R.START_DATA))
        self.message_size = 0
        await self._flush()

    async def _bdat_start(self, event: E.BdatStart) -> None:
        if event.first:
            self.message_size = 0
            self.content_error = (await self._check("data", **self._last_recipient())
                                  or (R.LOCAL_ERROR if self.message is None else None))

    async def _open_message(self, recipients: list) -> Reply | None:
        if self.cleanup is None:
            return R.LOCAL_ERROR
        client = _CLIENT_INFO(
            name=self.client_name, address=self.conn.peer_host, port=self.conn.peer_port,
            helo=self.machine.helo_name, protocol=self._protocol(), tls=self.tls_info,
            sasl_method=self.sasl_method, sasl_username=self.sasl_username,
            session_id=self.conn.session_id)
        envelope = self.mail_params.envelope() if self.mail_params else {}
        try:
            # on the loop: the create and buffered records never wait for the disk (the
            # fsyncs happen at the end, in the committer thread)
            message = self.cleanup.open(origin="smtpd", client=client, sender=self.sender or "",
                                        envelope=envelope)
            try:
                for address, params in recipients:
                    message.add_recipient(address, orcpt=params.orcpt, notify=params.notify)
            except BaseException:
                message.abort()
                raise
            self.message = message
        except Exception as exc:
            self.log.warning(f"cleanup open failed: {type(exc).__name__}: {exc}")
            self._abort_message()
            return R.LOCAL_ERROR
        _apply_actions(self.message, self.message_actions)
        self.log.info(logtext.queue_client(self.message.queue_id, self.who, self.sasl_method,
                                           self.sasl_username))
        return None

    def _protocol(self) -> str:
        if self.helo_protocol == "SMTP":
            return "SMTP"
        return "ESMTP" + ("S" if self.machine.tls_active else "") + ("A" if self.sasl_username else "")

    def _content(self, data: bytes, crlf_only: bool = False) -> None:
        if self.message is None or self.content_error is not None:
            return
        newline = data.rfind(b"\n")
        if newline >= 0:
            self.complete_bytes = self.message_size + newline + 1
        self.message_size += len(data)
        self.last_content_byte = data[-1:] or self.last_content_byte
        limit = self.limits.message_size_limit
        if limit and self.message_size > limit:
            self.content_error = R.SIZE_EXCEEDED  # read to the end, then refuse (RFC 1870 §6.3)
            self._abort_message()
            return
        try:
            if crlf_only:  # the decoder vouches for the line ends: cleanup may take a shortcut
                self.message.write(data, crlf_only=True, lf_after_cr=True)  # DATA content: every LF ends a CRLF
            else:
                self.message.write(data)
        except Exception as exc:
            self.log.warning(f"{self.message.queue_id}: write failed: {exc}")
            self.content_error = R.LOCAL_ERROR
            self._abort_message()

    async def _finish(self, bare_newline: bool) -> Reply:
        if bare_newline and self.machine.settings.bare_newline == "reject":
            self.log.info(f"NOQUEUE: reject: DATA from {self.who}: bare <LF> received")
            self.content_error = R.bare_newline(self.hostname, self.machine.settings.bare_newline_code)
        if self.content_error is None and self.message is not None and self._checks("end_of_data"):
            reject = await self._check("end_of_data", message_size=self.message_size,
                                       **self._last_recipient())
            if reject:
                self.content_error = reject
        if self.content_error is not None or self.message is None:
            error = self.content_error or R.LOCAL_ERROR
            self._abort_message()
            return error
        message, self.message = self.message, None
        try:
            finish_async = getattr(message, "finish_async", None)
            if finish_async is not None:  # fsyncs group-committed by one thread per process
                result = await finish_async(self.cleanup.committer)
            else:
                result = await asyncio.to_thread(message.finish)
        except Exception as exc:
            self.log.warning(f"{message.queue_id}: queue file write error: {exc}")
            message.abort()
            return R.LOCAL_ERROR
        return result.reply

    async def _on_dataend(self, event: E.DataEnd) -> None:
        reply = await self._finish(event.bare_newline)
        self._reset_message()
        await self._reply(reply)

    async def _on_bdatend(self, event: E.BdatEnd) -> None:
        if not event.last:
            await self._reply(self.content_error or R.chunk_ok(event.size))
            if self.content_error is not None:
                self._abort_message()
            return
        last_byte = self.last_content_byte
        reply = await self._finish(False)
        self._reset_message()
        if reply.code == 250 and reply.text.startswith("Ok: queued as "):
            # Postfix counts the message as stored: an unterminated last line gets its CRLF
            size = event.total + (2 if last_byte not in (b"\n", b"") else 0)
            reply = R.chunk_queued(size, reply.text[len("Ok: queued as "):])
        await self._reply(reply)

    async def _on_rset(self, event) -> None:
        self._reset_message()
        await self._reply(R.OK)

    async def _on_noop(self, event) -> None:
        await self._reply(R.OK)

    async def _on_quit(self, event) -> None:
        self.out.append(self.machine.reply(R.BYE))
        await self._flush()

    async def _on_vrfy(self, event: E.Vrfy) -> None:
        reject = await self._check("rcpt", recipient=event.address)
        await self._reply(reject or Reply(252, "2.0.0", f"<{event.address}>"))

    async def _on_etrn(self, event: E.Etrn) -> None:
        await self._reply(Reply(459, None, f"<{event.domain}>: service unavailable"))

    async def _on_starttls(self, event) -> None:
        hold_plaintext(self.conn)  # RFC 3207 §4.2: plaintext that came with STARTTLS is never executed
        await self._reply(R.READY_TLS)
        await self._flush()
        try:
            await asyncio.wait_for(self.conn.writer.start_tls(self.conn.ssl_context),
                                   self.limits.starttls_timeout)
        except (ssl.SSLError, OSError, asyncio.TimeoutError) as exc:
            self.log.warning(f"TLS library problem: {exc}")
            self.log.info(f"SSL_accept error from {self.who}: {exc}")
            self.machine.close()
            return
        self.conn.tls = True
        self.tls_info = self._tls_text()
        self._reset_message()

    def _tls_text(self) -> str | None:
        return received_tls_text(self.conn.writer.get_extra_info("ssl_object"))

    # --- AUTH -----------------------------------------------------------------------------
    async def _prepare_auth(self) -> bool:
        """Connect to the auth server and filter its mechanisms; False when Postfix's smtpd
        would die here (`fatal: no SASL authentication mechanisms`, observed with 3.7 when
        smtpd_sasl_security_options leaves nothing of the server's list)."""
        self.auth_ready = True
        sasl_type = self._get("smtpd_sasl_type", "cyrus")
        if sasl_type != "dovecot":
            self.log.warning(f"unsupported SASL server implementation: {sasl_type}")
            return True
        path = self._get("smtpd_sasl_path", "smtpd")
        try:  # a connection an earlier session of this worker left open, as Postfix's smtpd keeps one
            client = await self.service.auth_pool.acquire(path, self._get("queue_directory", ""),
                                                          self._get("smtpd_sasl_service", "smtp"))
        except Exception as exc:
            self.log.warning(f"SASL: Connect to {path} failed: {exc}")
            return True
        self.auth_client = client
        plain = filter_mechanisms(client.mechanisms, self._list("smtpd_sasl_security_options") or ("noanonymous",))
        tls = filter_mechanisms(client.mechanisms, self._list("smtpd_sasl_tls_security_options")
                                or self._list("smtpd_sasl_security_options") or ("noanonymous",))
        self.machine.settings = with_mechanisms(self.machine.settings, plain, tls)
        now = tls if self.conn.tls else plain
        if not now and (self.conn.tls or not self.machine.settings.tls_auth_only):
            getattr(self.log, "fatal", self.log.warning)("no SASL authentication mechanisms")
            return False
        return True

    async def _on_auth(self, event: E.Auth) -> None:
        if self.auth_client is None:
            await self._reply(R.AUTH_TEMPFAIL)
            return
        self.auth_mechanism = event.mechanism
        outcome = await self.auth_client.start(
            event.mechanism, event.initial_response, local_ip=self.conn.local_host,
            remote_ip=self.conn.peer_host, secured=self.machine.tls_active,
            local_port=self.conn.local_port, remote_port=self.conn.peer_port)
        await self._auth_outcome(outcome)

    async def _on_authresponse(self, event: E.AuthResponse) -> None:
        if event.text.strip() == "*":  # RFC 4954 §4: the client cancels
            self.log.warning(f"{self.who}: SASL {self.auth_mechanism} authentication aborted")
            await self._reply(R.AUTH_ABORTED)
            return
        outcome = await self.auth_client.respond(event.text.strip())
        await self._auth_outcome(outcome)

    async def _auth_outcome(self, outcome) -> None:
        if outcome.status == "continue":
            await self._reply(Reply(334, None, outcome.challenge or ""))
            await self._flush()
        elif outcome.status == "ok":
            self.sasl_method = self.auth_mechanism
            self.sasl_username = outcome.user
            await self._reply(R.AUTH_OK)
        elif outcome.status == "tempfail":
            await self._reply(R.AUTH_TEMPFAIL)
        else:
            reason = outcome.reason or "(reason unavailable)"
            self.log.warning(logtext.sasl_failed(self.who, self.auth_mechanism or "?", reason, outcome.user))
            await self._reply(R.auth_failed(reason))


_MISSING = object()
_HANDLER_NAMES: dict = {}  # event class -> name of the SmtpSession method that answers it
# the events _serve hands straight to their method when nothing else applies: not pipelined
# early, no CONNECT-time rejection (_handle does the rest: ProtocolError, pipelining checks)
_PLAIN_EVENTS = frozenset({E.Helo, E.Mail, E.Rcpt, E.Data, E.DataEnd, E.Quit, E.Rset, E.Noop})


def _handler_name(kind: type) -> str:
    name = _HANDLER_NAMES[kind] = f"_on_{kind.__name__.lower()}"
    return name


def _bytes_waiting(writer) -> int:
    """FIONREAD of the client's socket, as Postfix's smtpd peeks before its greeting: the
    bytes the kernel holds for the server; -1 when that cannot be asked (no socket)."""
    try:
        answer = fcntl.ioctl(writer.get_extra_info("socket").fileno(), termios.FIONREAD, bytes(4))
    except (OSError, AttributeError, TypeError, ValueError):
        return -1
    return int.from_bytes(answer, sys.byteorder)


def _apply_actions(message, actions) -> None:
    """Access-table message actions (PolicyResult.actions) onto the open cleanup message, as
    Postfix's smtpd hands them to cleanup: HOLD, DISCARD, FILTER, REDIRECT, BCC."""
    for kind, *rest in actions:
        argument = rest[0] if rest else ""
        if kind == "DISCARD":
            message.status = "discarded"
        elif kind == "HOLD" and message.status == "queued":
            message.status = "held"
        elif kind == "FILTER":
            message._filter = argument
        elif kind == "REDIRECT":
            message._redirect = message.service.rewriter.qualify(argument)
        elif kind == "BCC":
            message._bcc.append(message.service.rewriter.qualify(argument))


_HOSTS: dict = {}


def _hosts_table(path: str = "/etc/hosts") -> HostsTable:
    """The parsed hosts file, re-read when its modification time changes."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = None
    if _HOSTS.get("stamp", -1) != stamp:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            text = ""
        _HOSTS.update(stamp=stamp, table=HostsTable.parse(text))
    return _HOSTS["table"]


async def _verified_name(resolver, address: str) -> tuple[str, str]:
    """(reverse name, verified name): PTR, then forward A/AAAA must list the address."""
    ip = ipaddress.ip_address(address)
    answer = await resolver.lookup(ip.reverse_pointer, "PTR")
    if getattr(answer, "status", "") != "ok" or not answer.records:
        return "unknown", "unknown"
    name = str(answer.records[0]).rstrip(".")
    forward = await resolver.lookup(name, "AAAA" if ip.version == 6 else "A")
    if getattr(forward, "status", "") == "ok" and any(str(r) == address for r in forward.records):
        return name, name
    return name, "unknown"
