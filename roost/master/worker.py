"""A worker process: one asyncio loop serving one service's inherited listening sockets.

The master forks a worker after binding; the worker builds its connection handler through
the registry (roost.master.services), serves with roost.net.server, reports "ready" to the
master, and obeys three signals from it:

- SIGUSR1 "retire" (reload): stop accepting; exit when the open connections have ended, so an
  established session survives a reload with the configuration it started with;
- SIGTERM "stop": stop accepting, let connections finish for at most the grace time (their
  handlers see `conn.stopping` and may say goodbye), then cancel them and exit;
- end of file on the master's liveness pipe: the master is gone, so stop as for SIGTERM and
  never outlive it.

SIGINT and SIGHUP are ignored: in the foreground a terminal's Ctrl-C reaches every process of
the group, and only the master decides what it means.
Invariants: the worker always leaves through os._exit (never through the master's code after
fork); exit status 0 for a clean stop, 1 when serving failed (the master then logs and
restarts it with back-off).
Security: runs with the privileges the master has after its drop to mail_owner.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import struct
import traceback
from dataclasses import dataclass

from roost.master.plan import ServiceSpec, service_logger
from roost.master.services import ResolvedHandler
from roost.net import eventloop
from roost.net.server import BoundSocket, ServiceContext, ServiceServer

READY_RECORD = struct.Struct("=i")  # a worker's pid, written once it serves


@dataclass
class WorkerPlan:
    spec: ServiceSpec
    bound: list[BoundSocket]
    resolved: ResolvedHandler
    config: object
    logs: object  # roost.log.LogSetup
    status_fd: int  # write end of the master's status pipe
    alive_fd: int  # read end of the master's liveness pipe
    grace: float  # seconds open connections get on stop


def set_process_name(name: str) -> None:
    """Shown by ps/top (Linux comm, 15 bytes); best effort."""
    try:
        with open("/proc/self/comm", "w", encoding="ascii", errors="replace") as comm:
            comm.write(name[:15])
    except OSError:
        pass


def run_worker(plan: WorkerPlan) -> None:
    """Serve until told to stop, then leave the process. Never returns."""
    code = 1
    log = None
    try:
        set_process_name(f"roost-{plan.spec.handler}")
        log = service_logger(plan.spec, plan.logs)
        _route_library_logging(log)
        eventloop.run(_serve(plan, log), plan.spec.handler)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - whatever happens, report it and leave
        if log is not None:
            where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
            place = f" at {where[0].filename}:{where[0].lineno}" if where else ""
            log.fatal(f"worker of service {plan.spec.name}: {type(exc).__name__}: {exc}{place}")
    finally:
        os._exit(code)


class _ServiceLogHandler(logging.Handler):
    """Lines that library-style modules write with `logging` (roost.store...) go to the
    service's own log, in its Postfix or Dovecot format."""

    def __init__(self, log):
        super().__init__(logging.INFO)
        self.service_log = log

    def emit(self, record: logging.LogRecord) -> None:
        level = ("error" if record.levelno >= logging.ERROR else
                 "warning" if record.levelno >= logging.WARNING else "info")
        try:
            getattr(self.service_log, level)(record.getMessage())
        except Exception:  # noqa: BLE001 - logging must never break serving
            pass


def _route_library_logging(log) -> None:
    root = logging.getLogger("roost")
    root.handlers[:] = [_ServiceLogHandler(log)]
    root.setLevel(logging.INFO)
    root.propagate = False


def _exception_handler(log):
    def handle(loop, context) -> None:
        exc = context.get("exception")
        message = context.get("message", "event loop error")
        log.warning(f"{message}: {type(exc).__name__}: {exc}" if exc else message)
    return handle


async def _serve(plan: WorkerPlan, log) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_exception_handler(log))
    context = ServiceContext(name=plan.spec.name, handler=plan.spec.handler,
                             listeners=plan.spec.listeners, config=plan.config, log=log,
                             log_setup=plan.logs)
    handler = plan.resolved.factory(context)
    server = ServiceServer(handler, plan.config, log)
    await server.start(plan.bound)
    stopping = asyncio.Event()
    background = getattr(handler, "background", None)
    background_task = asyncio.ensure_future(background(stopping)) if background else None

    stop = asyncio.Event()
    retire = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, retire.set)

    def master_gone() -> None:
        try:
            data = os.read(plan.alive_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(plan.alive_fd)
            stop.set()

    os.set_blocking(plan.alive_fd, False)
    loop.add_reader(plan.alive_fd, master_gone)
    os.write(plan.status_fd, READY_RECORD.pack(os.getpid()))

    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(retire.wait())]
    if background_task is not None:
        waiters.append(background_task)  # a background service that ends ends its worker
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters[:2]:
        waiter.cancel()
    if background_task is not None:
        stopping.set()
        done, _ = await asyncio.wait([background_task], timeout=plan.grace)
        if not done:
            background_task.cancel()
        elif background_task.exception() is not None:
            raise background_task.exception()
    server.stop_accepting()
    if not stop.is_set():
        await server.drain(None, interrupt=stop)
    if stop.is_set() and server.open_connections:
        server.announce_stop()
        if not await server.drain(plan.grace):
            await server.cancel_all()
