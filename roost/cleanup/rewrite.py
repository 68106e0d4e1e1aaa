"""Address rewriting in cleanup: trivial-rewrite's local-context qualification, canonical(5)
and virtual(5) maps, and the bcc maps (postconf(5) myorigin, append_at_myorigin,
append_dot_mydomain, canonical_maps, sender_canonical_maps, recipient_canonical_maps,
canonical_classes, sender_canonical_classes, recipient_canonical_classes, virtual_alias_maps,
virtual_alias_recursion_limit, virtual_alias_expansion_limit, always_bcc, sender_bcc_maps,
recipient_bcc_maps, local_header_rewrite_clients, remote_header_rewrite_domain).

Qualification (context "local"): `user` -> `user@$myorigin` (append_at_myorigin), `user@host`
-> `user@host.$mydomain` (append_dot_mydomain, hosts without a dot); context "remote"
qualifies with remote_header_rewrite_domain, or not at all when it is empty. Envelope
addresses always use "local", header addresses the message's header context. The null
sender is never rewritten. Canonical mapping repeats (at most 100 times) until an address
maps to itself or is not found, taking the first result of a list, as Postfix's
cleanup_map11; virtual aliasing expands recursively into a list (cleanup_map1n): an address
that maps to itself is kept, a loop stops at the recursion limit.

Invariants: TableError propagates (the caller answers 451 4.3.0 and writes nothing).
Security: results are addresses only; nothing is executed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from roost.tables.address import map_address
from roost.tables.registry import open_table

CANONICAL_RECURSION = 100


class RewriteLoop(Exception):
    pass


def _open_all(references) -> list:
    return [open_table(ref) for ref in references]


@dataclass
class Rewriter:
    myorigin: str
    mydomain: str
    local_domains: frozenset
    append_at_myorigin: bool
    append_dot_mydomain: bool
    remote_domain: str
    recipient_delimiter: str
    propagate: tuple
    canonical: list
    sender_canonical: list
    recipient_canonical: list
    canonical_classes: frozenset
    sender_canonical_classes: frozenset
    recipient_canonical_classes: frozenset
    virtual: list
    recursion_limit: int
    expansion_limit: int
    always_bcc: str
    sender_bcc: list
    recipient_bcc: list

    @classmethod
    def from_settings(cls, settings) -> "Rewriter":
        myorigin = settings.get("myorigin").lower()
        local = {myorigin, settings.get("myhostname").lower(), "localhost"}
        for item in settings.list("mydestination"):
            if ":" not in item and "/" not in item:
                local.add(item.lower().rstrip("."))
        return cls(
            myorigin=myorigin, mydomain=settings.get("mydomain"), local_domains=frozenset(local),
            append_at_myorigin=settings.bool("append_at_myorigin"),
            append_dot_mydomain=settings.bool("append_dot_mydomain"),
            remote_domain=settings.get("remote_header_rewrite_domain"),
            recipient_delimiter=settings.get("recipient_delimiter"),
            propagate=settings.list("propagate_unmatched_extensions"),
            canonical=_open_all(settings.list("canonical_maps")),
            sender_canonical=_open_all(settings.list("sender_canonical_maps")),
            recipient_canonical=_open_all(settings.list("recipient_canonical_maps")),
            canonical_classes=frozenset(settings.list("canonical_classes")),
            sender_canonical_classes=frozenset(settings.list("sender_canonical_classes")),
            recipient_canonical_classes=frozenset(settings.list("recipient_canonical_classes")),
            virtual=_open_all(settings.list("virtual_alias_maps")),
            recursion_limit=max(1, _int(settings, "virtual_alias_recursion_limit", 1000)),
            expansion_limit=max(1, _int(settings, "virtual_alias_expansion_limit", 1000)),
            always_bcc=settings.get("always_bcc").strip(),
            sender_bcc=_open_all(settings.list("sender_bcc_maps")),
            recipient_bcc=_open_all(settings.list("recipient_bcc_maps")),
        )

    # ------------------------------------------------------------------ qualification
    def qualify(self, address: str, context: str = "local") -> str:
        if not address:
            return address
        local, at, domain = address.rpartition("@")
        if not at:
            if context == "local":
                return f"{address}@{self.myorigin}" if self.append_at_myorigin and self.myorigin else address
            return f"{address}@{self.remote_domain}" if self.remote_domain else address
        if domain and "." not in domain and not domain.startswith("[") and self.mydomain:
            if (context == "local" and self.append_dot_mydomain) or (context == "remote" and self.remote_domain):
                return f"{local}@{domain}.{self.mydomain}"
        return address

    def is_local_domain(self, domain: str) -> bool:
        domain = domain.lower().rstrip(".")
        if domain in self.local_domains:
            return True
        if domain.startswith("[") and domain.endswith("]"):
            try:
                return ipaddress.ip_address(domain[1:-1].removeprefix("IPv6:")).is_loopback
            except ValueError:
                return False
        return False

    # ------------------------------------------------------------------ canonical
    def _map11(self, tables: list, address: str, table_class: str) -> str:
        for _ in range(CANONICAL_RECURSION):
            domain = address.rpartition("@")[2]
            found = map_address(tables, address, recipient_delimiter=self.recipient_delimiter,
                                propagate_unmatched_extensions=self.propagate, table_class=table_class,
                                domain_is_local=self.is_local_domain(domain) if domain else True)
            if found is None or not found.addresses:
                return address
            new = self.qualify(found.addresses[0])
            if new.lower() == address.lower():
                return new
            address = new
        raise RewriteLoop(f"canonical mapping loop for {address}")

    def canonical_sender(self, address: str, kind: str = "envelope_sender") -> str:
        if not address:
            return address
        if self.sender_canonical and kind in self.sender_canonical_classes:
            address = self._map11(self.sender_canonical, address, "canonical")
        if self.canonical and kind in self.canonical_classes:
            address = self._map11(self.canonical, address, "canonical")
        return address

    def canonical_recipient(self, address: str, kind: str = "envelope_recipient") -> str:
        if not address:
            return address
        if self.recipient_canonical and kind in self.recipient_canonical_classes:
            address = self._map11(self.recipient_canonical, address, "canonical")
        if self.canonical and kind in self.canonical_classes:
            address = self._map11(self.canonical, address, "canonical")
        return address

    # ------------------------------------------------------------------ virtual
    def virtual_expand(self, address: str) -> list[str]:
        """The recipients `address` becomes through virtual_alias_maps (itself when unmapped)."""
        if not self.virtual:
            return [address]
        out: list[str] = []
        self._expand(address, 0, out, [])
        return out

    def _expand(self, address: str, depth: int, out: list[str], path: list[str]) -> None:
        if len(out) >= self.expansion_limit:
            raise RewriteLoop("unreasonable virtual_alias_maps map expansion size for " + address)
        if depth >= self.recursion_limit:
            raise RewriteLoop("unreasonable virtual_alias_maps map nesting for " + address)
        domain = address.rpartition("@")[2]
        found = map_address(self.virtual, address, recipient_delimiter=self.recipient_delimiter,
                            propagate_unmatched_extensions=self.propagate, table_class="virtual",
                            domain_is_local=self.is_local_domain(domain) if domain else True)
        if found is None or not found.addresses:
            if address not in out:
                out.append(address)
            return
        for result in found.addresses:
            result = self.qualify(result)
            if result.lower() == address.lower() or result.lower() in path:
                if result not in out:  # maps to itself: deliver here
                    out.append(result)
                continue
            self._expand(result, depth + 1, out, path + [address.lower()])

    # ------------------------------------------------------------------ bcc
    def sender_bcc_for(self, sender: str) -> str | None:
        return self._first(self.sender_bcc, sender)

    def recipient_bcc_for(self, recipient: str) -> str | None:
        return self._first(self.recipient_bcc, recipient)

    def _first(self, tables: list, address: str) -> str | None:
        if not tables or not address:
            return None
        domain = address.rpartition("@")[2]
        found = map_address(tables, address, recipient_delimiter=self.recipient_delimiter,
                            propagate_unmatched_extensions=(), table_class="bcc",
                            domain_is_local=self.is_local_domain(domain) if domain else True)
        return self.qualify(found.addresses[0]) if found and found.addresses else None


def _int(settings, name: str, default: int) -> int:
    try:
        value = settings.get(name)
        return int(value) if value else default
    except (ValueError, KeyError):
        return default
