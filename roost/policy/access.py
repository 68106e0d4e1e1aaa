"""check_client_access, check_reverse_client_hostname_access, check_helo_access,
check_sender_access, check_recipient_access, check_sasl_access, check_etrn_access and the
access(5) actions they return (search orders in roost.tables.access).

Actions (access(5); replies as Postfix 3.7 writes them, observed):
  OK, all-numeric        permit (this list ends)
  REJECT [text]          554 5.7.1 <name>: Class rejected: text|Access denied (access_map_reject_code)
  DEFER [text]           450 4.7.1 <name>: Class rejected: text|Access denied (access_map_defer_code)
  4NN/5NN [X.Y.Z] text   that code; the enhanced code given, else X.7.1
  DEFER_IF_REJECT / DEFER_IF_PERMIT [text]   450 4.7.1 ..., armed like the generic restrictions
  DUNNO                  next restriction
  HOLD / DISCARD / FILTER / REDIRECT / PREPEND / BCC   recorded as message actions, then
                         DUNNO (DISCARD: OK, and nothing else is checked for this message);
                         HOLD and DISCARD log `hold:`/`discard:` `<name>: Class text`, the text
                         defaulting to `triggers HOLD action`; FILTER, REDIRECT and BCC log
                         `<name>: Class triggers FILTER smtp:[host]`; PREPEND logs nothing
  WARN / INFO [text]     logged as `warn: ...: text` (the text alone, even empty), then DUNNO
  anything else          a restriction list, evaluated in place (`permit_mynetworks, reject`)

Invariants: every lookup goes through roost.tables (one cached, reload-watching instance per
reference, so rebuilt tables are seen within a second); TableError propagates to the list
runner (451 4.3.5 Server configuration error, naming the subject of the failed check).
Security: table results are configuration; client data is only ever a lookup key.
"""

from __future__ import annotations

import re

from roost.policy.check import Check, Scope, restriction
from roost.policy.parse import Item
from roost.policy.result import DUNNO, OK
from roost.tables.base import TableError
from roost.tables.access import (AccessResult, check_domain, check_mail_address, client_keys, domain_keys,
                                 parent_matches, parse_access_result, search)

_DSN = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|\Z)")


def _parent_style(check: Check) -> bool:
    return parent_matches(check.settings.get("parent_domain_matches_subdomains"))


def _tables(check: Check, item: Item):
    return [check.policy.table(item.argument)] if item.argument else []


def check_client(tables, hostname: str, address: str, *, parent_domain_matches_subdomains: bool):
    """access(5) client search; a client without a verified name is looked up as the name
    `unknown` first, as Postfix does (observed: an `unknown OK` entry matches it)."""
    keys = client_keys(hostname, address, parent_domain_matches_subdomains)
    if hostname == "unknown":
        keys = [("unknown", True)] + keys
    found = search(tables, keys)
    return None if found is None else parse_access_result(found[1], found[0])


def _lookup(function, target: Scope, *args, **kwargs):
    """Run an access search; a TableError carries the subject it was about (the reply names it)."""
    try:
        return function(*args, **kwargs)
    except TableError as error:
        error.scope = target  # type: ignore[attr-defined]
        raise


