"""One roost service served in the benchmark's own process, as a worker serves it (the
handler roost.master.services resolves, roost.net.server's ServiceServer), on a loopback port
of its own: what the profiling benchmarks measure without the master and the other services.

Invariants: the listening socket is bound here to 127.0.0.1, port 0; the caller stops the
returned server (stop_accepting/drain).
"""

from __future__ import annotations

import asyncio
import socket


async def serve(config, spec, backlog: int = 128):
    """(ServiceServer, port) for `spec` (a roost.master.plan ServiceSpec of `config`)."""
    from roost.master.logsetup import open_logs
    from roost.master.plan import service_logger
    from roost.master.services import resolve_handler
    from roost.net.server import BoundSocket, ServiceContext, ServiceServer

    logs = open_logs(config, foreground=False)
    log = service_logger(spec, logs)
    context = ServiceContext(name=spec.name, handler=spec.handler, listeners=spec.listeners,
                             config=config, log=log, log_setup=logs)
    handler = resolve_handler(spec.handler).factory(context)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    server = ServiceServer(handler, config, log)
    await server.start([BoundSocket(spec.listeners[0], sock, None)])
    return server, sock.getsockname()[1]


def run_threads_inline() -> None:
    """asyncio.to_thread runs its function on the loop thread instead (so a profile of the
    loop thread sees the store work; the loop blocks meanwhile: an experiment, not a mode)."""
    async def inline(func, *args, **kwargs):
        return func(*args, **kwargs)
    asyncio.to_thread = inline
