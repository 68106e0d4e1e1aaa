"""Sending the delivery status notifications of one message (Postfix's bounce(8) service side).

`await send_notices(kind, ...)` composes every notice roost.delivery.bounce.notices() asks for
and queues each as a new message through cleanup (origin "local", the notice's envelope
sender: "" for the sender's notice, double_bounce_sender for postmaster copies), then logs
what Postfix's bounce(8) logs:

    ID: sender non-delivery notification: NEWID        (failure, to the sender)
    ID: sender delay notification: NEWID               (delay warning)
    ID: sender delivery status notification: NEWID    (NOTIFY=SUCCESS)
    ID: postmaster non-delivery notification: NEWID    (notify_classes copies, 2bounce)

`submit(sender, recipients, data) -> queue_id` is injectable (the queue manager may pass its
own); the default writes through roost.cleanup.CleanupService in a thread.

Invariants: returns the new queue ids; a notice that cannot be queued raises (the caller keeps
the original message and retries later, as Postfix's qmgr does when bounce(8) fails).
Security: notices go only to the envelope sender or configured postmaster addresses.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Sequence

from roost.delivery import DeliveryRequest, RecipientResult
from roost.delivery.bounce import DELAY, FAILURE, SUCCESS, compose, notices

Submit = Callable[[str, tuple[str, ...], bytes], Awaitable[str]]
LOG_WORD = {FAILURE: "non-delivery", DELAY: "delay", SUCCESS: "delivery status"}


def default_submit(settings, log) -> Submit:
    async def submit(sender: str, recipients: tuple[str, ...], data: bytes) -> str:
        return await asyncio.to_thread(_submit_blocking, settings, log, sender, recipients, data)
    return submit


def _submit_blocking(settings, log, sender, recipients, data) -> str:
    from roost.cleanup import CleanupService
    message = CleanupService(settings, log).open(origin="local", client=None, sender=sender, envelope={})
    try:
        for address in recipients:
            message.add_recipient(address)
        message.write(data)
        result = message.finish()
    except BaseException:
        message.abort()
        raise
    if result.status not in ("queued", "held"):
        raise OSError(f"cleanup refused the notification: {result.reply}")
    return result.queue_id


def delay_warning_due(arrival_time: float, now: float, settings, already_warned: bool) -> bool:
    """qmgr(8): one delay warning per message, once it has waited delay_warning_time (0 = never)."""
    after = settings.time("delay_warning_time")
    return not already_warned and after > 0 and now - arrival_time >= after


async def send_notices(kind: str, request: DeliveryRequest, results: Sequence[RecipientResult], settings, log, *,
                       submit: Submit | None = None, now: float | None = None) -> list[str]:
    submit = submit or default_submit(settings, log)
    # local(8) alias expansions: their bounced targets are reported, not the alias itself
    flat: list[RecipientResult] = []
    for result in results:
        flat.extend(result.expanded if result.expanded else (result,))
    queued = []
    for notice in notices(kind, request.sender, flat, settings):
        data = compose(notice, queue_id=request.queue_id, original_sender=request.sender,
                       arrival_time=request.arrival_time, content=request.content, envelope=request.envelope or {},
                       settings=settings, now=now if now is not None else time.time())
        new_id = await submit(notice.sender, notice.recipients, data)
        who = "postmaster" if notice.postmaster else "sender"
        log.info(f"{request.queue_id}: {who} {LOG_WORD[kind]} notification: {new_id}")
        queued.append(new_id)
    return queued
