"""Postfix's per-recipient delivery log line, the one pflogsumm counts:

    ID: to=<x@y>, orig_to=<a>, relay=local, delay=0.12, delays=0.01/0/0/0.11, dsn=2.0.0, status=sent (delivered to maildir)

`delays=a/b/c/d`: a = before the queue manager (arrival → active), b = in the queue manager
(active → agent start), c = connection setup (DNS, greeting, EHLO, TLS), d = transmission.
Numbers as Postfix prints them: whole seconds from 10 s on, one decimal from 1 s, two below,
trailing zeros dropped, 0 for anything under 5 ms. `orig_to` appears only when the original
recipient differs from the final one (Postfix's enable_original_recipient default).

Invariants: one call, one line; never raises. Security: addresses come from envelopes; the
logger replaces control characters (roost.log.sanitize).
"""

from __future__ import annotations

import time

from roost.delivery import DeliveryRequest, RecipientResult


def format_delay(seconds: float) -> str:
    if seconds < 0.005:   # what the rounding below gives too (and for a clock step back)
        return "0"
    seconds = max(0.0, seconds)
    if seconds >= 10:
        return str(int(seconds + 0.5))
    text = f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2f}"
    text = text.rstrip("0").rstrip(".")
    return text or "0"


class Timer:
    """The four delivery time stamps of one delivery attempt."""

    def __init__(self, request: DeliveryRequest, clock=time.time) -> None:
        self.clock = clock
        self.arrival = request.arrival_time
        self.start = clock()
        self.active = request.active_time if request.active_time is not None else self.start
        self.connected: float | None = None

    def mark_connected(self) -> None:
        self.connected = self.clock()

    def delays(self) -> tuple[float, float, float, float, float]:
        now = self.clock()
        connected = self.connected if self.connected is not None else self.start
        a = max(0.0, self.active - self.arrival)
        b = max(0.0, self.start - self.active)
        c = max(0.0, connected - self.start)
        d = max(0.0, now - connected)
        return now - self.arrival, a, b, c, d


def result_line(queue_id: str, result: RecipientResult, timer: Timer) -> str:
    total, a, b, c, d = timer.delays()
    recipient = result.recipient
    orig = recipient.original
    parts = [f"{queue_id}: to=<{recipient.address}>"]
    if orig and orig != recipient.address:
        parts.append(f"orig_to=<{orig}>")
    parts.append(f"relay={result.relay}")
    if result.conn_use > 1:   # Postfix logs conn_use only for a reused connection
        parts.append(f"conn_use={result.conn_use}")
    parts.append(f"delay={format_delay(total)}")
    parts.append("delays=" + "/".join(format_delay(x) for x in (a, b, c, d)))
    parts.append(f"dsn={result.dsn}")
    parts.append(f"status={result.status} ({result.text})")
    return ", ".join(parts)


def log_results(log, queue_id: str, results: list[RecipientResult], timer: Timer) -> None:
    for result in results:
        try:
            log.info(result_line(queue_id, result, timer))
        except Exception:   # a log failure never changes a delivery outcome
            pass
