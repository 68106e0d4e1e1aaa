"""roost.smtpd.authpool: SMTP sessions of one worker reuse their connection to the Dovecot
auth server (as Postfix's smtpd keeps one), and never reuse one that is broken, closed by the
server or still in the middle of a request."""

from __future__ import annotations

import asyncio

from roost.smtpd.authpool import AuthClientPool


class FakeAuthServer:
    """Speaks the server side of the handshake; answers AUTH PLAIN with OK, counts connections."""

    def __init__(self, path: str):
        self.path = path
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.hold_answers = False

    async def start(self):
        self.server = await asyncio.start_unix_server(self._client, path=self.path)

    async def _client(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        writer.write(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\tx\nDONE\n")
        try:
            while line := await reader.readline():
                fields = line.decode().rstrip("\n").split("\t")
                if fields[0] == "AUTH" and not self.hold_answers:
                    writer.write(f"OK\t{fields[1]}\tuser=alice\n".encode())
        except ConnectionError:
            pass

    async def close(self):
        self.server.close()
        for writer in self.writers:
            writer.close()


async def _with_server(tmp_path, body):
    server = FakeAuthServer(str(tmp_path / "auth"))
    await server.start()
    pool = AuthClientPool()
    try:
        await body(server, pool)
    finally:
        await pool.close()
        await server.close()


async def _authenticate(client):
    return await client.start("PLAIN", "AGFsaWNlAHB3", local_ip="127.0.0.1", remote_ip="127.0.0.2",
                              secured=False)


def test_sequential_sessions_share_one_connection(tmp_path):
    async def body(server, pool):
        for _ in range(5):
            client = await pool.acquire(server.path, "", "smtp")
            assert list(client.mechanisms) == ["PLAIN"]
            assert (await _authenticate(client)).status == "ok"
            pool.release(client)
        assert server.connections == 1 and pool.connects == 1

    asyncio.run(_with_server(tmp_path, body))


def test_concurrent_sessions_each_get_their_own_connection(tmp_path):
    async def body(server, pool):
        first = await pool.acquire(server.path, "", "smtp")
        second = await pool.acquire(server.path, "", "smtp")
        assert first is not second
        pool.release(first)
        pool.release(second)
        third = await pool.acquire(server.path, "", "smtp")
        assert third in (first, second) and server.connections == 2

    asyncio.run(_with_server(tmp_path, body))


def test_connection_closed_by_the_server_is_not_reused(tmp_path):
    async def body(server, pool):
        client = await pool.acquire(server.path, "", "smtp")
        pool.release(client)
        for writer in server.writers:
            writer.close()
        await asyncio.sleep(0.05)  # the EOF reaches the idle client's reader
        fresh = await pool.acquire(server.path, "", "smtp")
        assert fresh is not client
        assert (await _authenticate(fresh)).status == "ok"
        assert server.connections == 2

    asyncio.run(_with_server(tmp_path, body))


def test_connection_with_a_request_in_progress_is_not_reused(tmp_path):
    async def body(server, pool):
        server.hold_answers = True
        client = await pool.acquire(server.path, "", "smtp")
        attempt = asyncio.create_task(_authenticate(client))
        await asyncio.sleep(0.05)
        attempt.cancel()  # the SMTP client went away mid-AUTH
        await asyncio.gather(attempt, return_exceptions=True)
        pool.release(client)
        server.hold_answers = False
        fresh = await pool.acquire(server.path, "", "smtp")
        assert fresh is not client and server.connections == 2

    asyncio.run(_with_server(tmp_path, body))


def test_idle_connections_are_bounded(tmp_path):
    async def body(server, pool):
        pool.max_idle = 2
        clients = [await pool.acquire(server.path, "", "smtp") for _ in range(4)]
        for client in clients:
            pool.release(client)
        await asyncio.sleep(0.05)
        assert sum(len(idle) for idle in pool._idle.values()) == 2
        assert sum(client._writer is None for client in clients) == 2

    asyncio.run(_with_server(tmp_path, body))
