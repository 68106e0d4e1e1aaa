"""smtp(8)/lmtp(8) agent against real Debian Postfix smtp-sink servers on 127.0.0.x, with a
fake resolver pointing MX records at them."""

from __future__ import annotations

import asyncio
import re

import pytest

from roost.delivery import Recipient
from roost.delivery import smtp as smtp_agent
from tests.conftest import RecordingLog, free_port_base
from tests.delivery.helpers import FakeResolver, Sink, request, settings_of

LINE = re.compile(r"^4ABCDEF12: to=<(?P<to>[^>]*)>, (?:orig_to=<[^>]*>, )?relay=(?P<relay>\S+), "
                  r"delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=(?P<dsn>\d\.\d+\.\d+), "
                  r"status=(?P<status>sent|deferred|bounced) \((?P<text>.*)\)$")


@pytest.fixture
def sinks():
    started = []

    def start(host, port, *args):
        sink = Sink(host, port, *args)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


def deliver(req, settings, resolver=None):
    log = RecordingLog()
    results = asyncio.run(smtp_agent.deliver(req, settings, resolver=resolver or FakeResolver({}), log=log))
    return results, [text for _, text in log.lines if text.startswith("4ABCDEF12: to=")]


def test_mx_preference_order_and_fallback_past_failing_hosts(sinks):
    base = free_port_base()
    port = base + 25
    good = sinks("127.0.0.4", port)
    sinks("127.0.0.3", port, "-r", "RCPT")     # 4xx for every RCPT
    # 127.0.0.2: nobody listens (connection refused)
    resolver = FakeResolver({("dest.test", "MX"): ["20 mx-soft.test", "10 mx-down.test", "30 mx-good.test"],
                             ("mx-down.test", "A"): ["127.0.0.2"], ("mx-soft.test", "A"): ["127.0.0.3"],
                             ("mx-good.test", "A"): ["127.0.0.4"]})
    settings = settings_of(f"smtp_tcp_port = {port}\nsmtp_mx_session_limit = 3\n")
    results, lines = deliver(request("bob@dest.test", "carol@dest.test"), settings, resolver)
    assert [r.status for r in results] == ["sent", "sent"]
    assert results[0].relay == f"mx-good.test[127.0.0.4]:{port}"
    assert results[0].text.startswith("250 2.0.0 Ok")
    assert len(good.messages()) == 1
    dumped = good.messages()[0]
    assert b"X-Rcpt-Args: <bob@dest.test>" in dumped and b"X-Rcpt-Args: <carol@dest.test>" in dumped
    assert b"\n.leading dot" in dumped    # dot-stuffing undone by the server: content intact
    assert [m.group("status") for m in map(LINE.match, lines)] == ["sent", "sent"]
    assert [q for q in resolver.queries if q[1] == "MX"] == [("dest.test", "MX")]


def test_soft_and_hard_rejections_and_log_lines(sinks):
    base = free_port_base()
    port = base + 25
    sinks("127.0.0.5", port, "-f", "RCPT")   # 5xx for every RCPT
    settings = settings_of()
    results, lines = deliver(request("bob@x.test", nexthop=f"[127.0.0.5]:{port}"), settings)
    assert results[0].status == "bounced" and results[0].dsn[0] == "5"
    assert results[0].text.startswith(f"host 127.0.0.5[127.0.0.5] said: 5")
    assert results[0].text.endswith("(in reply to RCPT TO command)")
    match = LINE.match(lines[0])
    assert match and match["relay"] == f"127.0.0.5[127.0.0.5]:{port}" and match["status"] == "bounced"
    soft = settings_of("soft_bounce = yes\n")
    results, _ = deliver(request("bob@x.test", nexthop=f"[127.0.0.5]:{port}"), soft)
    assert results[0].status == "deferred" and results[0].dsn[0] == "4"


def test_connection_refused_and_dns_failures():
    base = free_port_base()
    results, lines = deliver(request("bob@x.test", nexthop=f"[127.0.0.6]:{base + 25}"), settings_of())
    assert results[0].status == "deferred" and results[0].dsn == "4.4.1" and results[0].relay == "none"
    assert results[0].text == f"connect to 127.0.0.6[127.0.0.6]:{base + 25}: Connection refused"
    assert "relay=none" in lines[0]
    resolver = FakeResolver({("temp.test", "MX"): "tempfail", ("nomx.test", "TXT"): ["x"]})
    results, _ = deliver(request("a@temp.test", "b@missing.test"), settings_of(), resolver)
    assert results[0].status == "deferred" and results[0].dsn == "4.4.3"
    assert results[0].text == ("Host or domain name not found. Name service error for name=temp.test "
                               "type=MX: Host not found, try again")
    results, _ = deliver(request("b@missing.test"), settings_of(), resolver)
    assert results[0].status == "bounced" and results[0].dsn == "5.4.4"


