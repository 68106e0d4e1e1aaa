"""Sender and recipient address restrictions (postconf(5)): reject_non_fqdn_sender,
reject_non_fqdn_recipient, reject_unknown_sender_domain, reject_unknown_recipient_domain,
reject_unlisted_sender, reject_unlisted_recipient, reject_multi_recipient_bounce.

Replies as Postfix 3.7 writes them (observed or from smtpd_check's documented texts):
  504 5.5.2 <a>: Sender address rejected: need fully-qualified address (non_fqdn_reject_code)
  450 4.1.8 <a@b.example>: Sender address rejected: Domain not found  (unknown_address_reject_code)
  450 4.1.2 <x@b.example>: Recipient address rejected: Domain not found
  550 5.7.27 <a@b>: Sender address rejected: Domain b does not accept mail (nullMX)   (RFC 7505)
  556 5.1.10 <x@b>: Recipient address rejected: Domain b does not accept mail (nullMX)
  550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce
The domain checks skip the null sender, address literals and domains this host is the final
destination for (local, virtual alias, virtual mailbox classes). An MX lookup comes first; a
domain without MX needs an A or AAAA record (RFC 5321 §5.1). A temporary DNS failure applies
unknown_address_tempfail_action (default: defer_if_permit).

Invariants: the address checked is the one the client sent (internal form), not the resolved one.
Security: DNS answers only decide acceptance; they are never put in replies beyond the domain.
"""

from __future__ import annotations

from roost.net.dns import NXDOMAIN, NODATA, TEMPFAIL
from roost.policy.check import Check, Scope, restriction
from roost.policy.parse import Item
from roost.policy.recipients import unlisted_reply
from roost.policy.result import DUNNO
from roost.resolve.address import split_address

FINAL_CLASSES = ("local", "virtual_alias", "virtual_mailbox")


def _subject(check: Check, item: Item) -> tuple[str | None, str]:
    """(address in internal form or None, reply class) for a sender/recipient restriction."""
    if "sender" in item.name:
        raw = check.state.sender
        return (None if raw is None else check.policy.internal(raw)), "Sender address"
    raw = check.state.recipient
    return (None if raw is None else check.policy.internal(raw)), "Recipient address"


def is_fqdn_address(address: str) -> bool:
    local, domain = split_address(address)
    if "@" not in address or not domain:
        return False
    if domain.startswith("[") and domain.endswith("]"):
        return True
    return "." in domain.strip(".")


@restriction("reject_non_fqdn_sender", "reject_non_fqdn_recipient")
async def reject_non_fqdn(check: Check, item: Item, scope: Scope) -> object:
    address, reply_class = _subject(check, item)
    if not address or is_fqdn_address(address):
        return DUNNO
    return check.reject(check.settings.int("non_fqdn_reject_code"), "5.5.2",
                        f"<{address}>: {reply_class} rejected: need fully-qualified address")


@restriction("reject_unknown_sender_domain", "reject_unknown_recipient_domain")
async def reject_unknown_domain(check: Check, item: Item, scope: Scope) -> object:
    address, reply_class = _subject(check, item)
    if not address:
        return DUNNO
    resolved = check.resolve(address)
    domain = resolved.domain
    if not domain or domain.startswith("[") or resolved.address_class in FINAL_CLASSES:
        return DUNNO
    sender = reply_class.startswith("Sender")
    mx = await check.policy.resolver.lookup(domain, "MX")
    if mx.found:
        exchanges = [record.split(None, 1)[-1].rstrip(".") for record in mx.records]
        if exchanges == [""] or exchanges == ["."]:
            return check.reject(550 if sender else 556, "5.7.27" if sender else "5.1.10",
                                f"<{address}>: {reply_class} rejected: Domain {domain} "
                                f"does not accept mail (nullMX)")
        return DUNNO
    statuses = [mx.status]
    if mx.status != NXDOMAIN:
        for rrtype in ("A", "AAAA"):
            answer = await check.policy.resolver.lookup(domain, rrtype)
            if answer.found:
                return DUNNO
            statuses.append(answer.status)
    dsn = "4.1.8" if sender else "4.1.2"
    text = f"<{address}>: {reply_class} rejected: Domain not found"
    if TEMPFAIL in statuses and not all(s in (NXDOMAIN, NODATA) for s in statuses):
        return check.tempfail("unknown_address_tempfail_action", 450, dsn, text)
    return check.reject(check.settings.int("unknown_address_reject_code"), dsn, text)


@restriction("reject_unlisted_recipient", "reject_unlisted_sender")
async def reject_unlisted(check: Check, item: Item, scope: Scope) -> object:
    address, reply_class = _subject(check, item)
    if address is None or address == "":
        return DUNNO
    sender = reply_class.startswith("Sender")
    if not sender:
        check.recipient_checked = True
    reply = unlisted_reply(check, address, sender=sender)
    if reply is None:
        return DUNNO
    return check.reject(*reply)


@restriction("reject_multi_recipient_bounce")
async def reject_multi_recipient_bounce(check: Check, item: Item, scope: Scope) -> object:
    state = check.state
    # At RCPT recipient_count counts the recipients accepted before this one.
    multiple = state.recipient_count >= 1 if check.stage == "RCPT" else state.recipient_count > 1
    if state.sender != "" or not multiple:
        return DUNNO
    return check.reject(check.settings.int("multi_recipient_bounce_reject_code") or 550, "5.5.3",
                        f"<{scope.reply_name}>: {scope.reply_class} rejected: Multi-recipient bounce")

