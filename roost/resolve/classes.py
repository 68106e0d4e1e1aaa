"""Address classes (Postfix ADDRESS_CLASS_README) and the resolver's "trick form" handling.

`AddressResolver(settings).classify(domain)` gives the class of a domain, first match wins:
  local            mydestination, or an address literal `[ip]` of inet_interfaces /
                   proxy_interfaces (a bare ip too when resolve_numeric_domain = yes)
  virtual_alias    virtual_alias_domains
  virtual_mailbox  virtual_mailbox_domains
  relay            relay_domains
  default          anything else
`resolve(address)` first canonicalizes an address without a domain the way
trivial-rewrite's "local" rewriting does (`site!user` → `user@site` with swap_bangpath,
`user%site` → `user@site` with allow_percent_hack, else `@$myorigin` is appended, then
`.$mydomain` when append_dot_mydomain = yes), then, as long as the domain is local, strips
it and looks inside the local part again — this is what makes the relay tricks fail:
  `user%ext@local`   allow_percent_hack (default yes): the rightmost `%` becomes `@`, so the
                     address resolves to `user@ext` (default class: relaying);
  `"user@ext"@local` resolve_dequoted_address (default yes): the local part is looked at
                     unquoted, so `user@ext` is visible and resolved; with `no` the quoted
                     local part stays one local user;
  `@local:user@ext`  the source route is stripped before (roost.resolve.address), leaving
                     `user@ext`;
  `user@ext@local`   the local domain is stripped, `user@ext` remains;
  `ext!user@local`   swap_bangpath (default yes): `ext!user` becomes `user@ext`.
So every trick form to a non-local destination resolves to class "default" and meets
reject_unauth_destination like a plain `user@ext`. When a rewrite is switched off, the
operator stays in the local part and `Resolved.routed` is true: the relay check refuses
routed addresses in every class (observed with Postfix 3.7: allow_percent_hack = no still
gives "Relay access denied" for `user%ext@local`).

Invariants: resolve terminates (each step removes a character; bounded by MAX_STEPS); table
errors (TableError) propagate so the caller defers.
Security: the relay decision is taken on the fully resolved address, never on the
domain part alone.
"""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass

from roost.config import netinfo
from roost.resolve.address import split_address
from roost.resolve.domains import MatchList, TableOpener
from roost.tables.registry import open_table

CLASSES = ("local", "virtual_alias", "virtual_mailbox", "relay", "default")
MAX_STEPS = 100


@dataclass(frozen=True)
class Resolved:
    address: str         # where the address really points, after the trick forms are undone
    domain: str
    address_class: str   # one of CLASSES
    steps: tuple[str, ...] = ()  # each rewrite applied ("percent_hack", "bangpath", "dequoted")

    @property
    def routed(self) -> bool:
        """Sender-specified routing left in the local part (`@`, `%` or `!`): such an
        address is never an authorized destination, whatever its class (postconf(5)
        reject_unauth_destination: "contains no sender-specified routing")."""
        local = self.address.rpartition("@")[0] if "@" in self.address else self.address
        return any(char in local for char in "@%!")


def parent_style(settings, feature: str) -> bool:
    return feature in settings.list("parent_domain_matches_subdomains")


def _literal(domain: str) -> str | None:
    if domain.startswith("[") and domain.endswith("]"):
        text = domain[1:-1]
        if text.lower().startswith("ipv6:"):
            text = text[5:]
        return text
    return None


