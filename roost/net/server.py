"""The socket loop a service runs in inside a worker: accept, hand over, drain on shutdown.

A worker process (roost.master.worker) owns listening sockets inherited from the master.
`ServiceServer` serves them with asyncio streams, gives each accepted client to the service's
connection handler as a `Connection`, and keeps track of open connections so that:

- `stop_accepting()` closes this process's copy of the listening sockets (the master keeps
  its own, so the port stays bound for the next generation of workers: reload never refuses
  a client, it only queues it in the kernel backlog for a moment);
- `drain(deadline)` waits for open connections to end, and after the deadline cancels them
  (the handler's `finally` blocks run; the transport is aborted).

The workers of a service share its listening sockets; each worker registers them with
EPOLLEXCLUSIVE (`_accept_exclusively`), so a new connection wakes one idle worker, not all
(on asyncio's own loop; under uvloop the registration is libuv's and stays shared: a worker
woken for a connection another took pays one epoll_wait return and one failed accept4).

Implicit TLS (smtps/imaps/pop3s, RFC 8314 §3) is done here, before the handler runs, with the
context built by the master. Handlers do STARTTLS themselves with `await conn.writer.start_tls(
conn.ssl_context)` (Python 3.11 streams).

Invariants: an exception in a handler is logged with the session id and closes only that
connection; one client can never stop the accept loop.
Security: the handler sees the peer address as the kernel reported it; nothing here trusts
client-supplied names.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import os
import select
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from roost.log import current_pid

# TLS handshake limit for implicit-TLS listeners (Postfix smtpd_starttls_timeout is 300s;
# a client that has not finished a handshake in a minute is not a mail client).
TLS_HANDSHAKE_TIMEOUT = 60.0
# Bytes a StreamReader buffers for readline(); protocol handlers enforce their own limits.
STREAM_LIMIT = 64 * 1024
# Time given to a cancelled handler to run its clean-up before the transport is aborted.
CANCEL_GRACE = 2.0


@dataclass(eq=False, slots=True)
class Connection:
    """One accepted client, as a connection handler receives it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    listener: Any  # roost.config.load.Listener: service, handler, settings, tls_wrapper...
    config: Any  # roost.config.load.Config
    log: Any  # roost.log.PostfixLogger or DovecotLogger of this service
    session_id: str
    peer_host: str  # client IP address ("" for a UNIX-domain client)
    peer_port: int | None
    local_host: str
    local_port: int | None
    tls: bool  # True once the stream is encrypted (implicit TLS from the first byte)
    ssl_context: ssl.SSLContext | None  # the listener's context, for STARTTLS; None if no cert
    # set when the server stops; one Event shared by the server's connections (an Event and
    # its waiter deque per idle connection cost ~0.7 KiB)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # the loop serving it, for handlers that would otherwise ask asyncio (a getpid() per ask);
    # None when the creator did not say
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def settings(self):
        return self.listener.settings


@dataclass(frozen=True)
class ServiceContext:
    """What a handler factory receives once per worker process, before serving anything."""

    name: str  # service name ("smtp", "submission", "imap-login/imap")
    handler: str  # handler name ("smtpd", "imap", ...)
    listeners: tuple  # the Listener objects this worker serves
    config: Any  # roost.config.load.Config
    log: Any  # logger of this service
    log_setup: Any  # roost.log.LogSetup, for other loggers


ConnectionHandler = Callable[[Connection], Awaitable[None]]


@dataclass(frozen=True)
class BoundSocket:
    """A listening socket inherited from the master, with its listener and TLS context."""

    listener: Any
    sock: socket.socket
    ssl_context: ssl.SSLContext | None  # STARTTLS or implicit-TLS context; None if no cert


_session_counter = itertools.count(1)
_session_salt = secrets.token_hex(2)  # drawn again in every forked worker


def _new_salt() -> None:
    global _session_salt
    _session_salt = secrets.token_hex(2)


os.register_at_fork(after_in_child=_new_salt)


def new_session_id() -> str:
    """A short id unique enough to correlate the log lines of one connection (pid and a
    counter make it unique; the salt tells workers apart across restarts that reuse a
    pid) -- no getrandom(2) per connection."""
    return f"{current_pid():x}{next(_session_counter):x}{_session_salt}"


