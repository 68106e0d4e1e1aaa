"""virtual(5) / canonical(5) address lookups with recipient_delimiter and
propagate_unmatched_extensions.

Search order for `user+ext@domain` (TABLE SEARCH ORDER of virtual(5) and canonical(5)):
`user+ext@domain`, `user@domain`, then — only when the domain is local (the caller says so:
$myorigin, $mydestination, $inet_interfaces, $proxy_interfaces) — `user+ext`, `user`, and
finally `@domain`. Without an extension the extended keys are simply skipped. As in
Postfix, only the first key goes to regexp/pcre/cidr tables; the others are partial keys
asked of fixed-string tables only.
Results are comma-separated address lists. A result starting with `@` keeps the original
local part (`@example.com @example.net` renames a domain). When the match came from a key
without the extension and the table class (`virtual`, `canonical`) is listed in
propagate_unmatched_extensions, the extension is appended to each result's local part.

Invariants: pure over tables; TableError propagates so the caller defers the message.
Security: results are addresses only; nothing is executed or expanded here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

from roost.tables.access import search, split_extension
from roost.tables.base import LookupTable
from roost.tables.source import tokenize_address_list


@dataclass(frozen=True)
class AddressMapResult:
    addresses: tuple[str, ...]
    key: str          # the key that matched
    raw: str          # the table's value


def split_result_list(value: str) -> list[str]:
    """Comma-separated result addresses; commas inside quotes or comments do not split."""
    return list(_split_result_list(value))


@functools.lru_cache(maxsize=4096)  # pure; table values repeat from one message to the next
def _split_result_list(value: str) -> tuple[str, ...]:
    parts, current, depth, quoted = [], [], 0, False
    for index, char in enumerate(value):
        if char == '"' and (index == 0 or value[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")" and depth:
            depth -= 1
        if char == "," and not quoted and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return tuple(p for p in parts if p and tokenize_address_list(p))


def _with_extension(address: str, extension: str) -> str:
    local, at, domain = address.rpartition("@")
    if not at:
        return address + extension
    return f"{local}{extension}@{domain}"


def map_address(tables: Sequence[LookupTable], address: str, *, recipient_delimiter: str = "",
                propagate_unmatched_extensions: Sequence[str] = ("canonical", "virtual"),
                table_class: str = "virtual", domain_is_local: bool = False) -> AddressMapResult | None:
    """Look `address` up in virtual/canonical `tables`; None when no table has it."""
    localpart, at, domain = address.rpartition("@")
    if not at:
        localpart, domain = address, ""
    user, extension = split_extension(localpart, recipient_delimiter)
    keys: list[tuple[str, bool, bool]] = []  # (key, full, matched the extension)
    if domain:
        keys.append((address, True, True))
        if extension:
            keys.append((f"{user}@{domain}", False, False))
    if domain_is_local or not domain:
        if extension:
            keys.append((localpart, not domain, True))
        keys.append((user, not domain and not extension, not extension))
    if domain:
        keys.append((f"@{domain}", False, not extension))
    for key, full, kept_extension in keys:
        found = search(tables, [(key, full)])
        if found is None:
            continue
        addresses = []
        for result in split_result_list(found[1]):
            if result.startswith("@"):
                result = localpart + result if kept_extension else user + result
            if extension and not kept_extension and table_class in propagate_unmatched_extensions:
                result = _with_extension(result, extension)
            addresses.append(result)
        return AddressMapResult(tuple(addresses), key, found[1])
    return None
