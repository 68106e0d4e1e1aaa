"""roost.net.auth in-process: byte-at-a-time clients, shutdown, a failing lookup, mechanisms."""

from __future__ import annotations

import asyncio
import base64

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.net.auth import build_service, served_mechanisms
from tests.proto.test_dovecot_auth_differential import CONF, USERS, CapturingLog

HELLO = b"VERSION\t1\t0\nCPID\t99\n"
POSTFIX_PLAIN = (b"AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.1\tresp="
                 + base64.b64encode(b"\0alice\0pw") + b"\n")  # as Postfix 3.7's smtpd sends it


def service_for(tmp_path, extra: str = "", **kwargs):
    conf = tmp_path / "dovecot.conf"
    conf.write_text(CONF.format(dir=tmp_path) + extra)
    (tmp_path / "users").write_text(USERS)
    diags = Diagnostics()
    config = parse_dovecot_conf(str(conf), diags)
    log = CapturingLog()
    return build_service(config, log, **kwargs), log


async def serve_pair(service, path, stopping=None):
    server = await asyncio.start_unix_server(
        lambda r, w: _serve_and_close(service, r, w, stopping), path)
    reader, writer = await asyncio.open_unix_connection(path)
    return server, reader, writer


async def _serve_and_close(service, reader, writer, stopping):
    try:
        await service.serve(reader, writer, stopping)
    finally:
        writer.close()


def test_byte_at_a_time_client(tmp_path):
    service, _log = service_for(tmp_path)

    async def scenario():
        server, reader, writer = await serve_pair(service, str(tmp_path / "s"))
        await reader.readuntil(b"DONE\n")
        for byte in HELLO + POSTFIX_PLAIN:
            writer.write(bytes([byte]))
            await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        server.close()
        return answer

    assert asyncio.run(scenario()) == b"OK\t1\tuser=alice\n"


def test_stopping_answers_pending_requests_then_closes(tmp_path):
    release = asyncio.Event

    async def scenario():
        gate = release()

        async def slow_sleep(_seconds):
            await gate.wait()

        service, _log = service_for(tmp_path, sleep=slow_sleep)
        stopping = asyncio.Event()
        server, reader, writer = await serve_pair(service, str(tmp_path / "s"), stopping)
        await reader.readuntil(b"DONE\n")
        writer.write(HELLO + POSTFIX_PLAIN.replace(base64.b64encode(b"\0alice\0pw"),
                                                   base64.b64encode(b"\0alice\0no")))
        await writer.drain()
        await asyncio.sleep(0.2)
        stopping.set()
        await asyncio.sleep(0.05)
        gate.set()  # the failure delay ends: the answer still goes out before the close
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        server.close()
        return answer

    assert asyncio.run(scenario()) == b"FAIL\t1\tuser=alice\n"


def test_a_failing_lookup_is_answered(tmp_path):
    service, log = service_for(tmp_path)

    def broken_authenticate(*_args, **_kwargs):
        raise RuntimeError("boom")

    service.lookup.authenticate = broken_authenticate

    async def scenario():
        server, reader, writer = await serve_pair(service, str(tmp_path / "s"))
        await reader.readuntil(b"DONE\n")
        writer.write(HELLO + POSTFIX_PLAIN)
        answer = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        server.close()
        return answer

    assert asyncio.run(scenario()) == b"FAIL\t1\tuser=alice\n"
    assert ("error", "plain(?,127.0.0.1): lookup failed: RuntimeError") in log.lines


def test_mechanisms_follow_auth_mechanisms(tmp_path):
    assert served_mechanisms(("login", "plain", "PLAIN", "cram-md5", "digest-md5")) == \
        ("LOGIN", "PLAIN", "CRAM-MD5")
    service, log = service_for(tmp_path, "auth_mechanisms = login cram-md5 digest-md5\n")
    assert service.mechanisms == ("LOGIN", "CRAM-MD5")
    assert ("warning", "auth_mechanisms: DIGEST-MD5 not served on the auth socket by roost "
                       "yet") in log.lines
