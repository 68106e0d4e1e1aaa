"""roost.net.server's per-connection set-up: TCP_NODELAY is on for every accepted TCP client
(uvloop's transports set it, so the server does not set it a second time; asyncio's selector
loop sets it only for proto-IPPROTO_TCP sockets, so there, as on any other loop, the server
does), and the Connection says which loop serves it (ReadTimer takes it instead of asking
asyncio, a getpid() per ask)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from roost.net import server as server_module
from roost.net.server import BoundSocket, ServiceServer
from roost.smtpd.readtimer import ReadTimer
from tests.conftest import RecordingLog
from tests.master.helpers import FakeConfig, FakeSettings, make_listener


def _loop_factories():
    factories = [pytest.param(asyncio.SelectorEventLoop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        return factories
    return factories + [pytest.param(uvloop.new_event_loop, id="uvloop")]


async def _serve_one(handler) -> ServiceServer:
    listener = make_listener(settings=FakeSettings(myhostname="mx.example.org"))
    config = FakeConfig("/test", FakeSettings(), listeners=(listener,))
    server = ServiceServer(handler, config, RecordingLog())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    await server.start([BoundSocket(listener, sock, None)])
    try:
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        assert await reader.readline() == b"done\r\n"
        writer.close()
    finally:
        server.stop_accepting()
        await server.cancel_all()
        sock.close()
    return server


@pytest.mark.parametrize("loop_factory", _loop_factories())
def test_accepted_clients_have_no_delay_set_once(loop_factory, monkeypatch):
    seen = {}
    calls = []
    real = server_module._no_delay
    monkeypatch.setattr(server_module, "_no_delay", lambda writer: (calls.append(writer), real(writer)))

    async def handler(conn):
        sock = conn.writer.get_extra_info("socket")
        seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        seen["loop"] = conn.loop is asyncio.get_running_loop()
        seen["timer_loop"] = ReadTimer(5, conn.loop)._loop is asyncio.get_running_loop()
        seen["tls"] = conn.tls
        conn.writer.write(b"done\r\n")
        await conn.writer.drain()

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(asyncio.wait_for(_serve_one(handler), 20))
    assert seen == {"nodelay": 1, "loop": True, "timer_loop": True, "tls": False}
    # uvloop's transport had set it; asyncio's does not for a proto-0 listener
    assert len(calls) == (0 if loop_factory is not asyncio.SelectorEventLoop else 1)


def test_a_loop_that_does_not_set_no_delay_gets_it_from_the_server(monkeypatch):
    monkeypatch.setattr(server_module, "_loop_sets_no_delay", lambda loop: False)
    seen = {}

    async def handler(conn):
        sock = conn.writer.get_extra_info("socket")
        seen["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        conn.writer.write(b"done\r\n")
        await conn.writer.drain()

    calls = []
    real = server_module._no_delay
    monkeypatch.setattr(server_module, "_no_delay", lambda writer: (calls.append(writer), real(writer)))
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        runner.run(asyncio.wait_for(_serve_one(handler), 20))
    assert len(calls) == 1 and seen == {"nodelay": 1}


def test_known_loops_are_recognised():
    loop = asyncio.SelectorEventLoop()
    try:
        assert not server_module._loop_sets_no_delay(loop)
    finally:
        loop.close()
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        assert server_module._loop_sets_no_delay(loop)
    finally:
        loop.close()
    assert not server_module._loop_sets_no_delay(object())
