"""Restriction lists (postconf(5) smtpd_*_restrictions, SMTPD_ACCESS_README) to items.

A list value is split like every Postfix list (commas and/or whitespace; `{...}` stays one
item). Restrictions that take an argument (`check_client_access hash:/etc/postfix/access`,
`reject_rbl_client zen.example`) consume the next word. A bare `type:table` is Postfix's
legacy implicit `check_<list>_access`. Names are case-insensitive. Old names map to the
current ones (reject_unknown_client → reject_unknown_client_hostname, ...).
Restrictions Postfix has but roost cannot honour yet (UNSUPPORTED: address verification,
policy services, DNS allowlists) become Items with `error` set, so they fail closed with a
warning naming what is missing.
A name that is neither a restriction, nor a restriction class (smtpd_restriction_classes), nor
a table, becomes an Item with `error` set: evaluating it gives Postfix's
`451 4.3.5 Server configuration error` and a warning, as Postfix does lazily.

`missing_working_relay_restriction` is Postfix's start-up check: smtpd_relay_restrictions
and smtpd_recipient_restrictions together need one of reject_unauth_destination,
defer_unauth_destination, reject, defer, defer_if_permit or check_relay_domains, or smtpd
refuses to run (fatal).

Invariants: parse never raises; every word of the input ends up in exactly one Item.
Security: table references are opened only through roost.tables (fixed set of types).
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.config.settings import split_list

WITH_ARGUMENT = frozenset({
    "check_client_access", "check_reverse_client_hostname_access", "check_client_a_access",
    "check_reverse_client_hostname_a_access", "check_reverse_client_hostname_mx_access",
    "check_reverse_client_hostname_ns_access",
    "check_client_mx_access", "check_client_ns_access", "check_helo_access", "check_helo_a_access",
    "check_helo_mx_access", "check_helo_ns_access", "check_sender_access", "check_sender_a_access",
    "check_sender_mx_access", "check_sender_ns_access", "check_recipient_access",
    "check_recipient_a_access", "check_recipient_mx_access", "check_recipient_ns_access",
    "check_etrn_access", "check_sasl_access", "check_ccert_access", "check_policy_service",
    "reject_rbl_client", "reject_rhsbl_client", "reject_rhsbl_reverse_client", "reject_rhsbl_helo",
    "reject_rhsbl_sender", "reject_rhsbl_recipient", "permit_dnswl_client", "permit_rhswl_client",
    "sleep",
})

WITHOUT_ARGUMENT = frozenset({
    "permit", "reject", "defer", "defer_if_permit", "defer_if_reject", "warn_if_reject",
    "permit_mynetworks", "permit_sasl_authenticated", "permit_inet_interfaces",
    "reject_unauth_destination", "defer_unauth_destination", "permit_auth_destination",
    "check_relay_domains", "permit_mx_backup", "reject_unauth_pipelining", "reject_non_fqdn_helo_hostname",
    "reject_invalid_helo_hostname", "reject_unknown_helo_hostname", "reject_non_fqdn_sender",
    "reject_non_fqdn_recipient", "reject_unknown_sender_domain", "reject_unknown_recipient_domain",
    "reject_unlisted_recipient", "reject_unlisted_sender", "reject_sender_login_mismatch",
    "reject_authenticated_sender_login_mismatch", "reject_known_sender_login_mismatch",
    "reject_unauthenticated_sender_login_mismatch", "reject_unknown_client_hostname",
    "reject_unknown_reverse_client_hostname", "reject_multi_recipient_bounce",
    "reject_plaintext_session", "reject_unknown_forward_client_hostname",
    "permit_tls_clientcerts", "permit_tls_all_clientcerts",
    "reject_unverified_sender", "reject_unverified_recipient",
})

# Postfix restrictions roost knows but cannot honour yet: using one fails closed with this
# warning and 451 4.3.5 (never silently permits).
UNSUPPORTED = {
    "reject_unverified_sender": "address verification (verify(8))",
    "reject_unverified_recipient": "address verification (verify(8))",
    "check_policy_service": "policy delegation (SMTPD_POLICY_README)",
}

ALIASES = {
    "reject_unknown_client": "reject_unknown_client_hostname",
    "reject_unknown_hostname": "reject_unknown_helo_hostname",
    "reject_invalid_hostname": "reject_invalid_helo_hostname",
    "reject_non_fqdn_hostname": "reject_non_fqdn_helo_hostname",
    "check_recipient_maps": "reject_unlisted_recipient",
}

RELAY_WORKING = frozenset({"reject_unauth_destination", "defer_unauth_destination", "reject", "defer",
                           "defer_if_permit", "check_relay_domains"})

IMPLICIT_ACCESS = {"client": "check_client_access", "helo": "check_helo_access",
                   "sender": "check_sender_access", "recipient": "check_recipient_access",
                   "relay": "check_recipient_access", "data": "check_recipient_access",
                   "end_of_data": "check_recipient_access", "etrn": "check_etrn_access"}


@dataclass(frozen=True)
class Item:
    name: str               # restriction name (lowercase), class name, or the bad word
    argument: str | None = None
    is_class: bool = False
    error: str | None = None  # warning text when the item is unusable


def looks_like_table(word: str) -> bool:
    kind, sep, rest = word.partition(":")
    return bool(sep and rest and kind and kind.replace("_", "").isalnum())


def parse_restrictions(value: str | tuple[str, ...], classes: frozenset[str] = frozenset(),
                       kind: str = "recipient") -> tuple[Item, ...]:
    words = list(split_list(value) if isinstance(value, str) else value)
    items: list[Item] = []
    index = 0
    while index < len(words):
        word = words[index]
        index += 1
        lower = ALIASES.get(word.lower(), word.lower())
        if lower in UNSUPPORTED:
            if lower in WITH_ARGUMENT:
                index += 1
            items.append(Item(lower, None, error=f'unsupported smtpd restriction: "{lower}" '
                                                 f"(roost does not implement {UNSUPPORTED[lower]} yet)"))
        elif lower in WITH_ARGUMENT:
            argument = words[index] if index < len(words) else None
            index += 1
            if lower.startswith("check_") and lower != "check_policy_service" and not (
                    argument and looks_like_table(argument)):
                items.append(Item(lower, argument, error=f'restriction {lower}: bad argument "{argument or lower}": '
                                                         f"need maptype:mapname"))
            elif argument is None:
                items.append(Item(lower, None, error=f'restriction "{lower}" requires an argument'))
            else:
                items.append(Item(lower, argument))
        elif lower in WITHOUT_ARGUMENT:
            items.append(Item(lower))
        elif word in classes:
            items.append(Item(word, is_class=True))
        elif looks_like_table(word):
            items.append(Item(IMPLICIT_ACCESS.get(kind, "check_recipient_access"), word))
        else:
            items.append(Item(word, error=f'unknown smtpd restriction: "{word}"'))
    return tuple(items)


def missing_working_relay_restriction(relay: tuple[Item, ...], recipient: tuple[Item, ...]) -> str | None:
    """Postfix's fatal start-up error text, or None when the configuration is usable."""
    if any(item.name in RELAY_WORKING for item in (*relay, *recipient)):
        return None
    return ("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, specify at least "
            "one working instance of: reject_unauth_destination, defer_unauth_destination, reject, "
            "defer, defer_if_permit or check_relay_domains")
