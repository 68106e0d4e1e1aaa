"""error(8), retry and discard(8): the agents that deliver nothing.

error(8): every recipient bounces with the nexthop as text (`error:mailbox unavailable` in
transport(5)), dsn 5.0.0 unless the text starts with an RFC 3463 code (`5.1.1 no such user`);
the `retry` service (error(8) run as retry) defers instead (4.x.x). discard(8): every recipient
is reported sent with the nexthop text (`discard:spam` → `spam`) or `discarded`, relay=none.
Log lines: `relay=none, ..., status=bounced (mailbox unavailable)`.

Invariants: no I/O except the log; never raises. Security: nothing is run or written.
"""

from __future__ import annotations

import re

from roost.delivery import BOUNCED, DEFERRED, SENT, DeliveryRequest, RecipientResult
from roost.delivery.logline import Timer, log_results

_DSN = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\s+")


def _split(text: str, default_class: str) -> tuple[str, str]:
    match = _DSN.match(text)
    if match:
        return f"{default_class}.{match.group(2)}.{match.group(3)}", text[match.end():]
    return f"{default_class}.0.0", text


async def deliver_error(request: DeliveryRequest, settings, *, resolver=None, log, soft: bool = False):
    timer = Timer(request)
    fallback = "delivery temporarily suspended" if soft else "mail delivery disabled"
    dsn, text = _split(request.nexthop or fallback, "4" if soft else "5")
    status = DEFERRED if soft or settings.bool("soft_bounce") else BOUNCED
    if status == DEFERRED:
        dsn = "4" + dsn[1:]
    results = [RecipientResult(r, status, dsn, text or fallback, "none") for r in request.recipients]
    log_results(log, request.queue_id, results, timer)
    return results


async def deliver_retry(request: DeliveryRequest, settings, *, resolver=None, log):
    return await deliver_error(request, settings, resolver=resolver, log=log, soft=True)


async def deliver_discard(request: DeliveryRequest, settings, *, resolver=None, log):
    timer = Timer(request)
    text = request.nexthop or "discarded"
    results = [RecipientResult(r, SENT, "2.0.0", text, "none") for r in request.recipients]
    log_results(log, request.queue_id, results, timer)
    return results
