"""Recipient validation: is an address listed for its address class? (postconf(5)
smtpd_reject_unlisted_recipient / reject_unlisted_recipient, reject_unlisted_sender,
local_recipient_maps, virtual_alias_maps, virtual_mailbox_maps, relay_recipient_maps,
LOCAL_RECIPIENT_README).

The address is resolved first (roost.resolve: trick forms undone, class decided). An address
found in canonical_maps, (recipient|sender)_canonical_maps or virtual_alias_maps is valid in
every class. Otherwise, by class:
  local            local_recipient_maps (empty: every local address is valid); the default
                   `proxy:unix:passwd.byname $alias_maps` looks system users up with pwd
  virtual_alias    nothing else: unknown   → "User unknown in virtual alias table"
  virtual_mailbox  virtual_mailbox_maps    → "User unknown in virtual mailbox table"
  relay            relay_recipient_maps (empty: valid) → "User unknown in relay recipient table"
  default          always valid here
Keys follow virtual(5): `user+ext@domain`, `user@domain`, then for local domains `user+ext`,
`user`, and `@domain` (roost.tables.address).
Replies (observed from Postfix 3.7): `550 5.1.1 <x@y>: Recipient address rejected: User
unknown in local recipient table`, for senders `550 5.1.0 <x@y>: Sender address rejected:
...`; the codes are unknown_local_recipient_reject_code, unknown_virtual_alias_reject_code,
unknown_virtual_mailbox_reject_code and unknown_relay_recipient_reject_code.

Invariants: TableError propagates (the list runner answers 451 4.3.5); pure otherwise.
Security: lookups use the resolved address, so `user%ext@local` is judged as `user@ext`.
"""

from __future__ import annotations

import pwd

from roost.tables.address import map_address
from roost.tables.base import LookupTable

_TABLE_NAMES = {
    "local": ("local_recipient_maps", "unknown_local_recipient_reject_code", "local recipient table"),
    "virtual_alias": (None, "unknown_virtual_alias_reject_code", "virtual alias table"),
    "virtual_mailbox": ("virtual_mailbox_maps", "unknown_virtual_mailbox_reject_code", "virtual mailbox table"),
    "relay": ("relay_recipient_maps", "unknown_relay_recipient_reject_code", "relay recipient table"),
}
PASSWD_TABLES = ("unix:passwd.byname", "proxy:unix:passwd.byname")


class PasswdTable(LookupTable):
    """unix:passwd.byname: the system users (getpwnam), keys without a domain only, folded to
    lowercase as Postfix folds fixed-string lookup keys (`Root@local` finds root)."""

    def __init__(self) -> None:
        super().__init__("unix", "passwd.byname")

    def _get(self, key: str) -> str | None:
        if "@" in key or not key:
            return None
        try:
            entry = pwd.getpwnam(key.lower())
        except (KeyError, ValueError):
            return None
        return ":".join(str(part) for part in entry)


def found_in(tables: list[LookupTable], address: str, settings, local: bool,
             delimiter: str | None = None) -> bool:
    """`delimiter`: recipient_delimiter when the caller has read it already."""
    if not tables:
        return False
    if delimiter is None:
        delimiter = settings.get("recipient_delimiter")
    return map_address(tables, address, recipient_delimiter=delimiter, domain_is_local=local) is not None


# the maps whose keys make an address valid in every class, for senders and recipients
_REWRITING = {True: ("canonical_maps", "sender_canonical_maps", "virtual_alias_maps"),
              False: ("canonical_maps", "recipient_canonical_maps", "virtual_alias_maps")}


def unlisted_reply(check, address: str, *, sender: bool) -> tuple[int, str, str] | None:
    """(code, dsn, text) when `address` is unknown in its class, else None."""
    policy = check.policy
    settings = policy.settings
    resolved = check.resolve(address)
    entry = _TABLE_NAMES.get(resolved.address_class)
    if entry is None:
        return None
    table_parameter, code_parameter, table_label = entry
    local = resolved.address_class == "local"
    delimiter = None
    for parameter in _REWRITING[bool(sender)]:
        tables = policy.tables(parameter)
        if tables:
            if delimiter is None:
                delimiter = settings.get("recipient_delimiter")
            if found_in(tables, resolved.address, settings, local, delimiter):
                return None
    if table_parameter is not None:
        tables = policy.tables(table_parameter)
        if not tables:
            return None
        if found_in(tables, resolved.address, settings, local, delimiter):
            return None
    reply_class = "Sender address" if sender else "Recipient address"
    return (settings.int(code_parameter), "5.1.0" if sender else "5.1.1",
            f"<{address}>: {reply_class} rejected: User unknown in {table_label}")
