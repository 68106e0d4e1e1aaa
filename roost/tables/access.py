"""access(5) search order and typed results, for check_{client,helo,sender,recipient}_access.

Clients (HOST NAME/ADDRESS PATTERNS): the hostname, then its parent domains — `b.example.com`,
`example.com`, `com` when `smtpd_access_maps` is listed in parent_domain_matches_subdomains,
otherwise `.b.example.com`, `.example.com`, `.com` — then the address, then shorter prefixes:
`1.2.3.4`, `1.2.3`, `1.2`, `1`; IPv6 by truncating the last `:group` of the compressed form.
Senders/recipients (EMAIL ADDRESS PATTERNS): `user+ext@domain`, `user@domain`, the domain and
its parents (same parent style), `user+ext@`, `user@`; the null sender is looked up as
smtpd_null_access_lookup_key (`<>`).
As in Postfix, only the first (full) key of each search goes to every table; the partial
keys (parents, prefixes, `user@`) are asked of fixed-string tables only (hash, texthash,
inline...), never of regexp/pcre/cidr tables, which see the whole string.
Results: OK, REJECT, DEFER, DEFER_IF_REJECT, DEFER_IF_PERMIT, DUNNO, HOLD, DISCARD, FILTER,
REDIRECT, PREPEND, WARN, INFO, BCC, `4NN text`, `5NN text`, all-numeric (= OK), and anything
else as a restriction list (e.g. `permit_mynetworks, reject`).

Invariants: pure functions over tables; TableError from a table propagates to the caller,
which must defer (Postfix: 451 4.3.0 temporary lookup failure).
Security: the client hostname is only used as a lookup key; verify it before trusting it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from roost.tables.base import LookupTable
from roost.tables.source import WHITESPACE, split_word

ACTIONS = ("OK", "REJECT", "DEFER", "DEFER_IF_REJECT", "DEFER_IF_PERMIT", "DUNNO", "HOLD", "DISCARD",
           "FILTER", "REDIRECT", "PREPEND", "WARN", "INFO", "BCC")
_NUMERIC_REPLY = re.compile(r"^([45])(\d\d)(?:[ \t\r\n\v\f]+(.*))?$", re.S)


@dataclass(frozen=True)
class AccessResult:
    action: str            # one of ACTIONS, "NUMERIC" (4NN/5NN) or "RESTRICTIONS"
    text: str = ""         # reply text, header, transport:destination, address, restriction list
    code: int | None = None  # the NN reply code of a NUMERIC result
    key: str = ""          # the lookup key that matched
    raw: str = ""          # the table's value as found


def parse_access_result(value: str, key: str = "") -> AccessResult:
    stripped = value.strip(WHITESPACE)
    word, rest = split_word(stripped)
    upper = word.upper()
    numeric = _NUMERIC_REPLY.match(stripped)
    if numeric:
        return AccessResult("NUMERIC", (numeric.group(3) or "").strip(), int(numeric.group(1) + numeric.group(2)),
                            key, value)
    if stripped.isascii() and stripped.isdigit():
        return AccessResult("OK", "", None, key, value)  # access(5): all-numerical means OK
    if upper in ACTIONS:
        return AccessResult(upper, rest, None, key, value)
    return AccessResult("RESTRICTIONS", stripped, None, key, value)


def _fixed(table: LookupTable) -> bool:
    return getattr(table, "fixed_keys", True)


def search(tables: Sequence[LookupTable], keys: Iterable[tuple[str, bool]]) -> tuple[str, str] | None:
    """First (key, value) found; each key is (text, full) — partial keys skip pattern tables."""
    for key, full in keys:
        for table in tables:
            if not full and not _fixed(table):
                continue
            value = table.lookup(key)
            if value is not None:
                return key, value
    return None


def domain_keys(domain: str, parent_matches_subdomains: bool, full: bool = True) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    name = domain
    first = full
    while name:
        keys.append((name, first))
        first = False
        dot = name.find(".", 1)
        if dot < 0:
            break
        name = name[dot + 1:] if parent_matches_subdomains else name[dot:]
    return keys


def address_prefix_keys(address: str) -> list[tuple[str, bool]]:
    """`1.2.3.4`, `1.2.3`, `1.2`, `1` (or IPv6 groups) — the first key full, the rest partial."""
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        parsed = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return [(text, True)]
    separator = "." if parsed.version == 4 else ":"
    text = str(parsed) if parsed.version == 6 else text
    keys = [(text, True)]
    while separator in text:
        text = text[:text.rfind(separator)]
        if text:
            keys.append((text, False))
    return keys


def client_keys(hostname: str | None, address: str | None, parent_matches_subdomains: bool) -> list[tuple[str, bool]]:
    keys: list[tuple[str, bool]] = []
    if hostname and hostname != "unknown":
        keys += domain_keys(hostname.lower().rstrip("."), parent_matches_subdomains)
    if address:
        keys += address_prefix_keys(address)
    return keys


def split_extension(localpart: str, recipient_delimiter: str) -> tuple[str, str]:
    """(user, extension with its delimiter) on the first delimiter character found."""
    if not recipient_delimiter:
        return localpart, ""
    positions = [localpart.find(c) for c in recipient_delimiter if localpart.find(c) > 0]
    if not positions:
        return localpart, ""
    cut = min(positions)
    return localpart[:cut], localpart[cut:]


def mail_address_keys(address: str, parent_matches_subdomains: bool, recipient_delimiter: str = "",
                      null_lookup_key: str = "<>") -> list[tuple[str, bool]]:
    if address == "":
        return [(null_lookup_key, True)]
    localpart, at, domain = address.rpartition("@")
    if not at:
        localpart, domain = address, ""
    user, extension = split_extension(localpart, recipient_delimiter)
    keys = [(address, True)]
    if extension and domain:
        keys.append((f"{user}@{domain}", False))
    if domain:
        keys += domain_keys(domain.lower().rstrip("."), parent_matches_subdomains, full=False)
    keys.append((f"{localpart}@", False))
    if extension:
        keys.append((f"{user}@", False))
    return keys


def parent_matches(parent_domain_matches_subdomains: Iterable[str] | str, feature: str = "smtpd_access_maps") -> bool:
    names = (parent_domain_matches_subdomains.replace(",", " ").split()
             if isinstance(parent_domain_matches_subdomains, str) else list(parent_domain_matches_subdomains))
    return feature in names


def check_client(tables: Sequence[LookupTable], hostname: str | None, address: str | None, *,
                 parent_domain_matches_subdomains: bool) -> AccessResult | None:
    found = search(tables, client_keys(hostname, address, parent_domain_matches_subdomains))
    return None if found is None else parse_access_result(found[1], found[0])


def check_mail_address(tables: Sequence[LookupTable], address: str, *, parent_domain_matches_subdomains: bool,
                       recipient_delimiter: str = "", null_lookup_key: str = "<>") -> AccessResult | None:
    keys = mail_address_keys(address, parent_domain_matches_subdomains, recipient_delimiter, null_lookup_key)
    found = search(tables, keys)
    return None if found is None else parse_access_result(found[1], found[0])


def check_domain(tables: Sequence[LookupTable], domain: str, *,
                 parent_domain_matches_subdomains: bool) -> AccessResult | None:
    """check_helo_access and similar: a bare domain name with its parents."""
    found = search(tables, domain_keys(domain.lower().rstrip("."), parent_domain_matches_subdomains))
    return None if found is None else parse_access_result(found[1], found[0])
