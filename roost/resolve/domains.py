"""Postfix "match lists" of domains and of hosts/networks (postconf(5): mydestination,
relay_domains, virtual_*_domains, mynetworks; Postfix's match_list(3) behaviour).

A list is made of items separated by commas/whitespace:
- `name` — matches that domain (case-insensitive); also every subdomain when the parameter
  is listed in parent_domain_matches_subdomains (relay_domains and mynetworks by default,
  mydestination and virtual_*_domains not);
- `.name` — matches subdomains of name;
- `/file/name` — the words of that file are items (a `#` starts a comment);
- `type:table` — the name (then, in parent style, each parent, and `.parent`) is looked up;
  any answer is a match;
- `!item` — a match of the item makes the whole list answer "no" (first match wins);
- host lists also take addresses and networks: `1.2.3.4`, `1.2.3.0/24`, `[::1]/128`,
  `[2001:db8::1]`.

Invariants: pure over the given tables and files; a table that cannot be consulted raises
TableError to the caller (Postfix defers); an unreadable /file is treated as empty plus a
warning in `problems`.
Security: file paths and table references come from configuration only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Sequence

from roost.tables.base import LookupTable

TableOpener = Callable[[str], LookupTable]


def parent_names(domain: str) -> list[str]:
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(1, len(parts))]


def _network(item: str):
    text = item
    prefix = None
    if "/" in text:
        text, _, prefix = text.partition("/")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    try:
        if prefix is None:
            return ipaddress.ip_network(address)
        return ipaddress.ip_network(f"{address}/{prefix}", strict=True)
    except ValueError:
        return "bad"


DOMAIN_ANSWERS_LIMIT = 4096


@dataclass
class MatchList:
    """One parsed list parameter; `match_domain` / `match_host` answer it."""

    items: tuple[str, ...]
    parent_style: bool
    opener: TableOpener
    problems: list[str] = field(default_factory=list)
    _networks: dict = field(default_factory=dict, repr=False)  # item → parsed network, None or "bad"
    # match_domain / match_host answers of a list without tables (then pure functions)
    _domain_answers: dict | None = field(default=None, repr=False, compare=False)
    _host_answers: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, name: str, values: Sequence[str], parent_style: bool, opener: TableOpener) -> "MatchList":
        items: list[str] = []
        problems: list[str] = []
        for value in values:
            items.extend(_expand_item(name, value, problems))
        return cls(tuple(items), parent_style, opener, problems)

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def uses_tables(self) -> bool:
        """Whether an item names a lookup table (whose answers may change while running)."""
        return any(_is_table(item.lstrip("!")) for item in self.items)

    # ------------------------------------------------------------------ domains
    def match_domain(self, domain: str) -> bool:
        answers = self._domain_answers
        if answers is None:
            if self.uses_tables:
                return self._match_domain(domain)  # tables keep their own answer cache
            answers = self._domain_answers = {}
        found = answers.get(domain)
        if found is None:
            if len(answers) >= DOMAIN_ANSWERS_LIMIT:
                answers.clear()
            found = answers[domain] = self._match_domain(domain)
        return found

    def _match_domain(self, domain: str) -> bool:
        name = domain.lower().rstrip(".")
        if not name:
            return False
        for item in self.items:
            negated = item.startswith("!")
            pattern = item[1:] if negated else item
            if self._domain_item(pattern, name):
                return not negated
        return False

    def _domain_item(self, pattern: str, name: str) -> bool:
        if _is_table(pattern):
            table = self.opener(pattern)
            if table.lookup(name) is not None:
                return True
            for parent in parent_names(name):
                key = parent if self.parent_style else "." + parent
                if table.fixed_keys and table.lookup(key) is not None:
                    return True
            return False
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("."):
            return name.endswith(pattern)
        if name == pattern:
            return True
        return self.parent_style and name.endswith("." + pattern)

    # ------------------------------------------------------------------ hosts
    def match_host(self, hostname: str, address: str) -> bool:
        """mynetworks-style match of a client (verified hostname or "unknown", address)."""
        answers = self._host_answers
        if answers is None:
            if self.uses_tables:
                return self._match_host(hostname, address)
            answers = self._host_answers = {}
        key = (hostname, address)
        found = answers.get(key)
        if found is None:
            if len(answers) >= DOMAIN_ANSWERS_LIMIT:
                answers.clear()
            problems = len(self.problems)
            found = self._match_host(hostname, address)
            if len(self.problems) != problems:  # a bad pattern is reported at every match
                return found
            answers[key] = found
        return found

    def _match_host(self, hostname: str, address: str) -> bool:
        try:
            client = ipaddress.ip_address(address.split("%")[0]) if address else None
        except ValueError:
            client = None
        if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped:
            client = client.ipv4_mapped
        name = hostname.lower().rstrip(".") if hostname and hostname != "unknown" else ""
        for item in self.items:
            negated = item.startswith("!")
            pattern = item[1:] if negated else item
            if self._host_item(pattern, name, client, address):
                return not negated
        return False

    def _host_item(self, pattern: str, name: str, client, address: str) -> bool:
        if _is_table(pattern):
            table = self.opener(pattern)
            if name and self._domain_item(pattern, name):
                return True
            return bool(address) and table.lookup(address) is not None
        if pattern not in self._networks:
            self._networks[pattern] = _network(pattern)
        network = self._networks[pattern]
        if network == "bad":
            self.problems.append(f"bad net/mask pattern: \"{pattern}\"")
            return False
        if network is not None:
            return client is not None and client.version == network.version and client in network
        return bool(name) and self._domain_item(pattern, name)


def _is_table(item: str) -> bool:
    kind, sep, rest = item.partition(":")
    return bool(sep) and bool(rest) and kind.isalnum() and not kind.startswith("[")


def _expand_item(name: str, value: str, problems: list[str], depth: int = 0) -> list[str]:
    negated = value.startswith("!")
    body = value[1:] if negated else value
    if body.startswith("/") and depth < 5:
        try:
            with open(body, encoding="utf-8", errors="surrogateescape") as handle:
                text = handle.read()
        except OSError as error:
            problems.append(f"{name}: open {body}: {error.strerror}")
            return []
        words: list[str] = []
        for line in text.splitlines():
            line = line.split("#", 1)[0]
            for word in line.replace(",", " ").split():
                words.extend(_expand_item(name, ("!" if negated else "") + word, problems, depth + 1))
        return words
    return [value]