async def apply_result(check: Check, result: AccessResult | None, scope: Scope) -> object:
    if result is None:
        return DUNNO
    action, text = result.action, result.text
    settings = check.settings
    if action == "OK":
        return OK
    if action == "DUNNO":
        return DUNNO
    if action == "REJECT":
        return check.reject(settings.int("access_map_reject_code"), "5.7.1", scope.text(text or "Access denied"))
    if action == "DEFER":
        return check.reject(settings.int("access_map_defer_code"), "4.7.1", scope.text(text or "Access denied"))
    if action == "NUMERIC":
        code = result.code or 550
        dsn = f"{str(code)[0]}.7.1"
        found = _DSN.match(text)
        if found:
            dsn = f"{str(code)[0]}.{found.group(2)}.{found.group(3)}"
            text = text[found.end():]
        return check.reject(code, dsn, scope.text(text or "Access denied"))
    if action in ("DEFER_IF_REJECT", "DEFER_IF_PERMIT"):
        reply = check.make_reply(settings.int("access_map_defer_code"), "4.7.1",
                                 scope.text(text or "Service unavailable"))
        if action == "DEFER_IF_PERMIT":
            check.defer_if_permit = check.defer_if_permit or reply
        else:
            check.defer_if_reject = check.defer_if_reject or reply
        return DUNNO
    if action in ("HOLD", "DISCARD"):
        check.actions.append((action, text))
        check.log_lines.append(("info", check.log_text(
            action.lower(), None, f"<{scope.reply_name}>: {scope.reply_class} {text or f'triggers {action} action'}")))
        if action == "DISCARD":
            check.discarded = True
            return OK
        return DUNNO
    if action in ("FILTER", "REDIRECT", "PREPEND", "BCC"):
        check.actions.append((action, text))
        if action != "PREPEND":  # Postfix logs the others, not PREPEND (observed)
            check.log_lines.append(("info", check.log_text(
                action.lower(), None, f"<{scope.reply_name}>: {scope.reply_class} triggers {action} {text}")))
        return DUNNO
    if action in ("WARN", "INFO"):
        check.log_lines.append(("info", check.log_text(action.lower(), None, text)))
        return DUNNO
    return await check.run_text(text, scope)


@restriction("check_client_access")
async def check_client_access(check: Check, item: Item, scope: Scope) -> object:
    state = check.state
    target = Scope(scope.kind, state.namaddr, "Client host")
    result = _lookup(check_client, target, _tables(check, item), state.client_name, state.client_address,
                     parent_domain_matches_subdomains=_parent_style(check))
    return await apply_result(check, result, target)


@restriction("check_reverse_client_hostname_access")
async def check_reverse_client_access(check: Check, item: Item, scope: Scope) -> object:
    state = check.state
    name = f"{state.reverse_client_name}[{state.client_address}]"
    target = Scope(scope.kind, name, "Client host")
    result = _lookup(check_client, target, _tables(check, item), state.reverse_client_name, state.client_address,
                     parent_domain_matches_subdomains=_parent_style(check))
    return await apply_result(check, result, target)


@restriction("check_helo_access")
async def check_helo_access(check: Check, item: Item, scope: Scope) -> object:
    helo = check.state.helo_name
    if not helo:
        return DUNNO
    target = Scope(scope.kind, helo, "Helo command")
    result = _lookup(check_domain, target, _tables(check, item), helo,
                     parent_domain_matches_subdomains=_parent_style(check))
    return await apply_result(check, result, target)


async def _mail_access(check: Check, item: Item, scope: Scope, raw: str | None, reply_class: str) -> object:
    if raw is None:
        return DUNNO
    address = check.policy.internal(raw)
    target = Scope(scope.kind, address, reply_class)
    result = _lookup(check_mail_address, target, _tables(check, item), address,
                     parent_domain_matches_subdomains=_parent_style(check),
                     recipient_delimiter=check.settings.get("recipient_delimiter"),
                     null_lookup_key=check.settings.get("smtpd_null_access_lookup_key") or "<>")
    return await apply_result(check, result, target)


@restriction("check_sender_access")
async def check_sender_access(check: Check, item: Item, scope: Scope) -> object:
    return await _mail_access(check, item, scope, check.state.sender, "Sender address")


@restriction("check_recipient_access")
async def check_recipient_access(check: Check, item: Item, scope: Scope) -> object:
    return await _mail_access(check, item, scope, check.state.recipient, "Recipient address")


@restriction("check_sasl_access")
async def check_sasl_access(check: Check, item: Item, scope: Scope) -> object:
    login = check.state.sasl_username
    if not login:
        return DUNNO
    found = search(_tables(check, item), [(login, True)])
    result = None if found is None else parse_access_result(found[1], found[0])
    return await apply_result(check, result, Scope(scope.kind, check.state.namaddr, "Client host"))


@restriction("check_etrn_access")
async def check_etrn_access(check: Check, item: Item, scope: Scope) -> object:
    found = search(_tables(check, item), domain_keys(scope.reply_name.lower(), _parent_style(check)))
    result = None if found is None else parse_access_result(found[1], found[0])
    return await apply_result(check, result, scope)
