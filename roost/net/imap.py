"""The IMAP server on Dovecot's `service imap-login { inet_listener imap / imaps }` listeners.

A thin asyncio loop around roost.proto.imap.connection.ImapConnection (RFC 3501/9051 framing,
literals, limits): greeting with the pre-login CAPABILITY, then the NOT AUTHENTICATED state
here (CAPABILITY, NOOP, ID, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE with SASL-IR through
roost.net.login, which applies disable_plaintext_auth, auth_failure_delay and the per-IP
penalty), then roost.imap.session.Session runs every command against the mail store, in a
thread when it may wait on the disk or a lock and on the loop otherwise (INLINE_COMMANDS),
with the store's header-cache appends batched per command; IDLE (RFC 2177) waits in the
connection's own read, which the store's change feed interrupts (no task or timer per
idling client), and sends updates as they happen; every read's deadline (pre-login,
autologout, IDLE's "Still here") is kept by one timer per worker (_Deadlines);
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
import functools
import os
import time
import zlib
from typing import Any

from roost.login import logline, userip
from roost.message.fetch import sets_seen
from roost.net.login import ExchangeAborted, LoginService
from roost.net.server import Connection, ServiceContext, hold_plaintext
from roost.proto import sasl
from roost.proto.imap import response
from roost.proto.imap.connection import (NEED_DATA, PAUSED, CommandReceived,
                                         ContinuationRequest, ImapConnection, Limits,
                                         LineReceived, ProtocolError)
from roost.proto.imap.states import State

READ_SIZE = 65536
LOGIN_TIMEOUT = 180.0  # Dovecot: pre-login processes disconnect after 3 minutes
AUTOLOGOUT = 1800.0  # RFC 3501 §5.4: at least 30 minutes
SASL_LINE_MAX = 65536
# Commands run on the event loop instead of in a thread, when a mailbox of at most
# INLINE_MAX_MESSAGES messages is selected (or none is needed): CPU work plus a few stat
# calls, no fsync and (but for a rare resync) no mailbox lock, so a trip to a thread and back
# (~50 us of CPU and 5 context switches, measured) costs more than the command. Everything
# else may wait on the disk or on another process's dotlock (APPEND, EXPUNGE, STORE, COPY,
# a FETCH that sets \Seen, SELECT of a mailbox of unknown size...): in a thread, so only
# its own session waits.
INLINE_COMMANDS = frozenset({"CAPABILITY", "NOOP", "CHECK", "ID", "ENABLE", "NAMESPACE",
                             "LIST", "LSUB", "FETCH", "UNSELECT", "LOGOUT", "GETQUOTA",
                             "GETQUOTAROOT"})
INLINE_MAX_MESSAGES = 1000
PRELOGIN_CAPABILITIES = ("IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE",
                         "LITERAL+")


class Closed(Exception):
    pass


class Refused(Exception):
    """Authenticated, then refused (mail_max_userip_connections): the reason for the log."""


class _Deadlines:
    """Read deadlines of every waiting client of one event loop, checked by one timer every
    TICK seconds, instead of an asyncio.timeout (a Timeout and a TimerHandle) per waiting
    connection: with 10,000 idle clients that was 10,000 of each. A client past its
    deadline gets `interrupt("deadline")`; the deadlines are Dovecot's (minutes), so a
    second's lateness does not matter."""

    TICK = 1.0

    def __init__(self, loop):
        self.loop = loop
        self.waiting: dict = {}  # client -> deadline (loop time)
        self.handle = None

    def add(self, client, deadline: float) -> None:
        self.waiting[client] = deadline
        if self.handle is None:
            self.handle = self.loop.call_later(self.TICK, self.tick)

    def remove(self, client) -> None:
        self.waiting.pop(client, None)

    def tick(self) -> None:
        self.handle = None
        now = self.loop.time()
        due = [client for client, deadline in self.waiting.items() if deadline <= now]
        for client in due:
            del self.waiting[client]
            client.interrupt("deadline")
        if self.waiting:
            self.handle = self.loop.call_later(self.TICK, self.tick)


