"""Where an smtp(8)/lmtp(8) delivery goes: nexthop syntax and MX / address lookup.

Nexthop forms (postconf(5) relayhost, transport(5)): `domain` (MX lookup, then A/AAAA when the
domain has no MX, RFC 5321 §5.1), `[host]` (no MX lookup), `host:port` / `[host]:port`,
`inet:host:port` and `unix:/path` (lmtp), `[192.0.2.1]`. An empty nexthop means relayhost, or
else the recipient's domain. MX hosts are tried in preference order, random among equal
preferences (RFC 5321 §5.1, smtp_randomize_addresses), at most smtp_mx_address_limit addresses.

Failure texts are Postfix's: `Host or domain name not found. Name service error for
name=x type=MX: Host not found` (5.4.4, bounced), `..., try again` (4.4.3, deferred).

Invariants: `resolve_targets` never raises; it returns either targets or a failure.
Security: only names from configuration or envelopes reach the resolver; no shell.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Nexthop:
    kind: str           # "inet" | "unix"
    host: str           # host or domain; socket path for unix
    port: int | None    # None: the transport's default port
    use_mx: bool        # domain form without []


@dataclass(frozen=True)
class Target:
    hostname: str       # "mx1.example.org" (or the literal address)
    address: str        # "192.0.2.1" or a unix socket path
    port: int
    kind: str = "inet"

    @property
    def label(self) -> str:
        """`host[addr]`: how Postfix names a server in texts."""
        return f"{self.hostname}[{self.address}]"

    @property
    def relay(self) -> str:
        return self.label if self.kind == "unix" else f"{self.label}:{self.port}"


@dataclass(frozen=True)
class LookupFailure:
    status: str         # "deferred" | "bounced"
    dsn: str
    text: str


def parse_nexthop(nexthop: str, *, lmtp: bool = False) -> Nexthop:
    text = nexthop.strip()
    if text.startswith("unix:"):
        return Nexthop("unix", text[5:], None, False)
    if text.startswith("inet:"):
        text = text[5:]
    if lmtp and text.startswith("/"):
        return Nexthop("unix", text, None, False)
    use_mx = not lmtp
    port = None
    if text.startswith("["):
        close = text.find("]")
        host, rest = (text[1:close], text[close + 1:]) if close > 0 else (text[1:], "")
        use_mx = False
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    else:
        host, sep, port_text = text.rpartition(":")
        if sep and port_text.isdigit() and ":" not in host:
            port = int(port_text)
        else:
            host = text
    if _is_address(host):
        use_mx = False
    return Nexthop("inet", host.rstrip("."), port, use_mx)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.removeprefix("ipv6:"))
        return True
    except ValueError:
        return False


def _records(answer) -> list:
    return list(getattr(answer, "records", None) or [])


def _mx_pairs(records) -> list[tuple[int, str]]:
    pairs = []
    for record in records:
        if isinstance(record, str):   # roost.net.dns: "preference exchange"
            preference_text, _, exchange = record.strip().partition(" ")
            if not preference_text.isdigit():
                continue
            preference = int(preference_text)
        elif isinstance(record, tuple):
            preference, exchange = record
        else:
            preference = getattr(record, "preference", 0)
            exchange = getattr(record, "exchange", record)
        pairs.append((int(preference), str(exchange).rstrip(".")))
    return pairs


def _address_of(record) -> str:
    return str(getattr(record, "address", record))


async def _addresses(resolver, name: str, family_pref: str) -> tuple[list[str], LookupFailure | None]:
    found: list[str] = []
    temporary = None
    types = {"ipv4": ("A",), "ipv6": ("AAAA",)}.get(family_pref, ("A", "AAAA"))
    last_type = types[0]
    for rrtype in types:
        last_type = rrtype
        answer = await resolver.lookup(name, rrtype)
        status = getattr(answer, "status", "tempfail")
        if status == "ok":
            found.extend(_address_of(r) for r in _records(answer))
        elif status == "tempfail":
            temporary = rrtype
        elif status == "nxdomain":
            return [], LookupFailure("bounced", "5.4.4", f"Host or domain name not found. Name service error "
                                     f"for name={name} type={rrtype}: Host not found")
    if found:
        return found, None
    if temporary:
        return [], LookupFailure("deferred", "4.4.3", f"Host or domain name not found. Name service error "
                                 f"for name={name} type={temporary}: Host not found, try again")
    return [], LookupFailure("bounced", "5.4.4", f"Host or domain name not found. Name service error for "
                             f"name={name} type={last_type}: Host found but no data record of requested type")


async def resolve_targets(nexthop: Nexthop, default_port: int, resolver, *, address_limit: int = 5,
                          family_pref: str = "any", randomize: bool = True,
                          rng: random.Random | None = None) -> tuple[list[Target], LookupFailure | None]:
    port = nexthop.port or default_port
    if nexthop.kind == "unix":
        return [Target(nexthop.host, nexthop.host, 0, "unix")], None
    host = nexthop.host
    if _is_address(host):
        address = host.removeprefix("ipv6:")
        return [Target(address, address, port)], None
    rng = rng or random.Random()
    try:
        hosts: list[str] = [host]
        if nexthop.use_mx:
            answer = await resolver.lookup(host, "MX")
            status = getattr(answer, "status", "tempfail")
            if status == "tempfail":
                return [], LookupFailure("deferred", "4.4.3", f"Host or domain name not found. Name service "
                                         f"error for name={host} type=MX: Host not found, try again")
            if status == "nxdomain":
                return [], LookupFailure("bounced", "5.4.4", f"Host or domain name not found. Name service "
                                         f"error for name={host} type=MX: Host not found")
            pairs = _mx_pairs(_records(answer)) if status == "ok" else []
            if pairs:
                if len(pairs) == 1 and pairs[0][1] in ("", "."):   # RFC 7505 null MX
                    return [], LookupFailure("bounced", "5.1.10", f"Domain {host} does not accept mail (nullMX)")
                groups: dict[int, list[str]] = {}
                for preference, exchange in pairs:
                    groups.setdefault(preference, []).append(exchange)
                hosts = []
                for preference in sorted(groups):   # RFC 5321 §5.1: lowest preference first
                    members = groups[preference]
                    if randomize:
                        rng.shuffle(members)
                    hosts.extend(members)
        targets: list[Target] = []
        failure: LookupFailure | None = None
        for name in hosts:
            addresses, problem = await _addresses(resolver, name, family_pref)
            if problem is not None:
                failure = failure if failure and failure.status == "deferred" else problem
            targets.extend(Target(name, address, port) for address in addresses)
            if len(targets) >= address_limit > 0:
                break
        if address_limit > 0:
            targets = targets[:address_limit]
        return targets, (None if targets else failure)
    except Exception as exc:   # a resolver bug or network error: try again later
        return [], LookupFailure("deferred", "4.4.3", f"Host or domain name not found. Name service error "
                                 f"for name={host} type=MX: {exc}")
