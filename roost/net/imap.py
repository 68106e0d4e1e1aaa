"""The IMAP server on Dovecot's `service imap-login { inet_listener imap / imaps }` listeners.

A thin asyncio loop around roost.proto.imap.connection.ImapConnection (RFC 3501/9051 framing,
literals, limits): greeting with the pre-login CAPABILITY, then the NOT AUTHENTICATED state
here (CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE with SASL-IR through
roost.net.login, which applies disable_plaintext_auth, auth_failure_delay and the per-IP
penalty), then roost.imap.session.Session runs every command against the mail store in a
thread; IDLE (RFC 2177) waits on the store's change feed and sends updates as they happen;
COMPRESS=DEFLATE (RFC 4978) switches both directions to raw deflate (zlib, wbits -15) right
after its tagged OK, with a sync flush at the end of each batch of responses. A command's
responses go out as one buffer. Dovecot's 20-BADs-in-a-row rule counts the session's BADs
too (ImapConnection.command_finished).

Dovecot's texts and log lines (observed with 2.3.19): `* OK [CAPABILITY ...] Dovecot ready.`,
`NO [AUTHENTICATIONFAILED] Authentication failed.`, `NO [PRIVACYREQUIRED] Plaintext
authentication disallowed on non-secure (SSL/TLS) connections.`, `imap-login: Login:
user=<...>, method=PLAIN, rip=..., lip=..., mpid=..., session=<...>` and the Disconnected
lines fail2ban's dovecot filter reads; `imap(alice)<pid><session>: Disconnected: Logged out
in=N out=M` at the end.
Invariants: anything pipelined after STARTTLS is discarded (RFC 3501 §6.2.1, the STARTTLS
injection defence); one command runs at a time, in order (§5.5); a session error closes only
its connection.
Security: no store access before login; the 3-minute pre-login and 30-minute idle timeouts
(Dovecot's) bound how long a silent client holds a connection.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
import zlib
from typing import Any

from roost.login import logline
from roost.net.login import ExchangeAborted, LoginService
from roost.net.server import Connection, ServiceContext
from roost.proto import sasl
from roost.proto.imap import response
from roost.proto.imap.connection import (NEED_DATA, PAUSED, CommandReceived,
                                         ContinuationRequest, ImapConnection, Limits,
                                         LineReceived, ProtocolError)
from roost.proto.imap.states import State

READ_SIZE = 65536
LOGIN_TIMEOUT = 180.0  # Dovecot: pre-login processes disconnect after 3 minutes
AUTOLOGOUT = 1800.0  # RFC 3501 §5.4: at least 30 minutes
IDLE_NOTIFY = 120.0  # Dovecot imap_idle_notify_interval
SASL_LINE_MAX = 65536
PRELOGIN_CAPABILITIES = ("IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE",
                         "LITERAL+")


class Closed(Exception):
    pass


class ImapService:
    def __init__(self, config: Any, log: Any, log_setup: Any = None, *,
                 login: LoginService | None = None, open_store=None):
        from roost.store import MailSettings, open_user_store

        self.config = config
        self.log = log
        self.log_setup = log_setup
        self.login = login or LoginService.from_config(config.dovecot, log, protocol="imap")
        view = self.login.settings(None, None)
        self.mail_settings = MailSettings.from_dovecot(view)
        self.open_store = open_store or open_user_store
        line_max = view.int("imap_max_line_length") or 65536
        # Dovecot's imap_literal_minus: LITERAL- (RFC 7888 §5) instead of LITERAL+
        self.limits = Limits(max_line_length=line_max, max_literal=line_max,
                             literal_minus=view.bool("imap_literal_minus"))
        self.logout_format = view.str("imap_logout_format")

    def session_logger(self, prefix: str):
        if self.log_setup is not None:
            return self.log_setup.dovecot(prefix)
        return _PrefixedLog(self.log, prefix)

    async def serve(self, conn: Connection) -> None:
        await _Client(self, conn).run()


class _PrefixedLog:
    def __init__(self, log: Any, prefix: str):
        self.log, self.prefix = log, prefix

    def __getattr__(self, level: str):
        return lambda text: getattr(self.log, level)(f"{self.prefix}: {text}")


class _Client:
    def __init__(self, service: ImapService, conn: Connection):
        self.service = service
        self.conn = conn
        self.machine = ImapConnection(service.limits)
        self.policy = service.login.policy(conn.local_host, conn.peer_host, conn.tls)
        self.state = logline.LoginLogState(conn.peer_host, conn.local_host,
                                           logline.new_session_id(), time.monotonic(),
                                           tls=conn.tls, secured=self.policy.secured)
        self.session = None
        self.bytes_in = self.bytes_out = 0
        self.deflate = self.inflate = None  # COMPRESS=DEFLATE (RFC 4978) once active
        self.deflate_pending = False  # compressed output not yet flushed

    # ---- I/O -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.bytes_out += len(data)
        if self.deflate is not None:
            self.deflate_pending = True
            data = self.deflate.compress(data)
            if not data:
                return
        self.conn.writer.write(data)

    async def flush(self) -> None:
        if self.deflate_pending:
            # RFC 4978 §4: flush at the end of each response batch so the client can decode;
            # never an empty flush block (mbsync takes one as an empty response)
            self.deflate_pending = False
            self.conn.writer.write(self.deflate.flush(zlib.Z_SYNC_FLUSH))
        await self.conn.writer.drain()

    async def read_more(self, timeout: float) -> None:
        await self.flush()
        try:
            # asyncio.timeout, not wait_for: no task per pending read (memory per idle client)
            async with asyncio.timeout(timeout):
                data = await self.conn.reader.read(READ_SIZE)
        except TimeoutError:
            raise Closed("inactivity") from None
        if not data:
            raise Closed("Connection closed")
        self.bytes_in += len(data)
        if self.inflate is not None:
            try:
                data = self.inflate.decompress(data)
            except zlib.error:
                raise Closed("Connection closed") from None
            if self.inflate.eof:
                raise Closed("Connection closed")
        self.machine.receive_data(data)

    async def next_event(self, timeout: float):
        while True:
            event = self.machine.next_event()
            if event is NEED_DATA:
                await self.read_more(timeout)
                continue
            if isinstance(event, ContinuationRequest):
                self.send(event.data)
                continue
            return event

    # ---- the connection ------------------------------------------------------------------

    def capabilities(self) -> list[str]:
        caps = list(PRELOGIN_CAPABILITIES)
        if self.service.limits.literal_minus:
            caps[caps.index("LITERAL+")] = "LITERAL-"
        if self.conn.ssl_context is not None and not self.conn.tls:
            caps.append("STARTTLS")
        mechanisms = self.policy.mechanisms_for(self.state.secured)
        if not mechanisms or "PLAIN" not in mechanisms and "LOGIN" not in mechanisms:
            caps.append("LOGINDISABLED")
        caps += [f"AUTH={m}" for m in mechanisms]
        return caps

    async def run(self) -> None:
        greeting = self.policy.greeting or "Dovecot ready."
        self.send(response.ok(None, greeting, response.code("CAPABILITY", *self.capabilities())))
        try:
            record = await self.prelogin()
        except Closed as why:
            reason = "Disconnected for inactivity" if str(why) == "inactivity" else str(why)
            self.service.log.info(logline.disconnect_line(self.state, reason, time.monotonic()))
            return
        except (ConnectionError, TimeoutError):
            self.service.log.info(logline.disconnect_line(self.state, "Connection closed",
                                                          time.monotonic()))
            return
        if record is not None:
            await self.mail_session(record)

    async def prelogin(self):
        while True:
            event = await self.next_event(LOGIN_TIMEOUT)
            if isinstance(event, ProtocolError):
                self.send(event.reply)
                if event.fatal:
                    raise Closed("Connection closed")
                continue
            if isinstance(event, LineReceived) or event is PAUSED:
                continue
            command = event.command
            name = command.name
            if name == "CAPABILITY":
                self.send(response.capability(self.capabilities()))
                self.send(response.ok(command.tag, "Pre-login capabilities listed, post-login "
                                                   "capabilities have more."))
            elif name == "NOOP":
                self.send(response.ok(command.tag, "NOOP completed."))
            elif name == "ID":
                self.send(response.id_data([("name", "Dovecot")]))
                self.send(response.ok(command.tag, "ID completed."))
            elif name == "LOGOUT":
                self.send(response.bye("Logging out"))
                self.send(response.ok(command.tag, "Logout completed."))
                await self.flush()
                raise Closed("Aborted login by logging out")
            elif name == "STARTTLS":
                await self.start_tls(command.tag)
            elif name in ("LOGIN", "AUTHENTICATE"):
                record = await self.authenticate(command)
                if record is not None:
                    return record
            else:
                self.send(response.bad(command.tag, "Unknown command."))

    async def start_tls(self, tag: str) -> None:
        if self.conn.tls or self.conn.ssl_context is None:
            self.send(response.bad(tag, "TLS is already active." if self.conn.tls
                                   else "TLS support isn't enabled."))
            self.machine.resume()
            return
        self.send(response.ok(tag, "Begin TLS negotiation now."))
        await self.flush()
        self.machine.resume(discard=True)  # RFC 3501 §6.2.1: nothing pipelined survives
        buffered = getattr(self.conn.reader, "_buffer", None)
        if buffered:
            buffered.clear()
        await self.conn.writer.start_tls(self.conn.ssl_context)
        self.conn.tls = True
        self.state.tls = self.state.secured = True

    async def authenticate(self, command):
        where = dict(service="imap", remote_ip=self.conn.peer_host,
                     local_ip=self.conn.local_host, secured=self.state.secured)
        mechanisms = self.policy.mechanisms_for(self.state.secured)
        self.state.auth_attempts += 1
        if command.name == "LOGIN":
            if "PLAIN" not in mechanisms and "LOGIN" not in mechanisms:
                self.state.tried_disabled_plaintext = True
                self.send(response.no(command.tag, "Plaintext authentication disallowed on "
                                                   "non-secure (SSL/TLS) connections.",
                                      response.code("PRIVACYREQUIRED")))
                return None
            user = command.user.decode("utf-8", "replace")
            self.state.user, self.state.method = user, "PLAIN"
            await self.flush()
            result = await self.service.login.password_login(
                user, command.password.decode("utf-8", "replace"), **where)
        else:
            mechanism = command.mechanism.upper()
            if mechanism not in mechanisms:
                self.state.tried_unsupported_mech = True
                self.machine.resume()
                self.send(response.no(command.tag, "Unsupported authentication mechanism."))
                return None
            initial = None
            if command.initial_response is not None:
                initial = b"" if command.initial_response == b"=" else _b64(command.initial_response)
                if initial is None:
                    self.machine.resume()
                    self.send(response.bad(command.tag, "Invalid base64 data in initial response"))
                    return None
            self.state.method = mechanism
            self.state.in_sasl = True
            try:
                result = await self.service.login.sasl_login(mechanism, initial, self.exchange,
                                                             **where)
            finally:
                self.state.in_sasl = False
                self.machine.resume()
            self.state.user = result.user or self.state.user
            if result.cancelled:
                self.send(response.bad(command.tag, "Authentication aborted by client."))
                return None
            if result.malformed:
                self.send(response.bad(command.tag, "Invalid base64 data in continued response"))
                return None
        if result.ok:
            self.state.user = result.user
            self.machine.state = State.AUTHENTICATED
            self.login_tag = command.tag
            return result.record
        if result.temporary:
            self.send(response.no(command.tag, "Temporary authentication failure.",
                                  response.code("UNAVAILABLE")))
        else:
            self.send(response.no(command.tag, "Authentication failed.",
                                  response.code("AUTHENTICATIONFAILED")))
        return None

    async def exchange(self, challenge: bytes):
        self.send(response.continuation(base64.b64encode(challenge)))
        self.machine.expect_line()
        event = await self.next_event(LOGIN_TIMEOUT)
        if not isinstance(event, LineReceived):
            raise ExchangeAborted()
        decoded = sasl.decode_client_response(event.line, SASL_LINE_MAX)
        if isinstance(decoded, sasl.Cancel):
            return decoded
        if not isinstance(decoded, bytes):
            raise ExchangeAborted()
        return decoded

    # ---- after login ---------------------------------------------------------------------

    async def mail_session(self, record) -> None:
        from roost.imap.session import Session, capabilities
        from roost.store import StoreError

        pid = os.getpid()
        self.service.log.info(logline.login_line(self.state, pid))
        log = self.service.session_logger(logline.session_prefix("imap", self.state.user, pid,
                                                                 self.state.session))
        try:
            store = await asyncio.to_thread(self.service.open_store, record,
                                            self.service.mail_settings)
        except StoreError as error:
            log.error(f"Couldn't open mailbox: {error}")
            self.send(response.no(self.login_tag, "Temporary authentication failure.",
                                  response.code("UNAVAILABLE")))
            await self.flush()
            return
        session = Session(store, self.state.user, self.machine, log)
        self.send(response.ok(self.login_tag, "Logged in",
                              response.code("CAPABILITY",
                                            *capabilities(self.service.limits.literal_minus))))
        reason = "Connection closed"
        try:
            reason = await self.commands(session)
        except Closed as why:
            reason = "Disconnected for inactivity" if str(why) == "inactivity" else str(why)
        except (ConnectionError, TimeoutError):
            reason = "Connection closed"
        finally:
            await asyncio.to_thread(session.close_view)
            log.info(logline.imap_logout_line(reason, {
                "input": self.bytes_in, "output": self.bytes_out, "session": self.state.session,
                **getattr(session, "logout_counters", {})}, self.service.logout_format))

    async def commands(self, session) -> str:
        while True:
            event = await self.next_event(AUTOLOGOUT)
            if isinstance(event, ProtocolError):
                self.send(event.reply)
                if event.fatal:
                    return "Connection closed"
                continue
            if not isinstance(event, CommandReceived):
                continue
            command = event.command
            if command.name == "IDLE":
                await self.idle(session, command.tag)
                continue
            if command.name == "COMPRESS":
                await self.compress(command)
                continue
            if command.name == "STARTTLS":
                self.machine.resume()
                self.send(response.bad(command.tag, "TLS is already active." if self.conn.tls
                                       else "Unknown command."))
                continue
            replies = await asyncio.to_thread(session.execute, command)
            self.send(b"".join(replies))  # one write: a 100k-line FETCH is one buffer, not 100k
            tagged = replies[-1] if replies else b""
            # Dovecot's rule: 20 BAD answers in a row end the connection
            limit = self.machine.command_finished(
                bad=tagged.startswith(command.tag.encode() + b" BAD "))
            if limit is not None:
                self.send(limit.reply)
                await self.flush()
                return "Too many invalid IMAP commands"
            if session.logout:
                await self.flush()
                return "Logged out"

    async def compress(self, command) -> None:
        """RFC 4978 COMPRESS DEFLATE: raw deflate (RFC 1951, no zlib header) both ways,
        starting right after the tagged OK; bytes the client pipelined after the command
        were sent compressed and go through the inflater (§3)."""
        mechanism = (getattr(command, "mechanism", "") or "").upper()
        if self.deflate is not None:
            self.machine.resume()
            # RFC 4978 §3: a second COMPRESS is refused with [COMPRESSIONACTIVE]
            self.send(response.no(command.tag, "COMPRESSION=DEFLATE already enabled.",
                                  response.code("COMPRESSIONACTIVE")))
            return
        if mechanism != "DEFLATE":
            self.machine.resume()
            self.send(response.no(command.tag, "Unknown compression mechanism."))
            return
        self.send(response.ok(command.tag, "Begin compression."))
        await self.flush()
        pending = self.machine.take_buffered()
        self.machine.resume()
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        if pending:
            self.machine.receive_data(self.inflate.decompress(pending))

    async def idle(self, session, tag: str) -> None:
        """RFC 2177: `+ idling`, updates as they happen, until the client's DONE."""
        self.send(response.continuation("idling"))
        self.machine.expect_line()
        waiting_line = asyncio.ensure_future(self.next_event(AUTOLOGOUT))
        last_notice = time.monotonic()
        try:
            while True:
                replies = await asyncio.to_thread(session.idle_updates)
                for reply in replies:
                    self.send(reply)
                await self.flush()
                view = session.view
                if view is not None:
                    watcher = asyncio.ensure_future(view.mailbox.wait_changed(IDLE_NOTIFY))
                else:
                    watcher = asyncio.ensure_future(asyncio.sleep(IDLE_NOTIFY))
                done, _ = await asyncio.wait({waiting_line, watcher},
                                             return_when=asyncio.FIRST_COMPLETED)
                if waiting_line in done:
                    watcher.cancel()
                    break
                if time.monotonic() - last_notice >= IDLE_NOTIFY:
                    self.send(response.ok(None, "Still here"))
                    last_notice = time.monotonic()
            event = waiting_line.result()
        finally:
            if not waiting_line.done():
                waiting_line.cancel()
        self.machine.resume()
        if isinstance(event, LineReceived) and event.line.strip().upper() == b"DONE":
            for reply in await asyncio.to_thread(session.idle_updates):
                self.send(reply)
            self.send(response.ok(tag, "Idle completed."))
        else:
            self.send(response.bad(tag, "Expected DONE."))


def _b64(data: bytes) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except ValueError:
        return None


def make_service(context: ServiceContext):
    """Registry entry point (roost.master.services): the handler for imap listeners."""
    if context.config.dovecot is None:
        async def no_config(conn: Connection) -> None:
            conn.log.error("imap without a dovecot.conf: closing")
        return no_config
    service = ImapService(context.config, context.log, context.log_setup)
    return service.serve
