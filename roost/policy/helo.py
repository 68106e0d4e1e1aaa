"""HELO/EHLO restrictions (postconf(5)): reject_invalid_helo_hostname,
reject_non_fqdn_helo_hostname, reject_unknown_helo_hostname.

Replies as Postfix 3.7 writes them (observed):
  501 5.5.2 <a..b>: Helo command rejected: Invalid name          (invalid_hostname_reject_code)
  501 5.5.2 <[999.1.1.1]>: Helo command rejected: invalid ip address
  504 5.5.2 <foo>: Helo command rejected: need fully-qualified hostname   (non_fqdn_reject_code)
  450 4.7.1 <foo.example>: Helo command rejected: Host not found (unknown_hostname_reject_code)
A name is valid (Postfix valid_hostname/valid_hostaddr) when it is an address literal
`[1.2.3.4]` / `[IPv6:...]` holding a valid address, a dotted-quad address, or labels of
letters, digits, `-` and `_` (no empty label, none over 63 characters, none starting or
ending with `-`, at most 255 characters, not all-numeric; one trailing dot allowed). A bare address `1.2.3.4` is valid
but not fully qualified; an address literal is both.

Invariants: no DNS for invalid names or address literals.
Security: the HELO name is client data, only ever compared and looked up.
"""

from __future__ import annotations

import ipaddress
import re

from roost.net.dns import NXDOMAIN, NODATA, TEMPFAIL
from roost.policy.check import Check, Scope, restriction
from roost.policy.parse import Item
from roost.policy.result import DUNNO

_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?\Z")


def address_literal(name: str) -> str | None:
    """The address inside `[...]` (`IPv6:` prefix removed); a name starting with `[` is
    always taken as an address literal, valid or not, as Postfix does."""
    if name.startswith("["):
        inner = name[1:-1] if name.endswith("]") else name[1:] + "?"
        return inner[5:] if inner.lower().startswith("ipv6:") else inner
    return None


def valid_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def valid_hostname(name: str) -> bool:
    if name.endswith("."):  # one trailing dot is the root: allowed, as Postfix does
        name = name[:-1]
    if not name or len(name) > 255:
        return False
    labels = name.split(".")
    if not all(label and len(label) <= 63 and _LABEL.match(label) for label in labels):
        return False
    return not all(label.isdigit() for label in labels)


def valid_helo(name: str) -> bool:
    literal = address_literal(name)
    if literal is not None:
        return valid_address(literal)
    return valid_hostname(name) or (valid_address(name) and ":" not in name)


def is_fqdn_helo(name: str) -> bool:
    if address_literal(name) is not None:
        return True
    if valid_address(name):
        return False
    return "." in name.strip(".")


@restriction("reject_invalid_helo_hostname")
async def reject_invalid_helo(check: Check, item: Item, scope: Scope) -> object:
    name = check.state.helo_name
    if name is None or valid_helo(name):
        return DUNNO
    detail = "invalid ip address" if name.startswith("[") else "Invalid name"
    return check.reject(check.settings.int("invalid_hostname_reject_code"), "5.5.2",
                        f"<{name}>: Helo command rejected: {detail}")


@restriction("reject_non_fqdn_helo_hostname")
async def reject_non_fqdn_helo(check: Check, item: Item, scope: Scope) -> object:
    name = check.state.helo_name
    if name is None or is_fqdn_helo(name):
        return DUNNO
    return check.reject(check.settings.int("non_fqdn_reject_code"), "5.5.2",
                        f"<{name}>: Helo command rejected: need fully-qualified hostname")


@restriction("reject_unknown_helo_hostname")
async def reject_unknown_helo(check: Check, item: Item, scope: Scope) -> object:
    name = check.state.helo_name
    if name is None or address_literal(name) is not None or not valid_hostname(name):
        return DUNNO
    statuses = []
    for rrtype in ("A", "AAAA", "MX"):
        answer = await check.policy.resolver.lookup(name, rrtype)
        if answer.found:
            return DUNNO
        statuses.append(answer.status)
    text = f"<{name}>: Helo command rejected: Host not found"
    if TEMPFAIL in statuses and not all(s in (NXDOMAIN, NODATA) for s in statuses):
        return check.tempfail("unknown_helo_hostname_tempfail_action", 450, "4.7.1", text)
    return check.reject(check.settings.int("unknown_hostname_reject_code"), "4.7.1", text)
