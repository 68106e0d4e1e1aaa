"""Client restrictions (postconf(5)): permit_mynetworks, permit_sasl_authenticated,
permit_tls_clientcerts / permit_tls_all_clientcerts / check_ccert_access (no client
certificates are requested yet, so these never match),
permit_inet_interfaces, reject_unknown_client_hostname, reject_unknown_reverse_client_hostname,
reject_unknown_forward_client_hostname, reject_rbl_client, reject_rhsbl_* (DNSBL, RFC 5782),
permit_dnswl_client / permit_rhswl_client (DNS allowlists: OK when listed, but never where
that would override reject_unauth_destination).

Replies as Postfix 3.7 writes them (observed):
  450 4.7.25 Client host rejected: cannot find your hostname, [1.2.3.4]
  450 4.7.1 Client host rejected: cannot find your reverse hostname, [1.2.3.4]
  554 5.7.1 Service unavailable; Client host [1.2.3.4] blocked using bl.example[; TXT reason]
(the codes are unknown_client_reject_code and maps_rbl_reject_code; the text is
default_rbl_reply's). A DNSBL lookup that fails temporarily is ignored (DUNNO), as Postfix does.
`domain=127.0.0.2` or `domain=127.0.0.[2..4]` only counts listed answers that match.

Invariants: DNS goes through the policy's resolver only; names are compared lowercase.
Security: mynetworks decides relaying; it matches the verified client name only, never the
unverified PTR name.
"""

from __future__ import annotations

import ipaddress
import re

from roost.net.dns import OK as DNS_OK, TEMPFAIL
from roost.policy.check import Check, Scope, restriction
from roost.policy.parse import Item
from roost.policy.result import DUNNO, OK


@restriction("permit_mynetworks")
async def permit_mynetworks(check: Check, item: Item, scope: Scope) -> object:
    state = check.state
    return OK if check.policy.mynetworks.match_host(state.client_name, state.client_address) else DUNNO


@restriction("permit_sasl_authenticated")
async def permit_sasl_authenticated(check: Check, item: Item, scope: Scope) -> object:
    return OK if check.state.sasl_username else DUNNO


@restriction("permit_inet_interfaces")
async def permit_inet_interfaces(check: Check, item: Item, scope: Scope) -> object:
    try:
        address = ipaddress.ip_address(check.state.client_address)
    except ValueError:
        return DUNNO
    return OK if address in check.policy.addresses.own_addresses() else DUNNO


@restriction("reject_unknown_client_hostname", "reject_unknown_forward_client_hostname")
async def reject_unknown_client(check: Check, item: Item, scope: Scope) -> object:
    state = check.state
    if state.client_name != "unknown":
        return DUNNO
    if item.name == "reject_unknown_forward_client_hostname" and state.reverse_client_name == "unknown":
        return DUNNO
    return check.reject(check.settings.int("unknown_client_reject_code"), "4.7.25",
                        f"Client host rejected: cannot find your hostname, [{state.client_address}]")


@restriction("reject_unknown_reverse_client_hostname")
async def reject_unknown_reverse_client(check: Check, item: Item, scope: Scope) -> object:
    state = check.state
    if state.reverse_client_name != "unknown":
        return DUNNO
    return check.reject(check.settings.int("unknown_client_reject_code"), "4.7.1",
                        f"Client host rejected: cannot find your reverse hostname, [{state.client_address}]")


def _reversed_query(address: str) -> str | None:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if parsed.version == 4:
        return ".".join(reversed(address.split(".")))
    return ".".join(reversed(parsed.exploded.replace(":", "")))


def _filter_matches(pattern: str, answer: str) -> bool:
    """`127.0.0.2` or `127.0.0.[2..4]` / `127.0.0.[2;4]` octet patterns (postconf(5) reject_rbl_client)."""
    want = re.findall(r"\[[^\]]*\]|[^.\[]+", pattern)
    got = answer.split(".")
    if len(want) != 4 or len(got) != 4:
        return pattern == answer
    for spec, octet in zip(want, got):
        if spec.startswith("[") and spec.endswith("]"):
            allowed: set[str] = set()
            for part in spec[1:-1].split(";"):
                bounds = re.fullmatch(r"(\d+)\.\.(\d+)", part)
                if bounds:
                    allowed.update(str(n) for n in range(int(bounds.group(1)), int(bounds.group(2)) + 1))
                else:
                    allowed.add(part)
            if octet not in allowed:
                return False
        elif spec != octet:
            return False
    return True


