"""DNS lookups for the SMTP policy: `Resolver.lookup(name, rrtype) -> DnsAnswer`.

Production uses dnspython's asyncio resolver (RFC 1035 queries through the system's
/etc/resolv.conf); tests use `FakeResolver(zone)`, which answers from a dict and never
touches the network. The answer is reduced to what Postfix's smtpd_check needs (dns_lookup(3)
status classes): "ok" with records, "nxdomain" (RFC 1035 §4.1.1 RCODE 3), "nodata" (the name
exists without records of that type, RFC 2308 §2.2), "tempfail" (SERVFAIL, timeout, no
nameserver: the caller defers, as Postfix's DNS_RETRY does).

Records are text: A/AAAA give addresses, MX gives "preference exchange" (exchange without the
trailing dot), PTR/CNAME/NS give names without the trailing dot, TXT gives the strings of one
record joined.

Invariants: `lookup` never raises; every failure maps to one of the four statuses. Names
are compared case-insensitively and without a trailing dot in FakeResolver.
Security: a lookup is bounded by `timeout` seconds; answers are data, never interpreted.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping

OK, NXDOMAIN, NODATA, TEMPFAIL = "ok", "nxdomain", "nodata", "tempfail"


@dataclass(frozen=True)
class DnsAnswer:
    status: str                   # "ok" | "nxdomain" | "nodata" | "tempfail"
    records: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        return self.status == OK and bool(self.records)


def reverse_name(address: str) -> str:
    """The in-addr.arpa / ip6.arpa name of an address (RFC 1035 §3.5, RFC 3596 §2.5)."""
    return ipaddress.ip_address(address).reverse_pointer


def _clean(name: str) -> str:
    return name.strip().rstrip(".").lower()


class Resolver:
    """dnspython's asyncio stub resolver behind the four-status interface."""

    def __init__(self, timeout: float = 10.0, nameservers: list[str] | None = None, port: int = 53) -> None:
        self.timeout = timeout
        self.nameservers = nameservers   # None: /etc/resolv.conf
        self.port = port
        self._resolver = None

    def _get(self):
        if self._resolver is None:
            import dns.asyncresolver  # imported late: only production needs it
            resolver = dns.asyncresolver.Resolver(configure=self.nameservers is None)
            if self.nameservers is not None:
                resolver.nameservers = list(self.nameservers)
                resolver.port = self.port
            resolver.lifetime = self.timeout
            self._resolver = resolver
        return self._resolver

    async def lookup(self, name: str, rrtype: str) -> DnsAnswer:
        import dns.exception
        import dns.resolver
        try:
            answer = await self._get().resolve(name, rrtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return DnsAnswer(NXDOMAIN)
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.NoAnswer):
            return DnsAnswer(TEMPFAIL)
        except (dns.exception.DNSException, OSError, ValueError):
            return DnsAnswer(TEMPFAIL)
        if answer.rrset is None:
            return DnsAnswer(NODATA)
        return DnsAnswer(OK, tuple(_record_text(rrtype, rdata) for rdata in answer.rrset))


def _record_text(rrtype: str, rdata) -> str:
    kind = rrtype.upper()
    if kind == "MX":
        return f"{rdata.preference} {str(rdata.exchange).rstrip('.')}"
    if kind == "TXT":
        return "".join(part.decode("utf-8", "replace") for part in rdata.strings)
    if kind in ("PTR", "CNAME", "NS"):
        return str(rdata.target).rstrip(".")
    return rdata.to_text()


class FakeResolver:
    """Answers from `zone`: {(name, rrtype): [records] | "nxdomain" | "tempfail"}; a name
    present with other types only gives "nodata", an absent name "nxdomain".
    `queries` records every (name, rrtype) asked, for tests."""

    def __init__(self, zone: Mapping[tuple[str, str], object] | None = None) -> None:
        self.zone = {(_clean(name), rrtype.upper()): value for (name, rrtype), value in (zone or {}).items()}
        self.queries: list[tuple[str, str]] = []

    async def lookup(self, name: str, rrtype: str) -> DnsAnswer:
        key = (_clean(name), rrtype.upper())
        self.queries.append(key)
        value = self.zone.get(key)
        if value is None:
            exists = any(zone_name == key[0] for zone_name, _ in self.zone)
            return DnsAnswer(NODATA if exists else NXDOMAIN)
        if value in (NXDOMAIN, TEMPFAIL, NODATA):
            return DnsAnswer(str(value))
        return DnsAnswer(OK, tuple(str(v) for v in value))  # type: ignore[union-attr]

