"""Where a recipient goes: Postfix trivial-rewrite's resolve step (transport, nexthop).

Implements ADDRESS_CLASS_README and transport(5) as Postfix 3.7 documents them:

- `transport_maps` first: the full address (and `user@domain` without the
  `recipient_delimiter` extension), then the domain, then its parents as `.parent` keys
  (or plain parent names when parent_domain_matches_subdomains lists transport_maps), then
  `*`. A result is `transport:nexthop`; an empty transport keeps the address class's
  transport, an empty nexthop the class's nexthop (transport(5) "RESULT FORMAT").
- else the address class of the domain (roost.resolve.classes, which owns the domain
  lists): local (`mydestination`, or no domain at all) →
  `local_transport`; virtual alias (`virtual_alias_domains`) → `error:5.1.1 User unknown in
  virtual alias table` (aliasing already happened in cleanup); virtual mailbox
  (`virtual_mailbox_domains`) → `virtual_transport`; relay (`relay_domains`) →
  `relay_transport`; anything else → `default_transport`, with `relayhost` as the nexthop
  when it is set. A transport value may carry its own nexthop (`local:$myhostname`,
  `lmtp:unix:private/dovecot-lmtp`, `smtp:[relay]:587`).

Invariants: pure (apart from table lookups), never raises: a table failure resolves to the
`retry` transport so the message is deferred, as Postfix defers on a lookup error. Routes
are remembered (per domain, or per address with transport_maps): for good when nothing they
depend on can change, else for RELOAD_INTERVAL, so a changed table is seen at most one
table-check interval later than its own lookups see it.
Security: a recipient address never names a file or command here; nexthops come from the
configuration and its tables only.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics
from roost.resolve.classes import AddressResolver
from roost.tables.access import domain_keys, parent_matches, search, split_extension
from roost.tables import base as table_base
from roost.tables.base import TableError
from roost.tables.registry import open_table

LOCAL, VIRTUAL_ALIAS, VIRTUAL_MAILBOX, RELAY, DEFAULT = (
    "local", "virtual_alias", "virtual_mailbox", "relay", "default")
VIRTUAL_ALIAS_ERROR = "5.1.1 User unknown in virtual alias table"
ROUTES_LIMIT = 4096  # domains (or addresses) whose route a Router remembers


@dataclass(frozen=True)
class Route:
    transport: str  # master.cf service name: local, virtual, smtp, relay, lmtp, error, discard, retry
    nexthop: str    # domain, [host]:port, unix:/path, inet:host:port, or the error text
    address_class: str


def split_transport(value: str) -> tuple[str, str]:
    """`transport:nexthop` → (transport, nexthop); either part may be empty."""
    transport, _, nexthop = value.strip().partition(":")
    return transport.strip(), nexthop.strip()


def domain_of(address: str) -> str:
    localpart, at, domain = address.rpartition("@")
    return domain.lower().rstrip(".") if at else ""


class Router:
    """Resolves recipients with one main.cf's settings (one per queue-manager process)."""

    def __init__(self, settings, diags: Diagnostics | None = None):
        self.settings = settings
        diags = diags if diags is not None else Diagnostics()
        parents = settings.get("parent_domain_matches_subdomains")
        self.transport_parents = parent_matches(parents, "transport_maps")
        self.delimiter = settings.get("recipient_delimiter")
        self.transport_maps = [open_table(ref, diags) for ref in settings.list("transport_maps")]
        self.classes = AddressResolver(settings)
        # Routes are remembered: per domain (per address when transport_maps is set, whose
        # keys are addresses). Settings never change; tables do, so while any table takes
        # part an answer is kept for one table-check interval only (roost.tables.base
        # RELOAD_INTERVAL: as long again as a table itself may take to see its file change).
        classes = self.classes
        lists = (classes.mydestination, classes.virtual_alias_domains,
                 classes.virtual_mailbox_domains, classes.relay_domains)
        self._static = not self.transport_maps and not any(match_list.uses_tables for match_list in lists)
        self._routes: dict[str, tuple[Route, float]] = {}

    def address_class(self, domain: str) -> str:
        return self.classes.classify(domain) if domain else LOCAL

    def class_route(self, address_class: str, domain: str) -> tuple[str, str]:
        get = self.settings.get
        if address_class == LOCAL:
            return _with_default_nexthop(get("local_transport"), get("myhostname"))
        if address_class == VIRTUAL_ALIAS:
            return "error", VIRTUAL_ALIAS_ERROR
        if address_class == VIRTUAL_MAILBOX:
            return _with_default_nexthop(get("virtual_transport"), domain)
        # relay and default: the transport's own nexthop, else relayhost, else the domain
        # (postconf(5) relay_transport, default_transport)
        nexthop = get("relayhost").strip() or domain
        name = "relay_transport" if address_class == RELAY else "default_transport"
        return _with_default_nexthop(get(name), nexthop)

    def transport_keys(self, address: str, domain: str) -> list[tuple[str, bool]]:
        keys: list[tuple[str, bool]] = [(address.lower(), True)]
        localpart = address.rpartition("@")[0]
        user, extension = split_extension(localpart, self.delimiter)
        if extension and domain:
            keys.append((f"{user}@{domain}".lower(), False))
        if domain:
            keys += domain_keys(domain, self.transport_parents, full=False)
        keys.append(("*", False))
        return keys

    def resolve(self, address: str) -> Route:
        domain = domain_of(address)
        key = address.lower() if self.transport_maps else domain
        routes = self._routes
        found = routes.get(key)
        now = time.monotonic()
        if found is not None and now < found[1]:
            return found[0]
        route = self._resolve(address, domain)
        if route.transport != "retry":   # a lookup failure is never remembered
            if len(routes) >= ROUTES_LIMIT:
                routes.clear()
            routes[key] = (route, math.inf if self._static else now + table_base.RELOAD_INTERVAL)
        return route

    def _resolve(self, address: str, domain: str) -> Route:
        try:
            address_class = self.address_class(domain)
            transport, nexthop = self.class_route(address_class, domain)
            if self.transport_maps:
                found = search(self.transport_maps, self.transport_keys(address, domain))
                if found is not None:
                    mapped_transport, mapped_nexthop = split_transport(found[1])
                    transport = mapped_transport or transport
                    nexthop = mapped_nexthop or nexthop
        except TableError as exc:
            return Route("retry", f"4.3.0 lookup error: {exc}", DEFAULT)
        return Route(transport, nexthop, address_class)


def _with_default_nexthop(value: str, nexthop: str) -> tuple[str, str]:
    transport, own = split_transport(value)
    return transport, own or nexthop