async def _listed(check: Check, query: str, domain: str, pattern: str) -> bool | None:
    """Whether `query.domain` has an A record (matching `pattern`); None on a DNS failure."""
    answer = await check.policy.resolver.lookup(f"{query}.{domain}", "A")
    if answer.status == TEMPFAIL:
        return None
    if answer.status != DNS_OK or not answer.records:
        return False
    return not pattern or any(_filter_matches(pattern, record) for record in answer.records)


async def _dnsbl(check: Check, query: str, domain_spec: str, what: str, rbl_class: str) -> object:
    domain, _, pattern = domain_spec.partition("=")
    answer = await check.policy.resolver.lookup(f"{query}.{domain}", "A")
    if answer.status == TEMPFAIL:
        check.warn(f"{query}.{domain}: RBL lookup error: Host or domain name not found. "
                   f"Name service error for name={query}.{domain} type=A: Host not found, try again")
        return DUNNO
    if answer.status != DNS_OK or not answer.records:
        return DUNNO
    if pattern and not any(_filter_matches(pattern, record) for record in answer.records):
        return DUNNO
    reason = ""
    txt = await check.policy.resolver.lookup(f"{query}.{domain}", "TXT")
    if txt.status == DNS_OK and txt.records:
        reason = f"; {txt.records[0]}"
    return check.reject(check.settings.int("maps_rbl_reject_code"), "5.7.1",
                        f"Service unavailable; {rbl_class} [{what}] blocked using {domain}{reason}")


@restriction("reject_rbl_client")
async def reject_rbl_client(check: Check, item: Item, scope: Scope) -> object:
    query = _reversed_query(check.state.client_address)
    if query is None or not item.argument:
        return DUNNO
    return await _dnsbl(check, query, item.argument, check.state.client_address, "Client host")


@restriction("reject_rhsbl_client", "reject_rhsbl_reverse_client", "reject_rhsbl_helo",
             "reject_rhsbl_sender", "reject_rhsbl_recipient")
async def reject_rhsbl(check: Check, item: Item, scope: Scope) -> object:
    state = check.state
    if item.name == "reject_rhsbl_client":
        name, rbl_class = state.client_name, "Client host"
    elif item.name == "reject_rhsbl_reverse_client":
        name, rbl_class = state.reverse_client_name, "Unverified Client host"
    elif item.name == "reject_rhsbl_helo":
        name, rbl_class = state.helo_name or "", "Helo command"
    elif item.name == "reject_rhsbl_sender":
        name, rbl_class = check.policy.internal(state.sender or "").rpartition("@")[2], "Sender address"
    else:
        name, rbl_class = check.policy.internal(state.recipient or "").rpartition("@")[2], "Recipient address"
    if not name or name == "unknown" or name.startswith("[") or not item.argument:
        return DUNNO
    return await _dnsbl(check, name.lower().rstrip("."), item.argument, name, rbl_class)


@restriction("permit_tls_clientcerts", "permit_tls_all_clientcerts", "check_ccert_access")
async def client_certificates(check: Check, item: Item, scope: Scope) -> object:
    """roost's smtpd does not ask for client certificates (smtpd_tls_ask_ccert), so there is
    never a verified certificate: DUNNO, as Postfix answers a client that presents none."""
    return DUNNO


async def _allowlisted(check: Check, query: str | None, domain_spec: str) -> object:
    if not query or not domain_spec:
        return DUNNO
    # postconf(5): ignored where it would override reject_unauth_destination.
    if check.state.recipient is not None:
        from roost.policy.relay import authorized_destination
        if authorized_destination(check) is False:
            return DUNNO
    domain, _, pattern = domain_spec.partition("=")
    return OK if await _listed(check, query, domain, pattern or "127.0.[0..255].[0..255]") else DUNNO


@restriction("permit_dnswl_client")
async def permit_dnswl_client(check: Check, item: Item, scope: Scope) -> object:
    """Accept a client whose reversed address is listed under the DNS allowlist domain
    (default answer filter 127.0.[0..255].[0..255]); never for an unauthorized destination."""
    return await _allowlisted(check, _reversed_query(check.state.client_address), item.argument or "")


@restriction("permit_rhswl_client")
async def permit_rhswl_client(check: Check, item: Item, scope: Scope) -> object:
    """Accept a client whose verified host name is listed under the allowlist domain."""
    name = check.state.client_name
    return await _allowlisted(check, None if name == "unknown" else name.lower().rstrip("."), item.argument or "")
