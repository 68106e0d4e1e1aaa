"""Forwarding from local(8): alias and .forward addresses become a new queued message.

Postfix's local(8) resubmits forwarded mail through cleanup(8) (one new message per
recipient batch, logged `status=sent (forwarded as NEWID)`), with `Delivered-To:` prepended
(prepend_delivered_header `forward`) so a loop is caught the next time around (local(8)
loop detection). A Forwarder is `async (sender=, recipients=, original=, prepend=, request=)
-> queue_id`; `default_forwarder` writes through roost.cleanup.CleanupService; tests and the
queue manager may pass their own.

Invariants: the new message is durable (CleanupMessage.finish fsyncs) before "forwarded as"
is reported; on failure the partial file is aborted and the caller defers.
Security: the envelope of the forwarded copy is built from the original envelope and alias
data, never from message headers.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from roost.delivery import envelope_param

Forwarder = Callable[..., Awaitable[str]]
CHUNK = 64 * 1024


def default_forwarder(settings, log) -> Forwarder:
    async def forward(*, sender: str, recipients: list[str], original: str, prepend: bytes | None,
                      request) -> str:
        return await asyncio.to_thread(_forward_blocking, settings, log, sender, recipients, original,
                                       prepend, request)
    return forward


def _forward_blocking(settings, log, sender, recipients, original, prepend, request) -> str:
    from roost.cleanup import CleanupService   # the queue side, loaded only when forwarding
    service = CleanupService(settings, log)
    envelope = {name: value for name in ("RET", "ENVID", "BODY", "SMTPUTF8")
                if (value := envelope_param(request.envelope, name)) is not None}
    message = service.open(origin="local", client=None, sender=sender, envelope=envelope)
    try:
        for address in recipients:
            message.add_recipient(address, orcpt=f"rfc822;{original}" if original else None)
        if prepend:
            message.write(prepend)
        with request.content() as source:
            while True:
                chunk = source.read(CHUNK)
                if not chunk:
                    break
                message.write(chunk)
        result = message.finish()
    except BaseException:
        message.abort()
        raise
    if result.status not in ("queued", "held"):
        raise OSError(f"cleanup refused the forwarded message: {result.reply}")
    return result.queue_id