def test_no_mx_falls_back_to_address_records_and_relayhost(sinks):
    base = free_port_base()
    port = base + 25
    sink = sinks("127.0.0.7", port)
    resolver = FakeResolver({("plain.test", "A"): ["127.0.0.7"], ("relay.test", "A"): ["127.0.0.7"]})
    results, _ = deliver(request("bob@plain.test"), settings_of(f"smtp_tcp_port = {port}\n"), resolver)
    assert results[0].status == "sent" and results[0].relay == f"plain.test[127.0.0.7]:{port}"
    results, _ = deliver(request("bob@elsewhere.test"), settings_of(f"relayhost = [relay.test]:{port}\n"), resolver)
    assert results[0].status == "sent" and results[0].relay == f"relay.test[127.0.0.7]:{port}"
    assert ("relay.test", "MX") not in resolver.queries
    assert len(sink.messages()) == 2


def test_lmtp_inet_per_recipient(sinks):
    base = free_port_base()
    port = base + 24
    sink = sinks("127.0.0.8", port, "-L")
    req = request(Recipient("bob@x.test", "SUCCESS", "rfc822;bob@x.test", "bob@x.test"), "carol@x.test",
                  transport="lmtp", nexthop=f"inet:127.0.0.8:{port}")
    results, lines = deliver(req, settings_of())
    assert [r.status for r in results] == ["sent", "sent"]
    assert b"X-Client-Proto: LMTP" in sink.messages()[0]
    assert all(f"relay=127.0.0.8[127.0.0.8]:{port}" in line for line in lines)


def test_timeout_while_waiting_for_the_greeting(tmp_path):
    async def scenario():
        async def silent(reader, writer):
            await asyncio.sleep(5)
            writer.close()
        server = await asyncio.start_server(silent, "127.0.0.9", 0)
        port = server.sockets[0].getsockname()[1]
        settings = settings_of("smtp_helo_timeout = 1s\n")
        log = RecordingLog()
        results = await smtp_agent.deliver(request("b@x.test", nexthop=f"[127.0.0.9]:{port}"), settings,
                                           resolver=FakeResolver({}), log=log)
        server.close()
        return results, port
    results, port = asyncio.run(scenario())
    assert results[0].status == "deferred"
    assert results[0].text == ("conversation with 127.0.0.9[127.0.0.9] timed out while receiving the "
                               "initial server greeting")


def test_garbage_server_reply_defers_with_a_clear_text():
    async def scenario():
        async def garbage(reader, writer):
            writer.write(b"220 hi\r\n")
            await reader.readline()
            writer.write(b"\x00\xffHELLO garbage\r\n")
            await writer.drain()
            await asyncio.sleep(1)
            writer.close()
        server = await asyncio.start_server(garbage, "127.0.0.10", 0)
        port = server.sockets[0].getsockname()[1]
        results = await smtp_agent.deliver(request("b@x.test", nexthop=f"[127.0.0.10]:{port}"), settings_of(),
                                           resolver=FakeResolver({}), log=RecordingLog())
        server.close()
        return results
    results = asyncio.run(scenario())
    assert results[0].status == "deferred" and results[0].dsn == "4.5.0"
    assert "malformed server reply" in results[0].text and "EHLO handshake" in results[0].text


def test_fallback_relay_when_the_destination_is_unreachable_or_unknown(sinks):
    base = free_port_base()
    port = base + 25
    fallback = sinks("127.0.0.15", port)
    resolver = FakeResolver({("down.test", "A"): ["127.0.0.16"]})
    settings = settings_of(f"smtp_tcp_port = {port}\nsmtp_fallback_relay = [127.0.0.15]:{port}\n"
                           "smtp_mx_session_limit = 5\n")
    results, _ = deliver(request("a@down.test", "b@unknown.test"), settings, resolver)
    assert results[0].status == "sent" and results[0].relay == f"127.0.0.15[127.0.0.15]:{port}"
    results, _ = deliver(request("b@unknown.test"), settings, resolver)
    assert results[0].status == "sent"
    assert len(fallback.messages()) == 2


