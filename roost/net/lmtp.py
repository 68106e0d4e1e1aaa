"""The LMTP server on Dovecot's `service lmtp` listeners: a thin loop around the LMTP machine.

Implements RFC 2033 (LMTP) over roost.proto.smtp.machine in LMTP mode (LHLO, PIPELINING
(RFC 2920), ENHANCEDSTATUSCODES, 8BITMIME, SIZE, CHUNKING; one reply per accepted recipient
after the data, §4.2), as Dovecot 2.3's lmtp service answers (texts in roost.lmtp.replies):
each RCPT is looked up in the userdb (service "lmtp", roost.lmtp.recipient), the data is
spooled to an unnamed temporary file in `mail_temp_dir` (never held whole in memory), then
delivered to each recipient's store in a worker thread (roost.lmtp.delivery). Log lines are
Dovecot's: `lmtp(PID): Connect from IP`, `lmtp(user)<PID><ID>: msgid=<..>: saved mail to
INBOX`, `lmtp(PID): Disconnect from IP: Logged out (state=READY)`.

Invariants: a 250 for a recipient is sent only after its store made the message durable;
writes are flushed whenever no pipelined input is waiting; one broken recipient or store
never ends the session (its reply says so).
Security: LMTP has no authentication (RFC 2033 §6): listeners must be local (unix socket or
loopback), as Dovecot's defaults are; the spool file is unnamed and mode 0600.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from roost.auth.lookup import AuthLookup
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_settings import dovecot_settings
from roost.lmtp import replies
from roost.lmtp.delivery import Transaction, deliver_all, rcpt_quota_reply
from roost.lmtp.recipient import Recipient, lookup_recipient
from roost.log import system_hostname
from roost.net.server import Connection, ServiceContext
from roost.proto.smtp import events as E
from roost.proto.smtp.machine import MachineSettings, SmtpServerMachine
from roost.proto.smtp.reply import Reply

READ_SIZE = 64 * 1024
IDLE_TIMEOUT = 300.0  # Dovecot closes an idle LMTP client after 5 minutes
# A DataContent piece is written to the spool as it comes; flushing to the file in blocks.
SPOOL_BUFFER = 256 * 1024


@dataclass(frozen=True)
class LmtpConfig:
    """Everything the LMTP handler needs, built once per worker from dovecot.conf."""
    hostname: str
    login_greeting: str
    recipient_delimiter: str
    save_to_detail: bool
    add_received: bool
    quota_tempfail: bool
    mail_temp_dir: str
    message_size_limit: int
    lookup: Any  # AuthLookup (lookup_user)
    open_store: Any  # UserRecord -> UserStore
    log_setup: Any  # roost.log.LogSetup, for the per-user Dovecot loggers
    idle_timeout: float = IDLE_TIMEOUT
    rcpt_check_quota: bool = False  # lmtp_rcpt_check_quota
    delivered_to: bool = True  # lmtp_hdr_delivery_address != none


def build_config(context: ServiceContext) -> LmtpConfig:
    from roost.store import MailSettings, open_user_store

    view = dovecot_settings(context.config.dovecot, protocol="lmtp")
    diags = Diagnostics()
    lookup = AuthLookup.from_settings(view, diags, logger=context.log)
    for diag in diags.items:
        context.log.warning(str(diag))
    mail = MailSettings.from_dovecot(view)
    return LmtpConfig(
        hostname=view.hostname or system_hostname(),
        login_greeting=view.str("login_greeting"),
        recipient_delimiter=view.recipient_delimiter,
        save_to_detail=view.lmtp_save_to_detail_mailbox,
        add_received=view.bool("lmtp_add_received_header"),
        quota_tempfail=view.bool("quota_full_tempfail"),
        mail_temp_dir=view.str("mail_temp_dir") or tempfile.gettempdir(),
        message_size_limit=0,  # Dovecot LMTP has no size limit of its own
        lookup=lookup,
        open_store=lambda user: open_user_store(user, mail),
        log_setup=context.log_setup,
        rcpt_check_quota=view.bool("lmtp_rcpt_check_quota"),
        delivered_to=view.str("lmtp_hdr_delivery_address") != "none")


def new_session_id() -> str:
    """Dovecot-style session id: 16 random bytes, base64 without padding (22 characters)."""
    return base64.b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


class LmtpSession:
    """One client connection."""

    def __init__(self, conn: Connection, config: LmtpConfig):
        self.conn = conn
        self.config = config
        self.machine = SmtpServerMachine(MachineSettings(
            hostname=config.hostname, lmtp=True, message_size_limit=config.message_size_limit,
            vrfy_enabled=True, etrn_enabled=False, smtputf8_enable=False,
            discard_ehlo_keywords=frozenset({"DSN"})))
        self.session_id = new_session_id()
        self.pid = os.getpid()
        self.log = config.log_setup.dovecot(f"lmtp({self.pid})") if config.log_setup else conn.log
        self.peer = conn.peer_host or "local"
        self.transactions = 0
        self._reset()

    def _reset(self) -> None:
        self.sender: str | None = None
        self.recipients: list[Recipient] = []
        self.rcpt_count = 0
        self._close_spool()
        self.spool = None
        self.spool_size = 0
        self.spool_error: str | None = None
        self.received_at = 0.0

    def _close_spool(self) -> None:
        spool = getattr(self, "spool", None)
        if spool is not None:
            spool.close()

    def _user_logger(self, user: str, ident: str):
        if self.config.log_setup is None:
            return self.conn.log
        return self.config.log_setup.dovecot(f"lmtp({user})<{self.pid}><{ident}>")

    async def run(self) -> None:
        writer = self.conn.writer  # TCP_NODELAY is set by roost.net.server for every client
        self.log.info(f"Connect from {self.peer}")
        reason = "Logged out"
        writer.write(replies.greeting(self.config.hostname, self.config.login_greeting).to_bytes())
        await writer.drain()
        try:
            reason = await self._loop()
        finally:
            self._reset()
            self.log.info(f"Disconnect from {self.peer}: {reason} (state=READY)")

    async def _loop(self) -> str:
        reader, writer = self.conn.reader, self.conn.writer
        while not self.machine.closed:
            event = self.machine.next_event()
            if event is None:
                if self.conn.stopping.is_set():
                    writer.write(self.machine.close(replies.SHUTTING_DOWN))
                    await writer.drain()
                    return "Server shutting down"
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), self.config.idle_timeout)
                except asyncio.TimeoutError:
                    writer.write(self.machine.close(replies.IDLE_TIMEOUT))
                    await writer.drain()
                    return "Disconnected for inactivity"
                if data:
                    self.machine.receive(data)
                else:
                    self.machine.receive_eof()
                continue
            if isinstance(event, E.ConnectionClosed):
                return "Connection closed"
            out = await self._handle(event)
            if out:
                writer.write(out)
                if self.machine.buffered == 0 or self.machine.closed:
                    await writer.drain()
        await writer.drain()
        return "Logged out"

    async def _handle(self, event) -> bytes:
        machine = self.machine
        if isinstance(event, E.DataContent):
            self._spool_write(event.data)
            return b""
        if isinstance(event, E.BdatStart):
            if (event.first or self.spool is None) and not self.spool_error:
                try:
                    self._open_spool()
                except OSError as error:
                    self.spool_error = f"{error.strerror or error}"
            return b""
        if isinstance(event, E.Helo):
            return machine.reply(machine.helo_reply(event))
        if isinstance(event, E.Mail):
            self._reset()
            self.transactions += 1
            self.sender = event.address
            return machine.reply(replies.MAIL_OK)
        if isinstance(event, E.Rcpt):
            self.rcpt_count += 1
            found = await asyncio.to_thread(lookup_recipient, self.config.lookup, event.address,
                                            self.config.recipient_delimiter, self.rcpt_count)
            if isinstance(found, Reply):
                return machine.reply(found)
            if self.config.rcpt_check_quota:
                refused = await asyncio.to_thread(rcpt_quota_reply, self.config.open_store, found,
                                                  self.config.quota_tempfail)
                if refused is not None:
                    return machine.reply(refused)
            self.recipients.append(found)
            return machine.reply(replies.RCPT_OK)
        if isinstance(event, E.Data):
            try:
                self._open_spool()
            except OSError as error:
                self.spool_error = f"{error.strerror or error}"
                self.log.error(f"Temporary file creation failed: {self.spool_error}")
            return machine.reply(replies.DATA_GO)
        if isinstance(event, E.DataEnd):
            return machine.reply(await self._deliver())
        if isinstance(event, E.BdatEnd):
            if not event.last:
                return machine.reply(replies.OK)
            return machine.reply(await self._deliver())
        if isinstance(event, (E.Rset, E.Noop)):
            if isinstance(event, E.Rset):
                self._reset()
            return machine.reply(replies.OK)
        if isinstance(event, E.Quit):
            return machine.reply(replies.BYE)
        if isinstance(event, E.Vrfy):
            return machine.reply(replies.TRY_RCPT)
        if isinstance(event, E.StartTls):
            return machine.reply(replies.TLS_UNAVAILABLE)
        if isinstance(event, E.ProtocolError):
            return machine.reply(replies.dovecot_wording(event.reply))
        return machine.reply(replies.UNKNOWN_COMMAND)

    def _open_spool(self) -> None:
        self._close_spool()
        os.makedirs(self.config.mail_temp_dir, exist_ok=True)
        self.spool = tempfile.TemporaryFile(dir=self.config.mail_temp_dir, prefix="roost-lmtp.",
                                            buffering=SPOOL_BUFFER)
        self.spool_size = 0
        self.received_at = time.time()

    def _spool_write(self, data: bytes) -> None:
        if self.spool_error:
            return  # keep reading to the end of the data, then answer 451 for each recipient
        try:
            if self.spool is None:
                self._open_spool()
            self.spool.write(data)
        except OSError as error:  # mail_temp_dir full or gone
            self.spool_error = f"{error.strerror or error}"
            self.log.error(f"Temporary file write failed: {self.spool_error}")
            return
        self.spool_size += len(data)

    async def _deliver(self) -> list[Reply]:
        recipients = self.recipients
        try:
            if self.spool_error:
                raise OSError(self.spool_error)
            if self.spool is None:
                self._open_spool()
            spool = self.spool
            spool.flush()
        except OSError:
            self._reset()
            return [replies.spool_failed(rcpt.address) for rcpt in recipients]
        tid = self.session_id if self.transactions <= 1 else f"{self.session_id}:T{self.transactions}"
        transaction = Transaction(
            sender=self.sender or "", helo=self.machine.helo_name, client_ip=self.conn.peer_host,
            hostname=self.config.hostname, transaction_id=tid, received_at=self.received_at,
            add_received=self.config.add_received, save_to_detail=self.config.save_to_detail,
            quota_tempfail=self.config.quota_tempfail, delivered_to=self.config.delivered_to)
        try:
            results = await asyncio.to_thread(
                deliver_all, transaction, recipients, spool.fileno(),
                self.spool_size, self.config.open_store, self._user_logger)
        finally:
            self._reset()
        return results


def make_service(context: ServiceContext):
    """Registry entry point (roost.master.services): the handler for `lmtp` listeners."""
    if context.config.dovecot is None:
        async def no_config(conn: Connection) -> None:
            conn.log.error("lmtp listener without a dovecot.conf: closing")
        return no_config
    config = build_config(context)

    async def handler(conn: Connection) -> None:
        await LmtpSession(conn, config).run()

    return handler
