"""Sender login checks (postconf(5) smtpd_sender_login_maps, reject_sender_login_mismatch and
its reject_authenticated_/reject_known_/reject_unauthenticated_ variants; seed 002's setup).

smtpd_sender_login_maps maps a MAIL FROM address to the SASL login names that own it (a
list separated by commas and/or whitespace), searched like virtual(5): `user+ext@domain`,
`user@domain`, (`user+ext`, `user` for local domains), `@domain`.
  authenticated client, sender not owned by its login (unknown senders too, except with the
  "known" variant)        → 553 5.7.1 <a@b>: Sender address rejected: not owned by user NAME
  unauthenticated client, the sender has an owner
                          → 553 5.7.1 <a@b>: Sender address rejected: not logged in
(texts and codes observed from Postfix 3.7). The null sender is never checked. Without
smtpd_sasl_auth_enable these restrictions are ignored with Postfix's warning
"restriction `NAME' ignored: no SASL support".

Invariants: login names compare case-insensitively, as Postfix's strcasecmp does.
Security: this is what stops an authenticated user from sending as another user.
"""

from __future__ import annotations

from roost.policy.check import Check, Scope, restriction
from roost.policy.parse import Item
from roost.policy.result import DUNNO
from roost.tables.address import map_address

_MODES = {
    "reject_sender_login_mismatch": (True, True, False),
    "reject_authenticated_sender_login_mismatch": (True, False, False),
    "reject_known_sender_login_mismatch": (True, True, True),
    "reject_unauthenticated_sender_login_mismatch": (False, True, False),
}


def owners_of(check: Check, sender: str) -> list[str] | None:
    tables = check.policy.tables("smtpd_sender_login_maps")
    if not tables:
        return None
    local = check.policy.addresses.classify(sender.rpartition("@")[2]) == "local" if "@" in sender else True
    found = map_address(tables, sender, recipient_delimiter=check.settings.get("recipient_delimiter"),
                        domain_is_local=local)
    if found is None:
        return None
    return [name for name in found.raw.replace(",", " ").split() if name]


@restriction(*_MODES)
async def reject_login_mismatch(check: Check, item: Item, scope: Scope) -> object:
    check_authenticated, check_unauthenticated, known_only = _MODES[item.name]
    if not check.settings.bool("smtpd_sasl_auth_enable"):
        # Postfix 3.7 (observed): ignored, one warning per underlying restriction.
        names = (("reject_authenticated_sender_login_mismatch", "reject_unauthenticated_sender_login_mismatch")
                 if item.name == "reject_sender_login_mismatch" else (item.name,))
        for name in names:
            check.warn(f"restriction `{name}' ignored: no SASL support")
        return DUNNO
    state = check.state
    if state.sender is None or state.sender == "":
        return DUNNO
    sender = check.policy.internal(state.sender)
    owners = owners_of(check, sender)
    if state.sasl_username:
        if not check_authenticated or (owners is None and known_only):
            return DUNNO
        login = state.sasl_username.lower()
        if owners is not None and any(owner.lower() == login for owner in owners):
            return DUNNO
        return check.reject(553, "5.7.1",
                            f"<{sender}>: Sender address rejected: not owned by user {state.sasl_username}")
    if check_unauthenticated and owners is not None:
        return check.reject(553, "5.7.1", f"<{sender}>: Sender address rejected: not logged in")
    return DUNNO