def test_connection_cache_reuses_one_connection_with_a_real_server(sinks):
    from roost.delivery.connection_cache import ConnectionCache
    base = free_port_base()
    sink = sinks("127.0.0.17", base + 25)

    async def scenario():
        cache = ConnectionCache.from_settings(settings_of("smtp_connection_cache_time_limit = 1s\n"))
        assert (cache.idle_limit, cache.reuse_limit) == (1.0, 300.0)
        log = RecordingLog()
        results = []
        for number in range(3):
            results += await smtp_agent.deliver(request(f"r{number}@x.test", nexthop=f"[127.0.0.17]:{base + 25}"),
                                                settings_of(), resolver=FakeResolver({}), log=log, cache=cache)
        cached_after = len(cache)
        await asyncio.sleep(1.3)            # idle longer than the limit: closed, a new one next time
        results += await smtp_agent.deliver(request("late@x.test", nexthop=f"[127.0.0.17]:{base + 25}"),
                                            settings_of(), resolver=FakeResolver({}), log=log, cache=cache)
        cache.close_all()
        return results, cached_after, [text for _, text in log.lines]

    results, cached_after, lines = asyncio.run(scenario())
    assert [r.status for r in results] == ["sent"] * 4
    assert [r.conn_use for r in results] == [1, 2, 3, 1]
    assert cached_after == 1
    assert ", conn_use=2, delay=" in lines[1] and "conn_use" not in lines[0] and "conn_use" not in lines[3]
    assert len(sink.messages()) == 4


def test_stale_cached_connection_falls_back_to_a_new_one():
    from roost.delivery.connection_cache import ConnectionCache

    async def scenario():
        connections = []

        async def server(reader, writer):
            connections.append(writer)
            writer.write(b"220 hi\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    while (await reader.readline()) != b".\r\n":
                        pass
                    writer.write(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 ok\r\n")
                if verb == b"RSET" and len(connections) == 1:
                    await writer.drain()
                    writer.close()          # the server drops the idle connection
                    return
                await writer.drain()
            writer.close()
        listener = await asyncio.start_server(server, "127.0.0.18", 0)
        port = listener.sockets[0].getsockname()[1]
        cache = ConnectionCache(idle_limit=5)
        results = []
        for name in ("a", "b"):
            results += await smtp_agent.deliver(request(f"{name}@x.test", nexthop=f"[127.0.0.18]:{port}"),
                                                settings_of(), resolver=FakeResolver({}), log=RecordingLog(),
                                                cache=cache)
        cache.close_all()
        listener.close()
        return results, len(connections)

    results, connections = asyncio.run(scenario())
    assert [r.status for r in results] == ["sent", "sent"] and connections == 2


def test_long_lines_are_folded_at_smtp_line_length_limit(sinks):
    base = free_port_base()
    sink = sinks("127.0.0.19", base + 25)
    message = b"Subject: long\r\n\r\n" + b"x" * 2500 + b"\r\n"
    results, _ = deliver(request("a@x.test", nexthop=f"[127.0.0.19]:{base + 25}", message=message), settings_of())
    assert results[0].status == "sent"
    body = sink.messages()[0].split(b"Subject: long", 1)[1]
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    assert max(map(len, lines)) == 998 and body.replace(b"\r\n ", b"").replace(b"\n ", b"").count(b"x" * 2500) == 1


def test_connect_timeout_when_the_server_never_accepts():
    import socket as socket_module
    listener = socket_module.socket()
    listener.bind(("127.0.0.20", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):   # fill the accept queue: later SYNs are dropped, connects hang
            filler = socket_module.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.20", port))
            fillers.append(filler)
        results, lines = deliver(request("a@x.test", nexthop=f"[127.0.0.20]:{port}"),
                                 settings_of("smtp_connect_timeout = 1s\n"))
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
    assert results[0].status == "deferred" and results[0].relay == "none"
    assert results[0].text == f"connect to 127.0.0.20[127.0.0.20]:{port}: Connection timed out"


def test_smtputf8_required_only_for_non_ascii(sinks):
    base = free_port_base()
    sink = sinks("127.0.0.21", base + 25)   # smtp-sink does not announce SMTPUTF8
    nexthop = f"[127.0.0.21]:{base + 25}"
    results, _ = deliver(request("a@x.test", nexthop=nexthop, envelope={"SMTPUTF8": "yes"}), settings_of())
    assert results[0].status == "sent"
    assert b"X-Mail-Args: <alice@example.org>\n" in sink.messages()[0].replace(b"\r\n", b"\n")
    results, _ = deliver(request("jürgen@x.test", nexthop=nexthop, envelope={"SMTPUTF8": "yes"}), settings_of())
    assert (results[0].status, results[0].dsn) == ("bounced", "5.6.7")
    assert results[0].text == "SMTPUTF8 is required, but was not offered by host 127.0.0.21[127.0.0.21]"
    header = "Subject: grüße\r\n\r\nx\r\n".encode()
    results, _ = deliver(request("a@x.test", nexthop=nexthop, envelope={"SMTPUTF8": "yes"}, message=header),
                         settings_of())
    assert results[0].dsn == "5.6.7"