class AddressResolver:
    """Domain lists of one Settings, opened once (tables cached by roost.tables)."""

    def __init__(self, settings, opener: TableOpener | None = None) -> None:
        self.settings = settings
        default_type = settings.get("default_database_type") or "hash"
        self.opener = opener or (lambda ref: open_table(ref, default_type=default_type))

        def build(name: str) -> MatchList:
            return MatchList.build(name, settings.list(name), parent_style(settings, name), self.opener)

        self.mydestination = build("mydestination")
        self.virtual_alias_domains = build("virtual_alias_domains")
        self.virtual_mailbox_domains = build("virtual_mailbox_domains")
        self.relay_domains = build("relay_domains")
        self._own_addresses: set | None = None
        # Settings never change: read the flags once, not at every address.
        self.flags = {name: settings.bool(name) for name in (
            "resolve_numeric_domain", "swap_bangpath", "allow_percent_hack", "resolve_dequoted_address",
            "append_dot_mydomain", "resolve_null_domain")}
        self.myorigin = settings.get("myorigin")
        self.mydomain = settings.get("mydomain")

    # ------------------------------------------------------------------ classes
    def own_addresses(self) -> set:
        if self._own_addresses is None:
            found: set = set()
            try:
                interfaces = list(self.settings.list("inet_interfaces"))
                protocols = list(self.settings.list("inet_protocols"))
                found.update(a.ip for a in netinfo.interface_addresses(interfaces, protocols))
            except (netinfo.NetinfoError, OSError, ValueError):
                pass
            for item in self.settings.list("proxy_interfaces"):
                try:
                    found.add(ipaddress.ip_address(item.strip("[]")))
                except ValueError:
                    pass
            self._own_addresses = found
        return self._own_addresses

    def is_local(self, domain: str) -> bool:
        literal = _literal(domain)
        if literal is None and self.flags["resolve_numeric_domain"]:
            literal = domain
        if literal is not None:
            try:
                return ipaddress.ip_address(literal) in self.own_addresses()
            except ValueError:
                if _literal(domain) is not None:
                    return False
        return self.mydestination.match_domain(domain)

    def classify(self, domain: str) -> str:
        if self.is_local(domain):
            return "local"
        if self.virtual_alias_domains.match_domain(domain):
            return "virtual_alias"
        if self.virtual_mailbox_domains.match_domain(domain):
            return "virtual_mailbox"
        if self.relay_domains.match_domain(domain):
            return "relay"
        return "default"

    # ------------------------------------------------------------------ resolution
    def canonicalize(self, address: str) -> tuple[str, list[str]]:
        """trivial-rewrite's "local" rewriting: an address without a domain gets one
        (bang path, percent hack or @$myorigin); a domain without a dot gets .$mydomain when
        append_dot_mydomain = yes."""
        steps: list[str] = []
        if address == "":
            return address, steps
        if "@" not in address:
            rewritten = self._undo_trick(address, steps)
            address = rewritten if rewritten is not None else f"{address}@{self.myorigin}"
        local, domain = split_address(address)
        if (self.flags["append_dot_mydomain"] and domain and "." not in domain
                and _literal(domain) is None and self.mydomain):
            address = f"{local}@{domain}.{self.mydomain}"
        return address, steps

    def _undo_trick(self, local: str, steps: list[str]) -> str | None:
        if self.flags["swap_bangpath"] and "!" in local:
            site, _, user = local.partition("!")
            if site and user:
                steps.append("bangpath")
                return f"{user}@{site}"
        if self.flags["allow_percent_hack"] and "%" in local:
            user, _, site = local.rpartition("%")
            if user and site:
                steps.append("percent_hack")
                return f"{user}@{site}"
        return None

    def resolve(self, address: str) -> Resolved:
        current, steps = self.canonicalize(address)
        for _ in range(MAX_STEPS):
            local, domain = split_address(current)
            domain = domain.rstrip(".")
            if not domain or not self.is_local(domain):
                break
            if "@" in local and self.flags["resolve_dequoted_address"]:
                steps.append("dequoted")
                current = local
                continue
            rewritten = self._undo_trick(local, steps)
            if rewritten is None:
                break
            current = rewritten
        local, domain = split_address(current)
        domain = domain.rstrip(".").lower()
        klass = self.classify(domain) if domain else ("local" if self.flags["resolve_null_domain"] else "default")
        return Resolved(current, domain, klass, tuple(steps))


_resolvers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def resolver_for(settings) -> AddressResolver:
    found = _resolvers.get(settings)
    if found is None:
        found = AddressResolver(settings)
        _resolvers[settings] = found
    return found


def classify(domain: str, settings) -> str:
    """"local" | "virtual_alias" | "virtual_mailbox" | "relay" | "default" for `domain`."""
    return resolver_for(settings).classify(domain.lower().rstrip("."))


def resolve(address: str, settings) -> Resolved:
    """Resolve an internal-form address (roost.resolve.address.internal_form) to its class."""
    return resolver_for(settings).resolve(address)
