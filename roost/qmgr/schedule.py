"""Queue-manager arithmetic: retry back-off, recipient batches, destination concurrency.

Implements qmgr(8) and postconf(5) as Postfix 3.7 documents them:
- back-off: a deferred message is next tried after its age (time since arrival) clamped to
  [minimal_backoff_time, maximal_backoff_time], which doubles the interval between attempts
  (TUNING_README "the time between delivery attempts doubles");
- lifetime: after maximal_queue_lifetime (bounce_queue_lifetime for the null sender, i.e.
  bounces themselves) a deferred recipient is returned to the sender; 0 means "one try";
- batches: recipients of one message with the same (transport, nexthop) go together, at most
  `<transport>_destination_recipient_limit` (default_destination_recipient_limit) per
  delivery; the local transport's limit is local_destination_recipient_limit;
- concurrency: at most `<transport>_destination_concurrency_limit`
  (default_destination_concurrency_limit; local: local_destination_concurrency_limit)
  deliveries run at once to one (transport, nexthop).

Invariants: pure functions of settings and numbers; no clock, no files.
Security: limits come from configuration; a non-numeric value falls back to the default.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


def next_attempt_delay(age: float, minimal: float, maximal: float) -> float:
    return max(minimal, min(maximal, age))


def expired(age: float, lifetime: float) -> bool:
    return age >= lifetime


def lifetime_for(sender: str, settings) -> float:
    name = "bounce_queue_lifetime" if sender == "" else "maximal_queue_lifetime"
    return settings.time(name)


def per_transport_int(settings, transport: str, suffix: str, fallback: str) -> int:
    """`<transport>_<suffix>` when set in main.cf/master.cf, else the fallback parameter."""
    raw = ""
    try:
        raw = settings.raw(f"{transport}_{suffix}")
    except Exception:  # noqa: BLE001 - a name outside the parameter table reads as unset
        raw = ""
    text = raw.strip()
    if text.isdigit():
        return int(text)
    return settings.int(fallback)


def recipient_limit(settings, transport: str) -> int:
    if transport == "local":
        return max(1, settings.int("local_destination_recipient_limit"))
    return max(1, per_transport_int(settings, transport, "destination_recipient_limit",
                                    "default_destination_recipient_limit"))


def concurrency_limit(settings, transport: str) -> int:
    if transport == "local":
        return max(1, settings.int("local_destination_concurrency_limit"))
    return max(1, per_transport_int(settings, transport, "destination_concurrency_limit",
                                    "default_destination_concurrency_limit"))


@dataclass(frozen=True)
class Batch:
    transport: str
    nexthop: str
    recipients: tuple  # items in the caller's order


def batches(items: Iterable[tuple[str, str, object]], limit_for) -> list[Batch]:
    """Group (transport, nexthop, recipient) triples, in first-seen order, split by limit."""
    groups: dict[tuple[str, str], list] = {}
    for transport, nexthop, recipient in items:
        groups.setdefault((transport, nexthop), []).append(recipient)
    out = []
    for (transport, nexthop), recipients in groups.items():
        size = limit_for(transport)
        for start in range(0, len(recipients), size):
            out.append(Batch(transport, nexthop, tuple(recipients[start:start + size])))
    return out