_deadlines: dict = {}  # event loop -> its _Deadlines


def _deadlines_of(loop) -> _Deadlines:
    found = _deadlines.get(loop)
    if found is None:
        for old in [other for other in _deadlines if other.is_closed()]:
            del _deadlines[old]
        found = _deadlines[loop] = _Deadlines(loop)
    return found


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
        # Dovecot's imap_idle_notify_interval: `* OK Still here` while IDLE (0: never)
        self.idle_notify = float(view.time("imap_idle_notify_interval")) or AUTOLOGOUT

    def session_logger(self, prefix: str):
        if self.log_setup is not None:
            return self.log_setup.dovecot(prefix)
        return _PrefixedLog(self.log, prefix)

    def serve(self, conn: Connection):
        """The connection handler: the client's coroutine itself (no wrapping frame kept
        per connection)."""
        return _Client(self, conn).run()


class _PrefixedLog:
    def __init__(self, log: Any, prefix: str):
        self.log, self.prefix = log, prefix

    def __getattr__(self, level: str):
        return lambda text: getattr(self.log, level)(f"{self.prefix}: {text}")


class _Client:
    __slots__ = ("service", "conn", "machine", "policy", "state", "session", "bytes_in",
                 "bytes_out", "deflate", "inflate", "deflate_pending", "login_tag",
                 "task", "interrupted", "userip_slot")

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
        self.login_tag = ""
        self.task = None  # the connection's task, while it waits in read() (interrupt())
        self.interrupted = None  # why read() was interrupted: "deadline" or "changed"
        self.userip_slot = userip.UNLIMITED

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
        data = await self.read(asyncio.get_running_loop().time() + timeout)
        if data is None:
            raise Closed("inactivity")
        self.received(data)

    async def read(self, deadline: float, subscribe=None) -> bytes | None:
        """The client's next bytes, or None when `deadline` (loop time) passed first or,
        with `subscribe(callback)` (a change feed: returns something to .cancel()), when it
        called back first. The wait holds no timer or task of its own (_Deadlines)."""
        loop = asyncio.get_running_loop()
        deadlines = _deadlines_of(loop)
        self.task = asyncio.current_task()
        self.interrupted = None
        subscription = None
        deadlines.add(self, deadline)
        try:
            if subscribe is not None:
                subscription = subscribe(self.wake)
            return await self.conn.reader.read(READ_SIZE)
        except asyncio.CancelledError:
            # ours (interrupt), unless someone else cancelled the task too (shutdown)
            if self.interrupted is None or self.task.uncancel() > 0:
                raise
            return None
        finally:
            self.task = None
            deadlines.remove(self)
            if subscription is not None:
                subscription.cancel()

    def interrupt(self, reason: str) -> None:
        """End a read() in progress (a deadline passed, the mailbox changed)."""
        if self.task is not None and self.interrupted is None:
            self.interrupted = reason
            self.task.cancel()

    def wake(self) -> None:
        """The change feed's callback during an IDLE read."""
        self.interrupt("changed")

    def received(self, data: bytes) -> None:
        """Bytes from the client, into the protocol machine (through the inflater)."""
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

    def capabilities(self) -> tuple[str, ...]:
        return _prelogin_capabilities(self.service.limits.literal_minus,
                                      self.conn.ssl_context is not None and not self.conn.tls,
                                      self.policy.mechanisms_for(self.state.secured))

    async def run(self) -> None:
        greeting = self.policy.greeting or "Dovecot ready."
        self.send(response.ok(None, greeting, _capability_code(self.capabilities())))
        try:
            record = await self.prelogin()
        except Refused as why:
            self.service.log.info(logline.refused_line(self.state, str(why)))
            return
        except Closed as why:
            reason = "Disconnected for inactivity" if str(why) == "inactivity" else str(why)
            self.service.log.info(logline.disconnect_line(self.state, reason, time.monotonic()))
            return
        except (ConnectionError, TimeoutError):
            self.service.log.info(logline.disconnect_line(self.state, "Connection closed",
                                                          time.monotonic()))
            return
        if record is not None:
            # the session coroutine drops the record once the store is open; this frame
            # must not keep it for the whole session
            session = self.mail_session(record)
            record = None
            try:
                await session
            finally:
                self.userip_slot.release()

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
        hold_plaintext(self.conn)
        self.machine.resume(discard=True)  # RFC 3501 §6.2.1: nothing pipelined survives
        self.send(response.ok(tag, "Begin TLS negotiation now."))
        await self.flush()
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
            self.userip_slot = self._userip_slot(command.tag, result.user)
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

    def _userip_slot(self, tag: str, user: str) -> userip.Slot:
        """Dovecot's mail_max_userip_connections: over the limit, `NO [LIMIT]` and the end."""
        slot = userip.session_slot(self.service.login.settings(self.conn.local_host,
                                                               self.conn.peer_host),
                                   "imap", user, self.conn.peer_host, self.service.log)
        if isinstance(slot, str):
            self.send(response.no(tag, slot, response.code("LIMIT")))
            raise Refused(slot)
        return slot

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
        record = None  # the store has what it needs from the userdb record
        session = Session(store, self.state.user, self.machine, log)
        self.send(response.ok(self.login_tag, "Logged in", _capability_code(
            tuple(capabilities(self.service.limits.literal_minus)))))
        reason = "Connection closed"
        try:
            reason = await self.commands(session)
        except Closed as why:
            reason = "Disconnected for inactivity" if str(why) == "inactivity" else str(why)
        except (ConnectionError, TimeoutError):
            reason = "Connection closed"
        finally:
            if session.view is not None:  # (LOGOUT closed it already)
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
                tag, event, command = command.tag, None, None  # not kept while idling
                await self.idle(session, tag)
                continue
            if command.name == "COMPRESS":
                await self.compress(command)
                continue
            if command.name == "STARTTLS":
                self.machine.resume()
                self.send(response.bad(command.tag, "TLS is already active." if self.conn.tls
                                       else "Unknown command."))
                continue
            bad = await self.execute(session, command)
            # Dovecot's rule: 20 BAD answers in a row end the connection
            limit = self.machine.command_finished(bad=bad)
            if limit is not None:
                self.send(limit.reply)
                await self.flush()
                return "Too many invalid IMAP commands"
            if session.logout:
                await self.flush()
                return "Logged out"

    async def execute(self, session, command) -> bool:
        """Run one command against the store (in a thread when it may wait on the disk:
        INLINE_COMMANDS) and send its responses as one write (a 100k-line FETCH is one
        buffer, not 100k); True when it was answered BAD. The responses are not kept: an
        IDLE that follows holds nothing of them."""
        if _inline(session, command):
            replies = _execute(session, command)
        else:
            replies = await asyncio.to_thread(_execute, session, command)
        self.send(b"".join(replies))
        return bool(replies) and replies[-1].startswith(command.tag.encode() + b" BAD ")

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
        """RFC 2177: `+ idling`, updates as they happen, until the client's DONE. The wait
        is this connection's own read(), which the mailbox's change feed (Mailbox.watch, a
        callback) interrupts: no task, future or timer of its own per idling client, which
        is what 10,000 of them cost in memory."""
        self.send(response.continuation("idling"))
        self.machine.expect_line()
        loop = asyncio.get_running_loop()
        last_notice = last_data = loop.time()
        try:
            while True:
                for reply in await _store_call(session, session.idle_updates):
                    self.send(reply)
                event = self.machine.next_event()
                while event is NEED_DATA:
                    await self.flush()
                    now = loop.time()
                    if now - last_data >= AUTOLOGOUT:
                        raise Closed("inactivity")
                    if now - last_notice >= self.service.idle_notify:
                        self.send(response.ok(None, "Still here"))
                        last_notice = now
                        continue
                    deadline = min(last_notice + self.service.idle_notify, last_data + AUTOLOGOUT)
                    mailbox = session.view.mailbox if session.view is not None else None
                    subscribe = None
                    if mailbox is not None:
                        subscribe = getattr(mailbox, "watch", None) \
                            or functools.partial(_WaitChangedWatch, mailbox)
                    mailbox = None
                    data = await self.read(deadline, subscribe)
                    subscribe = None
                    if data is None:
                        break  # the mailbox changed (send the updates) or a deadline passed
                    last_data = loop.time()
                    self.received(data)
                    event = self.machine.next_event()
                if event is NEED_DATA:
                    continue
                if isinstance(event, ContinuationRequest):
                    self.send(event.data)
                    continue
                break
        finally:
            self.task = None
        self.machine.resume()
        if isinstance(event, LineReceived) and event.line.strip().upper() == b"DONE":
            for reply in await _store_call(session, session.idle_updates):
                self.send(reply)
            self.send(response.ok(tag, "Idle completed."))
        else:
            self.send(response.bad(tag, "Expected DONE."))


