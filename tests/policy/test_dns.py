"""roost.net.dns: the production Resolver (dnspython) against a tiny loopback DNS server
built with dnspython's message API, and the FakeResolver used by the policy tests."""

from __future__ import annotations

import asyncio
import socket
import threading

import dns.message
import dns.rcode
import dns.rrset

from roost.net.dns import FakeResolver, Resolver, reverse_name

ZONE = {
    ("mx.test.", "A"): ["192.0.2.25"],
    ("mx.test.", "MX"): ["10 smtp.mx.test."],
    ("mx.test.", "TXT"): ['"v=spf1 -all"'],
    ("5.2.0.192.in-addr.arpa.", "PTR"): ["host.mx.test."],
}


class TinyDnsServer:
    """Answers ZONE over UDP on 127.0.0.1; `broken.test` gets SERVFAIL, other names NXDOMAIN."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name, rrtype = question.name.to_text(), dns.rdatatype.to_text(question.rdtype)
            if name == "broken.test.":
                response.set_rcode(dns.rcode.SERVFAIL)
            elif (name, rrtype) in ZONE:
                response.answer.append(dns.rrset.from_text_list(name, 60, "IN", rrtype, ZONE[(name, rrtype)]))
            elif not any(zone_name == name for zone_name, _ in ZONE):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), peer)

    def close(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()


def test_resolver_statuses_against_a_real_dns_server():
    server = TinyDnsServer()
    try:
        resolver = Resolver(timeout=2, nameservers=["127.0.0.1"], port=server.port)

        async def ask():
            return [await resolver.lookup(*q) for q in (("mx.test", "A"), ("mx.test", "MX"), ("mx.test", "TXT"),
                                                          ("mx.test", "AAAA"), ("nowhere.test", "A"),
                                                          ("broken.test", "A"), (reverse_name("192.0.2.5"), "PTR"))]
        a, mx, txt, aaaa, missing, broken, ptr = asyncio.run(ask())
    finally:
        server.close()
    assert (a.status, a.records) == ("ok", ("192.0.2.25",))
    assert mx.records == ("10 smtp.mx.test",)
    assert txt.records == ("v=spf1 -all",)
    assert aaaa.status == "nodata" and not aaaa.found
    assert missing.status == "nxdomain"
    assert broken.status == "tempfail"
    assert ptr.records == ("host.mx.test",)


def test_resolver_timeout_is_a_tempfail():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        resolver = Resolver(timeout=0.3, nameservers=["127.0.0.1"], port=silent.getsockname()[1])
        answer = asyncio.run(resolver.lookup("mx.test", "A"))
    finally:
        silent.close()
    assert answer.status == "tempfail"


def test_fake_resolver():
    fake = FakeResolver({("Mx.Test.", "a"): ["192.0.2.1"], ("down.test", "A"): "tempfail"})

    async def ask():
        return [await fake.lookup(*q) for q in (("mx.test", "A"), ("MX.TEST.", "MX"), ("other.test", "A"),
                                                ("down.test", "A"))]
    found, nodata, missing, down = asyncio.run(ask())
    assert found.found and found.records == ("192.0.2.1",)
    assert nodata.status == "nodata"
    assert missing.status == "nxdomain"
    assert down.status == "tempfail"
    assert fake.queries[0] == ("mx.test", "A")
