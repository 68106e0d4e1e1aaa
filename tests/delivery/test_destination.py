"""Nexthop syntax and MX / address resolution (roost.delivery.destination) with a fake resolver."""

from __future__ import annotations

import asyncio
import random

from roost.delivery.destination import Nexthop, parse_nexthop, resolve_targets
from tests.delivery.helpers import FakeResolver


def test_parse_nexthop_forms():
    assert parse_nexthop("example.org") == Nexthop("inet", "example.org", None, True)
    assert parse_nexthop("[mail.isp.test]") == Nexthop("inet", "mail.isp.test", None, False)
    assert parse_nexthop("[mail.isp.test]:587") == Nexthop("inet", "mail.isp.test", 587, False)
    assert parse_nexthop("mail.isp.test:2525") == Nexthop("inet", "mail.isp.test", 2525, True)
    assert parse_nexthop("[192.0.2.1]") == Nexthop("inet", "192.0.2.1", None, False)
    assert parse_nexthop("192.0.2.1") == Nexthop("inet", "192.0.2.1", None, False)
    assert parse_nexthop("unix:/run/lmtp", lmtp=True) == Nexthop("unix", "/run/lmtp", None, False)
    assert parse_nexthop("inet:127.0.0.1:24", lmtp=True) == Nexthop("inet", "127.0.0.1", 24, False)
    assert parse_nexthop("inet:lmtp.test", lmtp=True) == Nexthop("inet", "lmtp.test", None, False)


def resolve(nexthop, zone, **kw):
    return asyncio.run(resolve_targets(parse_nexthop(nexthop), 25, FakeResolver(zone), **kw))


def test_mx_preference_order_random_among_equals_and_address_limit():
    zone = {("d.test", "MX"): ["10 b.test", "10 a.test", "5 first.test", "20 last.test"],
            ("first.test", "A"): ["10.0.0.1"], ("a.test", "A"): ["10.0.0.2"], ("b.test", "A"): ["10.0.0.3"],
            ("last.test", "A"): ["10.0.0.4", "10.0.0.5"]}
    seen = set()
    for seed in range(20):
        targets, failure = resolve("d.test", zone, rng=random.Random(seed))
        assert failure is None
        names = [t.hostname for t in targets]
        assert names[0] == "first.test" and names[3:] == ["last.test", "last.test"]
        seen.add(tuple(names[1:3]))
    assert seen == {("a.test", "b.test"), ("b.test", "a.test")}
    limited, _ = resolve("d.test", zone, address_limit=2, randomize=False)
    assert [t.address for t in limited] == ["10.0.0.1", "10.0.0.3"]


def test_dns_failures_and_fallbacks():
    zone = {("nomx.test", "A"): ["10.0.0.9"], ("temp.test", "MX"): "tempfail",
            ("badmx.test", "MX"): ["10 gone.test", "20 ok.test"], ("ok.test", "A"): ["10.0.0.8"],
            ("null.test", "MX"): ["0 ."], ("deadmx.test", "MX"): ["10 gone.test"]}
    targets, _ = resolve("nomx.test", zone)
    assert [t.relay for t in targets] == ["nomx.test[10.0.0.9]:25"]
    _, failure = resolve("temp.test", zone)
    assert (failure.status, failure.dsn) == ("deferred", "4.4.3")
    targets, failure = resolve("badmx.test", zone)
    assert failure is None and [t.hostname for t in targets] == ["ok.test"]
    _, failure = resolve("null.test", zone)
    assert failure.status == "bounced" and "nullMX" in failure.text
    _, failure = resolve("deadmx.test", zone)
    assert failure.status == "bounced" and failure.text.endswith("name=gone.test type=A: Host not found")
    targets, _ = resolve("[10.1.2.3]:2525", zone)
    assert [t.relay for t in targets] == ["10.1.2.3[10.1.2.3]:2525"]


def test_resolver_exception_defers():
    class Broken:
        async def lookup(self, name, rrtype):
            raise RuntimeError("resolver exploded")
    _, failure = asyncio.run(resolve_targets(parse_nexthop("x.test"), 25, Broken()))
    assert failure.status == "deferred" and "resolver exploded" in failure.text
