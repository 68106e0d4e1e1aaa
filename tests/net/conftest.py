"""tests/net serves handlers inside the test process: on the loop a worker of those handlers
runs (roost.net.eventloop: uvloop when installed; ROOST_EVENT_LOOP=asyncio for asyncio's own)."""

from __future__ import annotations

import asyncio

import pytest

from roost.net import eventloop


@pytest.fixture(autouse=True)
def worker_event_loop():
    factory = eventloop.loop_factory("smtpd")
    if factory is asyncio.SelectorEventLoop:
        yield
        return
    import uvloop

    previous = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(previous)
