"""The delivery size limits held against message_size_limit, as Postfix's delivery agents do at
start-up (postconf(5) mailbox_size_limit: "must not be smaller than the message size limit";
virtual_mailbox_limit likewise).

Postfix's local(8) and virtual(8) exit with `fatal: configuration error: mailbox_size_limit
(virtual_mailbox_limit) is smaller than message_size_limit` when the limit is not zero and
smaller, and the master throttles them, so no mail is delivered by that agent until the
configuration changes. The classic way into it: raising message_size_limit above 50 MB and
leaving the 51200000-byte defaults of the other two. roost's agents keep delivering (each
message is held against the limit on its own and bounced when larger), so the configuration
is reported instead, at load time, where `roost check` and the start-up show it.

Invariants: only an agent that the configuration uses is checked (local(8) when mydestination
lists a domain, virtual(8) when virtual_mailbox_domains does), and a limit of 0 means none.
Security: none beyond reading three numbers; a limit is never raised or lowered here.
"""

from __future__ import annotations

from roost.config.diagnostics import Diagnostics

# limit parameter -> (the address-class parameter that puts its agent to work, agent)
LIMITS = {"mailbox_size_limit": ("mydestination", "local(8)"),
          "virtual_mailbox_limit": ("virtual_mailbox_domains", "virtual(8)")}


def check_size_limits(settings, main_path: str, diags: Diagnostics) -> None:
    try:
        message_limit = settings.size("message_size_limit")
    except Exception:  # noqa: BLE001 - a bad value is reported by Settings.validate
        return
    for name, (domains, agent) in LIMITS.items():
        try:
            limit = settings.size(name)
            in_use = bool(settings.list(domains))
        except Exception:  # noqa: BLE001 - as above
            continue
        if not in_use or not limit or not message_limit or limit >= message_limit:
            continue
        file, line = settings.origin(name) or settings.origin("message_size_limit") or (main_path, None)
        diags.warning(file, line, f"{name} ({limit}) is smaller than message_size_limit ({message_limit}): "
                                  f"Postfix's {agent} refuses to run with this configuration; roost delivers "
                                  f"and bounces each message larger than {name}")