class _WaitChangedWatch:
    """For a mailbox without watch() (roost.store.api offers wait_changed): one task."""

    __slots__ = ("task",)

    def __init__(self, mailbox, callback):
        self.task = asyncio.ensure_future(mailbox.wait_changed(AUTOLOGOUT))
        self.task.add_done_callback(
            lambda task: None if task.cancelled() or task.exception() is not None
            or not task.result() else callback())

    def cancel(self) -> None:
        self.task.cancel()


@functools.lru_cache(maxsize=64)
def _prelogin_capabilities(literal_minus: bool, starttls: bool,
                           mechanisms: tuple[str, ...]) -> tuple[str, ...]:
    """The pre-login CAPABILITY list (a few combinations per worker: remembered)."""
    caps = list(PRELOGIN_CAPABILITIES)
    if literal_minus:
        caps[caps.index("LITERAL+")] = "LITERAL-"
    if starttls:
        caps.append("STARTTLS")
    if not mechanisms or "PLAIN" not in mechanisms and "LOGIN" not in mechanisms:
        caps.append("LOGINDISABLED")
    caps += [f"AUTH={m}" for m in mechanisms]
    return tuple(caps)


@functools.lru_cache(maxsize=64)
def _capability_code(caps: tuple[str, ...]) -> bytes:
    """`[CAPABILITY ...]` of the greeting and of LOGIN's OK, built once per list."""
    return response.code("CAPABILITY", *caps)


def _inline(session, command) -> bool:
    """Whether `command` runs on the loop (INLINE_COMMANDS)."""
    if command.name not in INLINE_COMMANDS:
        return False
    view = session.view
    if view is None:
        return True
    if view.count > INLINE_MAX_MESSAGES:
        return False
    # a FETCH of a body without PEEK sets \Seen: a flag change, under the mailbox lock
    return command.name != "FETCH" or view.readonly or not sets_seen(command.items)


async def _store_call(session, function):
    """`function()` (a refresh of the selected mailbox) on the loop for a small mailbox,
    else in a thread (see INLINE_COMMANDS)."""
    view = session.view
    if view is None or view.count <= INLINE_MAX_MESSAGES:
        return function()
    return await asyncio.to_thread(function)


# the commands that read many messages' headers (and so may add many header-cache records)
_BATCHED = frozenset({"FETCH", "SEARCH", "SORT", "THREAD"})


def _execute(session, command) -> list[bytes]:
    """Session.execute with the store's cache writes batched over the command."""
    batch = getattr(session.store, "deferred_cache_writes", None) \
        if command.name in _BATCHED else None
    if batch is None:
        return session.execute(command)
    with batch():
        return session.execute(command)


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
