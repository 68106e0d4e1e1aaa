"""The POP3 server: Dovecot's `service pop3-login` listeners (pop3, pop3s) served by roost.

A thin asyncio loop around the sans-IO machines of roost.proto.pop3: greeting
(`+OK <login_greeting>`), the AUTHORIZATION state (roost.proto.pop3.authorization, with the
shared roost.net.login service for USER/PASS and AUTH), STLS (RFC 2595 §4: buffered clear
text is dropped before the handshake), then the TRANSACTION state (roost.proto.pop3.
transaction) over the user's INBOX from roost.store, and the UPDATE state on QUIT only
(RFC 1939 §6: deletions happen there and nowhere else). RETR and TOP stream the message from
the store in chunks through roost.proto.pop3.fetch (never the whole message in memory).
The TRANSACTION state runs as the transport's asyncio.Protocol (_CommandPump): a command is
answered in data_received, without a task switch, timer or thread when it can (a RETR of a
message up to 64 KB: one file read, one write), as a task with reading paused otherwise
(bench/pop3_bench.py: 1,000 x 10 KB RETRs as fast as Dovecot's pop3).
pop3s (implicit TLS, RFC 8314) is done by roost.net.server before this handler runs.

Dovecot behaviours kept (settings by their Dovecot names): `login_greeting`,
`pop3_uidl_format`, `pop3_lock_session` (`-ERR [IN-USE]` for a second session), messages
RETR'd get `\\Seen` when the session ends, the login timeout (180 s, "Disconnected for
inactivity."), the autologout (10 min), log lines of pop3-login (roost.login.logline) and
`pop3(user)<pid><session>: Disconnected: Logged out top=.../...` (`pop3_logout_format`).

Invariants: a dropped connection (even in the middle of a RETR) deletes nothing; store calls
run in threads, except the first block of a RETR/TOP (a local read cheaper than a thread hop;
longer messages continue in threads); commands are answered in order, one at a time, and
none while the client does not read (the transport's high-water mark pauses the pump); an
unexpected error ends only its session, answered like Dovecot ("-ERR [SYS/TEMP] Internal
error occurred...") and logged with the session id.
Security: the greeting is flushed before any command is read; plaintext logins obey
disable_plaintext_auth; every line and SASL response is length-limited; login failures are
answered alike after auth_failure_delay.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

from roost.login import logline, userip
from roost.net.login import ExchangeAborted, LoginResult, LoginService
from roost.net.server import Connection, ServiceContext, hold_plaintext
from roost.proto import sasl
from roost.proto.pop3 import authorization as authz
from roost.proto.pop3 import replies, uidl
from roost.proto.pop3.fetch import TERMINATOR, DotStuffer
from roost.proto.pop3.lines import (LOGIN_ARGS_MAX, LOGIN_LINE_MAX, SASL_LINE_MAX,
                                    SESSION_LINE_MAX, LineReader, Overflow)
from roost.proto.pop3.transaction import (Close, Fetch, Listed, Quit, Send, Transaction,
                                          expand_logout_format)

LOGIN_TIMEOUT = 180.0  # Dovecot 2.3 disconnects a client not logged in after 3 minutes
IDLE_TIMEOUT = 600.0  # Dovecot's pop3 autologout (CLIENT_IDLE_TIMEOUT_MSECS)
READ_SIZE = 65536
CHUNK = 65536
SEEN = frozenset({"\\Seen"})


class _End(Exception):
    """End the session: `reason` for the log, `data` to send first."""

    def __init__(self, reason: str, data: bytes = b"", refused: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.data = data
        self.refused = refused  # authenticated, then refused: no attempts detail in the log


class Pop3Service:
    """What the connections of one worker share."""

    def __init__(self, config: Any, log: Any, log_setup: Any = None, *,
                 login: LoginService | None = None, open_store=None):
        from roost.store import MailSettings, open_user_store

        self.config = config
        self.log = log
        self.log_setup = log_setup
        self.login = login or LoginService.from_config(config.dovecot, log, protocol="pop3")
        view = self.login.settings(None, None)
        self.mail_settings = MailSettings.from_dovecot(view)
        self.open_store = open_store or open_user_store
        self.uidl_format = view.pop3_uidl_format
        problem = uidl.check_format(self.uidl_format)
        if problem:
            log.error(f"{problem}; using {uidl.DEFAULT_FORMAT}")
            self.uidl_format = uidl.DEFAULT_FORMAT
        self.lock_session = view.bool("pop3_lock_session")
        self.logout_format = view.str("pop3_logout_format")

    def session_logger(self, prefix: str):
        if self.log_setup is not None:
            return self.log_setup.dovecot(prefix)
        return _PrefixedLog(self.log, prefix)

    async def serve(self, conn: Connection) -> None:
        await _Session(self, conn).run()


class _PrefixedLog:
    """A session logger on top of the service logger (tests without a LogSetup)."""

    def __init__(self, log: Any, prefix: str):
        self.log, self.prefix = log, prefix

    def __getattr__(self, level: str):
        return lambda text: getattr(self.log, level)(f"{self.prefix}: {text}")


class _Session:
    def __init__(self, service: Pop3Service, conn: Connection):
        self.service = service
        self.conn = conn
        self.reader = conn.reader
        self.writer = conn.writer
        self.lines = LineReader(LOGIN_LINE_MAX, long_prefix=b"AUTH ",
                                long_limit=SASL_LINE_MAX + 64, args_limit=LOGIN_ARGS_MAX)
        self.clock = time.monotonic
        self.state = logline.LoginLogState(conn.peer_host, conn.local_host,
                                           logline.new_session_id(), self.clock(), tls=conn.tls)
        self.policy = service.login.policy(conn.local_host, conn.peer_host, conn.tls)
        self.state.secured = self.policy.secured
        self.machine = authz.Authorization(authz.Policy(
            self.policy.mechanisms, self.policy.secured, conn.tls,
            tls_available=conn.ssl_context is not None,
            disable_plaintext_auth=self.policy.disable_plaintext_auth,
            ssl_required=self.policy.ssl_required))
        self.waiting_input = False
        self.shutting_down = False
        self.userip_slot = userip.UNLIMITED
        self.bytes_in = 0
        self.pump: _CommandPump | None = None

    # --- input ---------------------------------------------------------------------------

    async def next_line(self, timeout: float) -> bytes | Overflow | None:
        """The next command line; None when the client closed the connection."""
        while True:
            line = self.lines.next_line()
            if line is not None:
                return line
            if self.writer.transport.get_write_buffer_size():
                await self.writer.drain()
            self.waiting_input = True
            try:
                async with asyncio.timeout(timeout):
                    data = await self.reader.read(READ_SIZE)
            finally:
                self.waiting_input = False
            if not data:
                return None
            self.bytes_in += len(data)
            self.lines.feed(data)

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    async def flush(self) -> None:
        await self.writer.drain()

    # --- the session -----------------------------------------------------------------------

    async def run(self) -> None:
        watcher = asyncio.ensure_future(self._watch_stop(asyncio.current_task()))
        try:
            self.send(replies.ok(self.policy.greeting).wire())
            await self.flush()
            result = await self._authorization()
            if result is not None:
                await self._transaction(result)
        except Exception as error:  # noqa: BLE001 - a bug ends this session only, politely
            self.service.log.error(f"session=<{self.state.session}>: unexpected "
                                   f"{type(error).__name__}: {error}")
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.send(replies.internal_error(stamp).wire())
        finally:
            watcher.cancel()
            self.userip_slot.release()

    async def _watch_stop(self, task: asyncio.Task) -> None:
        await self.conn.stopping.wait()
        self.shutting_down = True
        if self.pump is not None:
            self.pump.stop()
        elif self.waiting_input:
            task.cancel()

    def _login_log_end(self, reason: str, data: bytes = b"", refused: bool = False) -> None:
        self.state.auth_attempts = self.machine.auth_attempts
        self.state.tried_disabled_plaintext = self.machine.tried_disabled_plaintext
        self.state.tried_unsupported_mech = self.machine.tried_unsupported_mech
        self.state.sent_invalid_base64 = self.machine.sent_invalid_base64
        self.state.in_sasl = self.machine.in_sasl
        self.state.user = self.machine.log_user
        self.state.method = self.machine.log_method
        if data:
            self.send(data)
        self.service.log.info(logline.refused_line(self.state, reason) if refused
                              else logline.disconnect_line(self.state, reason, self.clock()))

    async def _authorization(self) -> LoginResult | None:
        try:
            while True:
                try:
                    line = await self.next_line(LOGIN_TIMEOUT)
                except asyncio.TimeoutError:
                    raise _End("Inactivity", replies.LOGIN_INACTIVITY.wire()) from None
                except asyncio.CancelledError:
                    if not self.shutting_down:
                        raise
                    raise _End("Shutting down", replies.SHUTTING_DOWN.wire()) from None
                if line is None:
                    raise _End("Connection closed")
                if isinstance(line, Overflow):
                    if line.limit > LOGIN_LINE_MAX:
                        raise _End("Authentication response too large")
                    raise _End("Input buffer full", replies.INPUT_BUFFER_FULL.wire())
                event = self.machine.command(line)
                if self.machine.auth_attempts and self.state.auth_started is None:
                    self.state.auth_started = self.clock()
                result = await self._login_command(event)
                if result is not None:
                    return result
        except _End as end:
            self._login_log_end(end.reason, end.data, end.refused)
            return None
        except (ConnectionError, TimeoutError):
            self._login_log_end("Connection closed")
            return None

    async def _login_command(self, event: authz.Event) -> LoginResult | None:
        if isinstance(event, authz.Send):
            self.send(event.data)
            return None
        if isinstance(event, authz.Close):
            raise _End(event.reason, event.data)
        if isinstance(event, authz.QuitLogin):
            raise _End("Aborted login by logging out", replies.LOGIN_QUIT.wire())
        if isinstance(event, authz.StartTls):
            await self._start_tls()
            return None
        where = dict(service="pop3", remote_ip=self.conn.peer_host,
                     local_ip=self.conn.local_host, secured=self.machine.policy.secured)
        if isinstance(event, authz.PasswordLogin):
            await self.flush()
            result = await self.service.login.password_login(event.user, event.password,
                                                             **where)
        else:
            await self.flush()
            result = await self.service.login.sasl_login(event.mechanism, event.initial_response,
                                                         self._exchange, **where)
            self.machine.sasl_finished(result.user, malformed=result.malformed)
        if result.ok:
            self.state.user, self.state.method = result.user, self.machine.log_method
            self.userip_slot = self._userip_slot(result.user)
            return result
        if result.cancelled:
            self.send(replies.AUTH_ABORTED.wire())
        elif result.malformed:
            self.send(replies.INVALID_BASE64.wire())
        elif result.temporary:
            self.send(replies.AUTH_TEMP_FAILED.wire())
        else:
            self.send(replies.AUTH_FAILED.wire())
        return None

    def _userip_slot(self, user: str) -> userip.Slot:
        """Dovecot's mail_max_userip_connections: over the limit, the login ends here."""
        slot = userip.session_slot(self.service.login.settings(self.conn.local_host,
                                                               self.conn.peer_host),
                                   "pop3", user, self.conn.peer_host, self.service.log)
        if isinstance(slot, str):
            raise _End(slot, replies.err(slot, "IN-USE").wire(), refused=True)
        return slot

    async def _exchange(self, challenge: bytes) -> bytes | sasl.Cancel:
        """RFC 5034 §4: `+ base64` and the client's line back."""
        self.send(b"+ " + base64.b64encode(challenge) + b"\r\n")
        saved, self.lines.limit = self.lines.limit, SASL_LINE_MAX
        try:
            line = await self.next_line(LOGIN_TIMEOUT)
        except asyncio.TimeoutError:
            raise _End("Inactivity during authentication",
                       replies.err("Disconnected for inactivity during authentication.").wire()
                       ) from None
        finally:
            self.lines.limit = saved
        if line is None:
            raise _End("Connection closed")
        if isinstance(line, Overflow):
            raise _End("Authentication response too large")
        answer = self.machine.sasl_response(line)
        if isinstance(answer, authz.SaslCancel):
            return sasl.Cancel()
        if isinstance(answer, authz.SaslMalformed):
            raise ExchangeAborted()
        return answer.data

    async def _start_tls(self) -> None:
        # RFC 2595 §4 / STARTTLS injection: nothing sent in clear after STLS is obeyed.
        hold_plaintext(self.conn)
        self.lines.take_pending()
        self.send(replies.BEGIN_TLS.wire())
        await self.flush()
        await self.writer.start_tls(self.conn.ssl_context)
        self.machine.tls_started()
        self.state.tls = self.state.secured = True
        self.conn.tls = True

    # --- after login ---------------------------------------------------------------------

    async def _transaction(self, result: LoginResult) -> None:
        pid = os.getpid()
        self.service.log.info(logline.login_line(self.state, pid))
        log = self.service.session_logger(logline.session_prefix("pop3", result.user, pid,
                                                                 self.state.session))
        self.lines.limit = SESSION_LINE_MAX
        self.lines.long_prefix = b""
        self.lines.args_limit = 0
        store = lock = mailbox = None
        tx = Transaction([])
        deleted_done = False
        reason = "Connection closed"
        try:
            try:
                store, lock, mailbox, tx = await asyncio.to_thread(self._open, result)
            except _End as end:
                reason = end.reason
                self.send(end.data)
                return
            self.send(replies.LOGGED_IN.wire())
            uids = [info.uid for info in mailbox.messages()]
            reason, deleted_done = await self._commands(tx, mailbox, uids)
        except (ConnectionError, TimeoutError):
            reason = "Connection closed"
        finally:
            if mailbox is not None and tx.seen and not deleted_done:
                await self._mark_seen(mailbox, tx, uids)  # Dovecot flags RETR'd mail anyway
            stats = {**tx.logout_stats(deleted_done=deleted_done), "session": self.state.session,
                     "input": self.bytes_in}
            log.info(f"Disconnected: {reason} "
                     f"{expand_logout_format(self.service.logout_format, stats)}")
            await asyncio.to_thread(_close_all, mailbox, lock)

    def _open(self, result: LoginResult):
        """In a thread: the store, the session lock, INBOX and its listing."""
        from roost.store import MailboxInUse, StoreError

        try:
            store = self.service.open_store(result.record, self.service.mail_settings)
        except StoreError as error:
            raise _End(f"Couldn't open INBOX: {error}",
                       replies.storage_error(str(error)).wire()) from None
        lock = None
        if self.service.lock_session:
            try:
                lock = store.lock_session("INBOX", "pop3")
            except MailboxInUse:
                raise _End("Couldn't lock POP3 session", replies.IN_USE.wire()) from None
            except StoreError:
                raise _End("Couldn't lock POP3 session", replies.LOCK_FAILED.wire()) from None
        try:
            mailbox = store.open_mailbox("INBOX")
            messages = mailbox.messages()
        except StoreError as error:
            _close_all(None, lock)
            raise _End(f"Couldn't open INBOX: {error}",
                       replies.storage_error(str(error)).wire()) from None
        listed = [Listed(info.size, uidl.expand(self.service.uidl_format, uidl.UidlValues(
            info.uid, mailbox.uidvalidity, info.guid, info.guid)), "\\Seen" in info.flags)
            for info in messages]
        return store, lock, mailbox, Transaction(listed)

    async def _commands(self, tx: Transaction, mailbox, uids: list[int]) -> tuple[str, bool]:
        """The TRANSACTION state, run by a _CommandPump on the transport until it ends."""
        await self.flush()
        pump = _CommandPump(self, tx, mailbox, uids)
        self.pump = pump
        try:
            return await pump.run()
        finally:
            self.pump = None

    def _fetch(self, tx: Transaction, mailbox, uids: list[int], event: Fetch):
        """RETR/TOP: a message of one block is sent at once (no await, no thread); a longer
        one returns the coroutine that streams the rest."""
        from roost.store import StoreError

        try:
            # The first block is read in the event loop: a local file read of at most CHUNK
            # octets costs less than a hop to a thread; longer messages continue in threads.
            handle, data, eof = _open_and_read(mailbox, uids[event.index])
        except StoreError as error:
            gone = type(error).__name__ == "MessageGone"
            self.send((replies.message_expunged(event.index + 1) if gone
                       else replies.storage_error(str(error))).wire())
            return None
        stuffer = DotStuffer(event.body_lines, crlf_input=True)  # open_message gives CRLF
        stuffed = stuffer.feed(data)
        if stuffer.done or eof or not data:
            handle.close()
            tail = stuffer.finish()
            self.send(b"".join((event.header, stuffed, tail, TERMINATOR)))
            self._count(tx, event, len(event.header) + len(stuffed) + len(tail))
            return None
        self.send(event.header + stuffed)
        return self._fetch_rest(tx, event, handle, stuffer, len(event.header) + len(stuffed))

    async def _fetch_rest(self, tx: Transaction, event: Fetch, handle, stuffer: DotStuffer,
                          sent: int) -> None:
        try:
            while True:
                await self.pump.drain()
                data, eof = await asyncio.to_thread(_read_block, handle)
                stuffed = stuffer.feed(data)
                sent += len(stuffed)
                if stuffer.done or eof or not data:
                    break
                self.send(stuffed)
        finally:
            handle.close()
        tail = stuffer.finish()
        self.send(stuffed + tail + TERMINATOR)
        self._count(tx, event, sent + len(tail))

    @staticmethod
    def _count(tx: Transaction, event: Fetch, sent: int) -> None:
        if event.body_lines is None:
            tx.retr_bytes += sent
        else:
            tx.top_bytes += sent

    async def _update(self, tx: Transaction, mailbox, uids: list[int],
                      event: Quit) -> tuple[str, bool]:
        """RFC 1939 §6: the UPDATE state, entered only by QUIT."""
        from roost.store import StoreError

        try:
            await asyncio.to_thread(_apply, mailbox, [uids[i] for i in event.seen],
                                    [uids[i] for i in event.deleted])
        except StoreError as error:
            self.send(replies.storage_error(str(error)).wire())
            return "Storage error during logout.", False
        tx.seen.clear()
        self.send(tx.quit_reply())
        return "Logged out", True

    async def _mark_seen(self, mailbox, tx: Transaction, uids: list[int]) -> None:
        try:
            await asyncio.to_thread(_apply, mailbox, [uids[i] for i in sorted(tx.seen)], [])
        except Exception as error:  # noqa: BLE001 - the session is over; report only
            self.service.log.warning(f"could not flag messages \\Seen: {error}")


