"""Idle connections to the Dovecot auth server, reused by the SMTP sessions of one worker.

Postfix's smtpd keeps its connection to the Dovecot auth socket (smtpd_sasl_type = dovecot,
smtpd_sasl_path) open from one session to the next; a roost worker serves many sessions at
once, so it keeps a small pool instead: a session takes a connected client before its
greeting (the mechanism list comes from that connection's handshake, so a restarted auth
server's new list is seen as soon as old connections are gone) and gives it back at the end.

Invariants: a client goes back to the pool only when it is connected, has no request in
progress (an AUTH the client cancelled with `*` leaves one: that connection is closed) and
the server has not closed its side; at most `max_idle` wait per (path, service).
Security: nothing of one session's authentication survives in the connection: requests carry
their own ids and the session's user is kept by the session, not the client.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from roost.net.dovecot_auth_client import DovecotAuthClient

MAX_IDLE = 100  # as many as smtpd processes of Postfix's default_process_limit would keep


class AuthClientPool:
    def __init__(self, factory: Callable[..., DovecotAuthClient] = DovecotAuthClient,
                 max_idle: int = MAX_IDLE) -> None:
        self.factory = factory
        self.max_idle = max_idle
        self._idle: dict[tuple, list] = {}
        self._closing: set[asyncio.Task] = set()
        self.connects = 0  # connections opened (for tests and benchmarks)

    async def acquire(self, path: str, queue_directory: str, service: str) -> DovecotAuthClient:
        """A connected client (raises what DovecotAuthClient.connect raises)."""
        key = (path, queue_directory, service)
        idle = self._idle.get(key)
        while idle:
            client = idle.pop()
            if _reusable(client):
                return client
            await client.close()
        client = self.factory(path, queue_directory, service=service)
        client._pool_key = key
        self.connects += 1
        await client.connect()
        return client

    def release(self, client: DovecotAuthClient) -> None:
        """Keep `client` for the next session, or close it (in the background)."""
        key = getattr(client, "_pool_key", None)
        idle = self._idle.setdefault(key, []) if key is not None else None
        if idle is not None and len(idle) < self.max_idle and _reusable(client):
            idle.append(client)
            return
        task = asyncio.ensure_future(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        for clients in self._idle.values():
            for client in clients:
                await client.close()
        self._idle.clear()


def _reusable(client: DovecotAuthClient) -> bool:
    reader = getattr(client, "_reader", None)
    return (getattr(client, "_writer", None) is not None and reader is not None
            and getattr(client, "_request_id", None) is None and not reader.at_eof()
            and reader.exception() is None)