def hold_plaintext(conn: Connection) -> None:
    """Call just before sending the reply that starts TLS (SMTP 220, IMAP OK, POP3 +OK): stop
    reading and drop the plaintext already read, so nothing a client sent after its STARTTLS
    command is ever executed (RFC 3207 §4.2, RFC 3501 §6.2.1, RFC 2595 §4), and nothing the
    client sends once it has the reply (its TLS ClientHello) lands in the plaintext buffer:
    uvloop may read the socket again before start_tls() takes it over, asyncio's own loop
    happens not to. start_tls() resumes reading with the TLS protocol."""
    conn.writer.transport.pause_reading()
    buffered = getattr(conn.reader, "_buffer", None)
    if buffered:
        buffered.clear()


def _loop_sets_no_delay(loop: asyncio.AbstractEventLoop) -> bool:
    """True when the loop's transports set TCP_NODELAY on every accepted TCP socket: uvloop
    does (TCPTransport.new); setting it again costs two system calls and a socket object per
    connection. asyncio's selector loop sets it only for sockets whose proto is IPPROTO_TCP,
    which an accepted socket of a `socket.socket()` listener (proto 0) is not: it gets it here."""
    return type(loop).__module__.split(".")[0] == "uvloop"


def _no_delay(writer: asyncio.StreamWriter) -> None:
    """TCP_NODELAY: replies to pipelined commands go out at once (Nagle plus the client's
    delayed ACK would hold each small reply back ~40 ms). Only for loops whose transports
    do not set it themselves (_loop_sets_no_delay)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _address(sockname) -> tuple[str, int | None]:
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return "", None


class ServiceServer:
    """Serves one service's listening sockets in the running event loop."""

    def __init__(self, handler: ConnectionHandler, config: Any, log: Any):
        self.handler = handler
        self.config = config
        self.log = log
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task] = set()
        self._connections: set[Connection] = set()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self._set_no_delay = True

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    async def start(self, bound: list[BoundSocket]) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._set_no_delay = not _loop_sets_no_delay(loop)
        for item in bound:
            if item.listener.tls_wrapper and item.ssl_context is None:
                callback = _refuse  # no certificate: never fall back to clear text
            else:
                callback = self._make_callback(item)
            implicit_tls = item.ssl_context if item.listener.tls_wrapper else None
            tls_args = dict(ssl=implicit_tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT) if implicit_tls else {}
            factory = functools.partial(_lean_protocol, callback, loop)
            if item.sock.family == socket.AF_UNIX:
                server = await loop.create_unix_server(factory, sock=item.sock, **tls_args)
            else:
                server = await loop.create_server(factory, sock=item.sock, **tls_args)
            _accept_exclusively(server)
            self._servers.append(server)

    def _make_callback(self, item: BoundSocket):
        listener = item.listener
        # plain listeners never start encrypted: no need to ask each transport
        implicit_tls = bool(listener.tls_wrapper and item.ssl_context is not None)

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task(self._loop)  # given the loop: no getpid() per connection
            self._tasks.add(task)
            conn = None
            try:
                if self._set_no_delay:
                    _no_delay(writer)
                peer_host, peer_port = _address(writer.get_extra_info("peername"))
                local_host, local_port = _address(writer.get_extra_info("sockname"))
                conn = Connection(
                    reader=reader, writer=writer, listener=listener, config=self.config,
                    log=self.log, session_id=new_session_id(), peer_host=peer_host,
                    peer_port=peer_port, local_host=local_host, local_port=local_port,
                    tls=implicit_tls and writer.get_extra_info("sslcontext") is not None,
                    ssl_context=item.ssl_context, stopping=self._stopping, loop=self._loop)
                self._connections.add(conn)
                await self.handler(conn)
            except asyncio.CancelledError:
                pass  # shutdown after the grace time: close quietly
            except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
                self.log.info(f"lost connection: {type(exc).__name__}: {exc}")
            except Exception as exc:  # a handler bug must not take the worker down
                sid = conn.session_id if conn else "-"
                self.log.error(f"session {sid}: unexpected {type(exc).__name__}: {exc}")
            finally:
                if conn is not None:
                    self._connections.discard(conn)
                await _close(writer)
                self._tasks.discard(task)

        return on_client

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()

    def announce_stop(self) -> None:
        """Tell open connections the server is going down (their handlers may say goodbye)."""
        self._stopping.set()

    async def drain(self, timeout: float | None, interrupt: asyncio.Event | None = None) -> bool:
        """Wait for open connections to end, at most `timeout` seconds (None: no limit) or
        until `interrupt` is set. Returns True when every connection ended by itself."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            waiters = set(self._tasks)
            interrupt_task = asyncio.ensure_future(interrupt.wait()) if interrupt else None
            if interrupt_task:
                waiters.add(interrupt_task)
            await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if interrupt_task:
                interrupt_task.cancel()
                if interrupt.is_set():
                    return not self._tasks
        return not self._tasks

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_GRACE)


class _LeanStreamProtocol(asyncio.StreamReaderProtocol):
    """asyncio's StreamReaderProtocol (what start_server gives each connection) with its
    write-flow waiter queue and its close future made only when something uses them: a deque
    is 760 bytes and a future 144, per connection, so 9 MB for 10,000 idle IMAP clients that
    never wait for a full send buffer and are never awaited closed while open. Behaviour is
    asyncio's: the first use creates the same object asyncio would have made up front."""

    @property
    def _drain_waiters(self):
        waiters = self.__dict__.get("_lean_drain_waiters")
        if waiters is None:
            waiters = self.__dict__["_lean_drain_waiters"] = collections.deque()
        return waiters

    @_drain_waiters.setter
    def _drain_waiters(self, value) -> None:
        self.__dict__["_lean_drain_waiters"] = value or None  # asyncio sets an empty deque

    @property
    def _closed(self):
        closed = self.__dict__.get("_lean_closed")
        if closed is None:
            closed = self.__dict__["_lean_closed"] = self._loop.create_future()
        return closed

    @_closed.setter
    def _closed(self, value) -> None:
        if value is not None and value.done():
            self.__dict__["_lean_closed"] = value
        # an undone future from __init__ is dropped: the getter makes one when needed

    def __del__(self) -> None:  # asyncio's, without making a future just to look at it
        closed = self.__dict__.get("_lean_closed")
        if closed is not None and closed.done() and not closed.cancelled():
            closed.exception()