class _CommandPump(asyncio.Protocol):
    """The TRANSACTION state as the transport's protocol: each command is answered from
    data_received, so a RETR of a one-block message costs no task switch, no timer and no
    thread (the stream reader's wake-up per line was half of the server's CPU per RETR).
    Commands that must wait (a long RETR, QUIT's UPDATE in a thread) run as a task while
    reading is paused; so does any command while the client does not read what we send.

    The stream protocol is put back when the state ends (with the connection's loss, if it
    was lost meanwhile), so the connection closes as every other one does. Input left
    unread when the state ends is dropped (the session is over).
    """

    def __init__(self, session: _Session, tx: Transaction, mailbox, uids: list[int]):
        self.session, self.tx, self.mailbox, self.uids = session, tx, mailbox, uids
        self.lines = session.lines
        self.transport = session.writer.transport
        self.loop = asyncio.get_running_loop()
        self.done = self.loop.create_future()
        self.busy = False  # a command task is running
        self.write_paused = False
        self.reading_paused = False
        self.lost: Exception | None | bool = False
        self.stopping = False
        self.input_ended = False  # the client half-closed: answer what it sent, then end
        self.writable: asyncio.Future | None = None
        self.last_input = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None

    async def run(self) -> tuple[str, bool]:
        reader, transport = self.session.reader, self.transport
        original = transport.get_protocol()
        pending = bytes(getattr(reader, "_buffer", b""))  # read by the stream, not yet used
        if pending:
            reader._buffer.clear()
            self.lines.feed(pending)
            self.session.bytes_in += len(pending)
        if getattr(reader, "_paused", False):
            reader._paused = False
            transport.resume_reading()
        # Already closed (the stream saw it): answer what was sent, then end.
        self.input_ended = getattr(reader, "_eof", False) or transport.is_closing()
        transport.set_protocol(self)
        self.timer = self.loop.call_later(IDLE_TIMEOUT, self._check_idle)
        try:
            self._pump()
            return await self.done
        finally:
            self.timer.cancel()
            transport.set_protocol(original)
            if self.lost is not False:
                original.connection_lost(self.lost)
            else:
                if self.reading_paused and not transport.is_closing():
                    transport.resume_reading()
                if self.input_ended:
                    reader.feed_eof()
                if self.write_paused:
                    original.pause_writing()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.session.bytes_in += len(data)
        self.last_input = self.loop.time()
        self.lines.feed(data)
        self._pump()

    def eof_received(self) -> bool:
        self.input_ended = True
        if not self.busy:
            self._pump()
        return not self.session.conn.tls  # keep the half-open socket for the answers (not TLS)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = exc
        self._wake_writer()
        if not self.busy:  # a running command finishes first (QUIT's UPDATE must complete)
            self._finish("Connection closed", False)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()
        if not self.busy:
            self._pump()

    # --- commands --------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait while the client reads too slowly (the transport's buffer is above its mark)."""
        if self.lost is not False:
            raise ConnectionResetError("Connection lost")
        if self.write_paused:
            self.writable = self.loop.create_future()
            await self.writable
            if self.lost is not False:
                raise ConnectionResetError("Connection lost")

    def _wake_writer(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def stop(self) -> None:
        self.stopping = True
        if not self.busy:
            self._shut_down()

    def _shut_down(self) -> None:
        self.session.send(replies.SHUTTING_DOWN.wire())
        self._finish("Server shutting down.", False)

    def _finish(self, reason: str, deleted_done: bool) -> None:
        if not self.done.done():
            self.done.set_result((reason, deleted_done))

    def _fail(self, error: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(error)

    def _pause_reading(self) -> None:
        if not self.reading_paused and self.lost is False:
            self.reading_paused = True
            self.transport.pause_reading()

    def _pump(self) -> None:
        """Answer every complete command line, until one has to wait."""
        while not self.done.done() and not self.busy:
            if self.write_paused:
                self._pause_reading()  # resume_writing pumps again
                return
            line = self.lines.next_line()
            if line is None:
                if self.input_ended:
                    self._finish("Connection closed", False)
                    return
                if self.reading_paused and self.lost is False:
                    self.reading_paused = False
                    self.transport.resume_reading()
                return
            try:
                waiting = self._command(line)
            except Exception as error:  # noqa: BLE001 - run() reports it
                self._fail(error)
                return
            if waiting is not None:
                self.busy = True
                self._pause_reading()
                task = self.loop.create_task(waiting)
                task.add_done_callback(self._command_done)
                return
            if self.stopping and not self.done.done():
                self._shut_down()

    def _command(self, line):
        """Answer `line`; a coroutine when the answer has to wait."""
        session, tx = self.session, self.tx
        if isinstance(line, Overflow):
            session.send(replies.INPUT_LINE_TOO_LONG.wire())
            self._finish("Input line too long", False)
            return None
        event = tx.command(line)
        if isinstance(event, Send):
            session.send(event.data)
        elif isinstance(event, Fetch):
            return session._fetch(tx, self.mailbox, self.uids, event)
        elif isinstance(event, Quit):
            return self._quit(event)
        elif isinstance(event, Close):
            session.send(event.data)
            self._finish(event.reason, False)
        return None

    async def _quit(self, event: Quit) -> None:
        self._finish(*await self.session._update(self.tx, self.mailbox, self.uids, event))

    def _command_done(self, task: asyncio.Task) -> None:
        self.busy = False
        if task.cancelled():
            self._fail(asyncio.CancelledError())
            return
        error = task.exception()
        if isinstance(error, (ConnectionError, TimeoutError)):
            self._finish("Connection closed", False)
        elif error is not None:
            self._fail(error)
        elif self.lost is not False:
            self._finish("Connection closed", False)
        elif self.stopping:
            if not self.done.done():
                self._shut_down()
        else:
            self.last_input = self.loop.time()
            self._pump()

    def _check_idle(self) -> None:
        """Dovecot's autologout: IDLE_TIMEOUT seconds without input while no command runs."""
        if self.done.done():
            return
        idle = self.loop.time() - self.last_input
        if self.busy or idle < IDLE_TIMEOUT:
            wait = IDLE_TIMEOUT if self.busy else IDLE_TIMEOUT - idle
            self.timer = self.loop.call_later(wait, self._check_idle)
            return
        self.session.send(replies.INACTIVITY.wire())
        self._finish(f"Inactivity - no input for {int(IDLE_TIMEOUT)} secs", False)


def _read_block(handle) -> tuple[bytes, bool]:
    """Up to CHUNK octets, and whether the message ended."""
    parts: list[bytes] = []
    size = 0
    while size < CHUNK:
        part = handle.read(CHUNK - size)
        if not part:
            return b"".join(parts), True
        parts.append(part)
        size += len(part)
    return b"".join(parts), False


def _open_and_read(mailbox, uid: int):
    handle = mailbox.open_message(uid)
    try:
        data, eof = _read_block(handle)
    except BaseException:
        handle.close()
        raise
    return handle, data, eof


def _apply(mailbox, seen: list[int], deleted: list[int]) -> None:
    if seen:
        mailbox.set_flags(seen, SEEN, frozenset(), "add")
    if deleted:
        mailbox.expunge(deleted)


def _close_all(mailbox, lock) -> None:
    for thing in (mailbox, lock):
        if thing is None:
            continue
        try:
            thing.close() if hasattr(thing, "close") else thing.release()
        except Exception:  # noqa: BLE001 - closing must not hide the session's end
            pass


def make_service(context: ServiceContext):
    """Registry entry point (roost.master.services): the handler for pop3 listeners."""
    if context.config.dovecot is None:
        async def no_config(conn: Connection) -> None:
            conn.log.error("pop3 without a dovecot.conf: closing")
        return no_config
    service = Pop3Service(context.config, context.log, context.log_setup)
    return service.serve
