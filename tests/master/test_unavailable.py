"""roost.net.unavailable through roost.net.server, in-process on loopback sockets.

RFC 5321 §3.1 (554 greeting, 503 to everything but QUIT, 221 to QUIT), the Postfix-style
limits (timeout, line length, hard error limit), IMAP BYE [UNAVAILABLE], POP3 -ERR
[SYS/PERM], implicit TLS before the greeting, and the stop announcement.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost import __version__
from roost.master.bind import bind_listener
from roost.net import certs, unavailable
from roost.net.server import BoundSocket, Connection, ServiceContext, ServiceServer
from roost.net.tls import server_context
from tests.conftest import RecordingLog
from tests.master.helpers import FakeConfig, FakeSettings, make_listener


async def _serve(listener, ssl_context=None):
    config = FakeConfig("/test", FakeSettings(), listeners=(listener,))
    log = RecordingLog()
    context = ServiceContext(listener.service, listener.handler, (listener,), config, log, None)
    server = ServiceServer(unavailable.make_service(context), config, log)
    sock = bind_listener(listener)
    await server.start([BoundSocket(listener, sock, ssl_context)])
    return server, sock.getsockname()[1], log


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=20))


async def _lines(reader, count):
    return [(await reader.readline()).decode() for _ in range(count)]


def test_smtp_greeting_503_and_quit():
    async def scenario():
        server, port, log = await _serve(make_listener(settings=FakeSettings(myhostname="mx.example.org")))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = (await reader.readline()).decode()
        for command in ("EHLO client.example", "MAIL FROM:<a@b.example>", "NOOP", "RSET", "HELP"):
            writer.write(command.encode() + b"\r\n")
        writer.write(b"QUIT\r\n")
        replies = await _lines(reader, 6)
        tail = await reader.read()
        writer.close()
        server.stop_accepting()
        await server.drain(5)
        return greeting, replies, tail, log.lines

    greeting, replies, tail, lines = run(scenario())
    assert greeting == f"554 5.3.2 mx.example.org ESMTP service not available (roost {__version__})\r\n"
    assert replies[:5] == ["503 5.5.1 Error: no service\r\n"] * 5
    assert replies[5] == "221 2.0.0 Bye\r\n"
    assert tail == b""  # the server closed after 221
    assert ("info", "connect from unknown[127.0.0.1]") in lines
    assert ("info", "disconnect from unknown[127.0.0.1] ehlo=0/1 mail=0/1 noop=0/1 rset=0/1 "
                    "help=0/1 quit=1 commands=1/6") in lines


def test_smtplib_sees_554_connect_error():
    async def scenario():
        server, port, _log = await _serve(make_listener())
        loop = asyncio.get_running_loop()

        def client():
            with pytest.raises(smtplib.SMTPConnectError) as info:
                smtplib.SMTP("127.0.0.1", port, timeout=10)
            return info.value.smtp_code, info.value.smtp_error

        result = await loop.run_in_executor(None, client)
        server.stop_accepting()
        await server.drain(5)
        return result

    code, text = run(scenario())
    assert code == 554
    assert text.startswith(b"5.3.2 mail.example.test ESMTP service not available")


def test_lmtp_greeting_names_lmtp():
    async def scenario():
        server, port, _log = await _serve(make_listener("lmtp/lmtp", "lmtp"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        greeting = (await reader.readline()).decode()
        writer.write(b"LHLO x\r\nQUIT\r\n")
        replies = await _lines(reader, 2)
        writer.close()
        server.stop_accepting()
        return greeting, replies

    greeting, replies = run(scenario())
    assert greeting.startswith("554 5.3.2 mail.example.test LMTP service not available")
    assert replies == ["503 5.5.1 Error: no service\r\n", "221 2.0.0 Bye\r\n"]


def test_line_too_long_then_error_limit():
    async def scenario():
        settings = FakeSettings(line_length_limit="100", smtpd_hard_error_limit="3")
        server, port, _log = await _serve(make_listener(settings=settings))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"NOOP " + b"x" * 200_000 + b"\r\n")  # longer than the stream buffer too
        first = (await reader.readline()).decode()
        writer.write(b"NOOP\r\nNOOP\r\nNOOP\r\n")
        rest = await _lines(reader, 2)
        closed = await reader.read()
        writer.close()
        server.stop_accepting()
        return first, rest, closed

    first, rest, closed = run(scenario())
    assert first == "500 5.5.2 Error: line too long\r\n"
    assert rest == ["503 5.5.1 Error: no service\r\n",
                    "421 4.7.0 mail.example.test Error: too many errors\r\n"]
    assert closed == b""


def test_idle_client_times_out():
    async def scenario():
        server, port, _log = await _serve(make_listener(settings=FakeSettings(smtpd_timeout="0.3")))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        reply = (await reader.readline()).decode()
        closed = await reader.read()
        writer.close()
        server.stop_accepting()
        return reply, closed

    reply, closed = run(scenario())
    assert reply == "421 4.4.2 mail.example.test Error: timeout exceeded\r\n"
    assert closed == b""


@pytest.mark.parametrize("handler, expected", [
    ("imap", "* BYE [UNAVAILABLE] IMAP service not available\r\n"),
    ("pop3", "-ERR [SYS/PERM] POP3 service not available\r\n"),
])
def test_imap_pop3_say_goodbye_and_close(handler, expected):
    async def scenario():
        server, port, log = await _serve(make_listener(f"{handler}-login/{handler}", handler))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        text = await reader.read()
        writer.close()
        server.stop_accepting()
        await server.drain(5)
        return text.decode(), log.lines

    text, lines = run(scenario())
    assert text == expected
    assert any("Disconnected: service not available" in line for _level, line in lines)


def test_auth_and_unknown_handlers_close():
    async def scenario():
        results = []
        for handler in ("auth", "postscreen"):
            server, port, _log = await _serve(make_listener(handler, handler))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            results.append(await reader.read())
            writer.close()
            server.stop_accepting()
        return results

    assert run(scenario()) == [b"", b""]


def test_implicit_tls_greets_after_handshake(tmp_path):
    pair = certs.make_self_signed("mail.example.test")
    (tmp_path / "cert.pem").write_bytes(pair.cert_pem)
    (tmp_path / "key.pem").write_bytes(pair.key_pem)
    context = server_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))

    async def scenario():
        server, port, _log = await _serve(make_listener("smtps", tls_wrapper=True), context)
        client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client,
                                                       server_hostname="mail.example.test")
        greeting = (await reader.readline()).decode()
        version = writer.get_extra_info("ssl_object").version()
        writer.write(b"QUIT\r\n")
        bye = (await reader.readline()).decode()
        writer.close()
        server.stop_accepting()
        await server.drain(5)
        return greeting, version, bye

    greeting, version, bye = run(scenario())
    assert greeting.startswith("554 5.3.2 mail.example.test ESMTP service not available")
    assert version in ("TLSv1.2", "TLSv1.3")
    assert bye == "221 2.0.0 Bye\r\n"


def test_stop_announces_421_to_open_sessions():
    async def scenario():
        server, port, _log = await _serve(make_listener())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        server.stop_accepting()
        server.announce_stop()
        reply = (await reader.readline()).decode()
        ended = await server.drain(5)
        writer.close()
        return reply, ended

    reply, ended = run(scenario())
    assert reply.startswith("421 4.3.2 mail.example.test Service shutting down")
    assert ended


def test_drain_deadline_cancels_silent_sessions():
    async def scenario():
        server, port, _log = await _serve(make_listener("imap-login/imap", "custom"))
        # A handler that never ends by itself stands for a long session.
        server.handler = lambda conn: asyncio.sleep(3600)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.1)
        server.stop_accepting()
        ended = await server.drain(0.2)
        await server.cancel_all()
        closed = await reader.read()
        writer.close()
        return ended, server.open_connections, closed

    ended, still_open, closed = run(scenario())
    assert ended is False
    assert still_open == 0
    assert closed == b""


class _CollectingWriter:
    def __init__(self):
        self.data = bytearray()

    def write(self, data):
        self.data += data

    async def drain(self):
        pass


ALLOWED_REPLY = (b"554 5.3.2 ", b"503 5.5.1 Error: no service", b"500 5.5.2 Error: line too long",
                 b"221 2.0.0 Bye", b"421 4.7.0 ", b"421 4.4.2 ")


@settings(max_examples=200, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300) | st.sampled_from(
    [b"QUIT\r\n", b"quit\n", b"\r\n", b"\n", b"NOOP\r\n", b"\x00\r\n", b"QUIT"]), max_size=40))
def test_smtp_unavailable_fuzz(chunks):
    """Whatever bytes arrive, only the documented replies go out and the session ends."""
    async def scenario():
        reader = asyncio.StreamReader(limit=1024)
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        writer = _CollectingWriter()
        conn = Connection(reader=reader, writer=writer, listener=make_listener(
            settings=FakeSettings(line_length_limit="200", smtpd_timeout="5")), config=None,
            log=RecordingLog(), session_id="t", peer_host="127.0.0.1", peer_port=1,
            local_host="127.0.0.1", local_port=25, tls=False, ssl_context=None)
        await unavailable.smtp_unavailable(conn)
        return bytes(writer.data)

    output = run(scenario())
    replies = output.split(b"\r\n")
    assert replies[-1] == b""
    assert replies[0].startswith(b"554 5.3.2 ")
    assert all(reply.startswith(ALLOWED_REPLY) for reply in replies[:-1])
    sent = b"".join(chunks)
    if b"\n" not in sent:
        assert len(replies) == 2  # no complete command: only the greeting


def test_implicit_tls_without_certificate_never_speaks_clear_text():
    async def scenario():
        server, port, _log = await _serve(make_listener("smtps", tls_wrapper=True), None)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        data = await reader.read()
        writer.close()
        server.stop_accepting()
        return data

    assert run(scenario()) == b""
