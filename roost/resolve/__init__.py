"""Address resolution: Postfix's address classes and trick-form handling (ADDRESS_CLASS_README).

`classify(domain, settings)` → "local" | "virtual_alias" | "virtual_mailbox" | "relay" |
"default"; `resolve(address, settings)` → Resolved (trick forms undone first, see
roost.resolve.classes); `internal_form(path)` / `external_form(address)` convert between the
RFC 5321 path a client sends and Postfix's unquoted internal form (roost.resolve.address).
The queue manager will extend this package with transport lookups.
Security: relay decisions must use `resolve(...)` (trick forms undone, `.routed`), never the
raw domain part of what the client sent.
"""

from roost.resolve.address import external_form, internal_form, split_address
from roost.resolve.classes import CLASSES, AddressResolver, Resolved, classify, resolve, resolver_for

__all__ = ["CLASSES", "AddressResolver", "Resolved", "classify", "external_form", "internal_form", "resolve",
           "resolver_for", "split_address"]