def _lean_protocol(callback, loop) -> asyncio.StreamReaderProtocol:
    """asyncio.start_server's protocol factory, with _LeanStreamProtocol."""
    reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
    return _LeanStreamProtocol(reader, callback, loop=loop)


def _accept_exclusively(server: asyncio.AbstractServer) -> None:
    """Register the listening sockets with EPOLLEXCLUSIVE (epoll(7), Linux 4.5+): the workers
    of a service share each listening socket, and a plain registration wakes every worker for
    every connection, where all but one find nothing to accept (measured: one wasted wake-up
    and accept() per SMTP connection with two workers). asyncio has no flag for it, so the
    registration asyncio made on its epoll object is redone with the flag; any other event
    loop (or an older kernel) keeps asyncio's own registration."""
    selector = getattr(asyncio.get_running_loop(), "_selector", None)
    poller = getattr(selector, "_selector", None)
    exclusive = getattr(select, "EPOLLEXCLUSIVE", None)
    if exclusive is None or not isinstance(poller, select.epoll):
        return
    for sock in server.sockets:
        fd = sock.fileno()
        try:
            poller.unregister(fd)
        except OSError:
            continue
        try:
            poller.register(fd, select.EPOLLIN | exclusive)
        except OSError:
            poller.register(fd, select.EPOLLIN)  # as asyncio had it


async def _refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _close(writer)


async def _close(writer: asyncio.StreamWriter) -> None:
    try:
        transport = writer.transport
        idle = (transport is not None and not transport.is_closing() and not transport.get_write_buffer_size()
                and writer.get_extra_info("sslcontext") is None)
        writer.close()
        if idle:  # plain TCP, nothing left to send: the socket closes at once, nothing to wait for
            return
        async with asyncio.timeout(CANCEL_GRACE):  # no task, unlike wait_for
            await writer.wait_closed()
    except (Exception, asyncio.CancelledError):
        transport = writer.transport
        if transport is not None:
            transport.abort()
