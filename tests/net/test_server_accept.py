"""roost.net.server registers each listening socket with EPOLLEXCLUSIVE, so the workers that
share it are not all woken for every connection (epoll(7)); the flag is visible in the epoll
descriptor's /proc fdinfo, and the listener still serves and stops as before."""

from __future__ import annotations

import asyncio
import select
import socket

from roost.net import unavailable
from roost.net.server import BoundSocket, ServiceContext, ServiceServer
from tests.conftest import RecordingLog
from tests.master.helpers import FakeConfig, FakeSettings, make_listener

EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 1 << 28)


def _registered_events(epoll_fd: int, target_fd: int) -> int | None:
    with open(f"/proc/self/fdinfo/{epoll_fd}", encoding="ascii") as info:
        for line in info:
            fields = line.split()
            if fields[:1] == ["tfd:"] and int(fields[1]) == target_fd:
                return int(fields[3], 16)
    return None


def test_listening_socket_is_registered_exclusively_and_serves():
    async def scenario():
        listener = make_listener(settings=FakeSettings(myhostname="mx.example.org"))
        config = FakeConfig("/test", FakeSettings(), listeners=(listener,))
        log = RecordingLog()
        context = ServiceContext(listener.service, listener.handler, (listener,), config, log, None)
        server = ServiceServer(unavailable.make_service(context), config, log)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        await server.start([BoundSocket(listener, sock, None)])
        epoll_fd = asyncio.get_running_loop()._selector._selector.fileno()
        events = _registered_events(epoll_fd, sock.fileno())
        assert events is not None and events & EXCLUSIVE and events & select.EPOLLIN
        for _ in range(3):  # connections are still accepted, one after another
            reader, writer = await asyncio.open_connection(*sock.getsockname())
            assert (await reader.readline()).startswith(b"554 ")
            writer.close()
        server.stop_accepting()
        assert _registered_events(epoll_fd, sock.fileno()) is None
        await server.cancel_all()
        sock.close()

    # asyncio's own loop: the registration redone here is that loop's (uvloop registers the
    # socket inside libuv, where no flag can be added; roost.net.server)
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        runner.run(asyncio.wait_for(scenario(), 20))
