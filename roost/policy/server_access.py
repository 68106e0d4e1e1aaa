"""Access checks on the DNS servers of a name (postconf(5)): check_{client,reverse_client_hostname,
helo,sender,recipient}_{a,mx,ns}_access type:table.

The name is the verified client name, the PTR name, the HELO name, or the domain of the
sender/recipient address. The hosts checked are:
  _a_access   the name itself (its A and AAAA addresses);
  _mx_access  its MX hosts; without MX records the name itself (the implicit MX, RFC 5321 §5.1);
  _ns_access  its NS hosts; without NS records those of the nearest parent that has some.
Each host is looked up as a host name (access(5) domain search order), then each of its
addresses (address search order); the first result found decides, with the usual access
actions and the reply naming the original subject (`<a@b>: Sender address rejected: ...`).
As Postfix requires, an OK result is not allowed here (it would let a listed server vouch for
any domain): it is ignored with a warning, and DUNNO is the way to exempt a host.

Invariants: at most MAX_HOSTS hosts and their addresses are consulted per check; DNS
failures simply skip the host (no decision from missing data).
Security: DNS data is only ever a lookup key.
"""

from __future__ import annotations

from roost.policy.access import apply_result, parent_matches
from roost.policy.check import Check, Scope, restriction
from roost.policy.parse import Item
from roost.policy.result import DUNNO
from roost.tables.access import address_prefix_keys, domain_keys, parse_access_result, search

MAX_HOSTS = 10
FAMILIES = ("client", "reverse_client_hostname", "helo", "sender", "recipient")
KINDS = ("a", "mx", "ns")


def _subject(check: Check, family: str) -> tuple[str, Scope] | None:
    state = check.state
    if family == "client":
        if state.client_name == "unknown":
            return None
        return state.client_name, Scope("client", state.namaddr, "Client host")
    if family == "reverse_client_hostname":
        name = state.reverse_client_name
        return (name, Scope("client", f"{name}[{state.client_address}]", "Client host")) if name != "unknown" else None
    if family == "helo":
        name = state.helo_name
        return (name, Scope("helo", name, "Helo command")) if name and not name.startswith("[") else None
    raw = state.sender if family == "sender" else state.recipient
    if not raw:
        return None
    address = check.policy.internal(raw)
    domain = address.rpartition("@")[2] if "@" in address else ""
    if not domain or domain.startswith("["):
        return None
    reply_class = "Sender address" if family == "sender" else "Recipient address"
    return domain, Scope(family, address, reply_class)


async def _hosts(check: Check, name: str, kind: str) -> list[str]:
    resolver = check.policy.resolver
    name = name.lower().rstrip(".")
    if kind == "a":
        return [name]
    if kind == "mx":
        answer = await resolver.lookup(name, "MX")
        if answer.found:
            return [record.split(None, 1)[-1].rstrip(".").lower() for record in answer.records][:MAX_HOSTS]
        return [name] if answer.status in ("nodata", "ok") else []
    labels = name.split(".")
    for start in range(len(labels) - 1):
        answer = await resolver.lookup(".".join(labels[start:]), "NS")
        if answer.found:
            return [record.rstrip(".").lower() for record in answer.records][:MAX_HOSTS]
        if answer.status == "tempfail":
            return []
    return []


async def _addresses(check: Check, host: str) -> list[str]:
    found: list[str] = []
    for rrtype in ("A", "AAAA"):
        answer = await check.policy.resolver.lookup(host, rrtype)
        if answer.found:
            found.extend(answer.records)
    return found[:MAX_HOSTS]


def _register(family: str, kind: str) -> None:
    name = f"check_{family}_{kind}_access"

    @restriction(name)
    async def server_access(check: Check, item: Item, scope: Scope) -> object:
        subject = _subject(check, family)
        if subject is None or not item.argument:
            return DUNNO
        domain, target = subject
        tables = [check.policy.table(item.argument)]
        parents = parent_matches(check.settings.get("parent_domain_matches_subdomains"))
        for host in await _hosts(check, domain, kind):
            keys = [domain_keys(host, parents)] + [address_prefix_keys(a) for a in await _addresses(check, host)]
            for key_list in keys:
                found = search(tables, key_list)
                if found is None:
                    continue
                result = parse_access_result(found[1], found[0])
                if result.action == "OK":
                    check.warn(f"{item.argument}: {found[0]}: use of OK in {name} is not allowed")
                    continue
                verdict = await apply_result(check, result, target)
                if verdict is not DUNNO:
                    return verdict
        return DUNNO


for _family in FAMILIES:
    for _kind in KINDS:
        _register(_family, _kind)
