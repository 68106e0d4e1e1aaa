"""The relay decision (postconf(5) reject_unauth_destination, defer_unauth_destination,
permit_auth_destination, check_relay_domains; ADDRESS_CLASS_README).

A recipient is an "authorized destination" when its resolved address (trick forms undone:
roost.resolve) belongs to the local, virtual alias, virtual mailbox or relay class and
carries no sender-specified routing (`@`, `%`, `!` left in its local part). Otherwise:
  reject_unauth_destination → 554 5.7.1 <x@ext>: Relay access denied  (relay_domains_reject_code)
  defer_unauth_destination  → 454 4.7.1 <x@ext>: Relay access denied  (observed: 454, fixed)
The reply names the recipient as the client sent it, in internal form (`"u@ext"@local` is
shown `<u@ext@local>`, `@local:u@ext` as `<u@ext>`), exactly as Postfix 3.7 does.
permit_mx_backup permits an authorized destination, or a domain whose MX list names this host
(an address of inet_interfaces/proxy_interfaces) but not as the best MX (Postfix ≥ 2.3), and
then only if every better MX host is in permit_mx_backup_networks when that is set.
check_relay_domains (obsolete) permits a client whose verified name is in relay_domains or an
authorized destination, and rejects the rest.

Invariants: without a recipient (e.g. in smtpd_client_restrictions at CONNECT with
smtpd_delay_reject = no) these restrictions answer DUNNO.
Security: the decision uses the fully resolved address, never the raw domain part, so
`user%ext@local`, `"user@ext"@local`, `user@ext@local` and `ext!user@local` cannot relay.
"""

from __future__ import annotations

import ipaddress

from roost.policy.check import Check, Scope, restriction
from roost.policy.parse import Item
from roost.policy.result import DUNNO, OK

AUTHORIZED = ("local", "virtual_alias", "virtual_mailbox", "relay")


def authorized_destination(check: Check) -> bool | None:
    """None without a recipient."""
    if check.state.recipient is None:
        return None
    resolved = check.resolve(check.policy.internal(check.state.recipient))
    return resolved.address_class in AUTHORIZED and not resolved.routed


def _denied(check: Check, code: int, dsn: str) -> object:
    address = check.policy.internal(check.state.recipient)
    return check.reject(code, dsn, f"<{address}>: Relay access denied")


@restriction("permit_auth_destination")
async def permit_auth_destination(check: Check, item: Item, scope: Scope) -> object:
    return OK if authorized_destination(check) else DUNNO


@restriction("reject_unauth_destination")
async def reject_unauth_destination(check: Check, item: Item, scope: Scope) -> object:
    if authorized_destination(check) is not False:
        return DUNNO
    return _denied(check, check.settings.int("relay_domains_reject_code"), "5.7.1")


@restriction("defer_unauth_destination")
async def defer_unauth_destination(check: Check, item: Item, scope: Scope) -> object:
    if authorized_destination(check) is not False:
        return DUNNO
    return _denied(check, 454, "4.7.1")


@restriction("check_relay_domains")
async def check_relay_domains(check: Check, item: Item, scope: Scope) -> object:
    if authorized_destination(check):
        return OK
    name = check.state.client_name
    if name != "unknown" and check.policy.addresses.relay_domains.match_domain(name):
        return OK
    if check.state.recipient is None:
        return DUNNO
    return _denied(check, check.settings.int("relay_domains_reject_code"), "5.7.1")


async def _mx_addresses(check: Check, host: str) -> set:
    found = set()
    for rrtype in ("A", "AAAA"):
        answer = await check.policy.resolver.lookup(host, rrtype)
        for record in answer.records if answer.found else ():
            try:
                found.add(ipaddress.ip_address(record))
            except ValueError:
                pass
    return found


@restriction("permit_mx_backup")
async def permit_mx_backup(check: Check, item: Item, scope: Scope) -> object:
    if check.state.recipient is None:
        return DUNNO
    resolved = check.resolve(check.policy.internal(check.state.recipient))
    if resolved.routed:
        return DUNNO
    if resolved.address_class in AUTHORIZED:
        return OK
    domain = resolved.domain
    if not domain or domain.startswith("["):
        return DUNNO
    answer = await check.policy.resolver.lookup(domain, "MX")
    if not answer.found:
        return DUNNO
    hosts = sorted((int(pref) if pref.isdigit() else 65535, name.rstrip(".").lower())
                   for pref, _, name in (record.partition(" ") for record in answer.records))
    own = check.policy.addresses.own_addresses()
    addresses = {name: await _mx_addresses(check, name) for _, name in hosts[:20]}
    ours = [pref for pref, name in hosts[:20] if addresses[name] & own]
    if not ours or ours[0] == hosts[0][0]:
        return DUNNO  # not an MX host at all, or the best one (we should be the final destination)
    networks = check.policy.mx_backup_networks
    if networks:
        for pref, name in hosts:
            if pref >= ours[0]:
                break
            if not addresses[name] or not all(networks.match_host("unknown", str(a)) for a in addresses[name]):
                return DUNNO
    return OK
