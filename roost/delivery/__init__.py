"""Delivery agents (Postfix local(8), virtual(8), smtp(8)/lmtp(8), error(8), discard(8)).

The contract every agent keeps, and that the queue manager codes against:

    results = await AGENT.deliver(request, settings, resolver=resolver, log=log)

`request` is a DeliveryRequest (one message, a batch of recipients for one transport and
nexthop); the agent returns one RecipientResult per recipient, in request order, and logs one
Postfix line per result (roost.delivery.logline). `deliver` never raises: an unexpected error
becomes a `deferred` result with dsn 4.3.0 for every recipient it had not settled yet.

Agents by master.cf command (`agent_for`, roost.delivery.agents): local (local.py), virtual
(virtual.py), smtp/relay and lmtp (smtp.py over the sans-IO roost.proto.smtp_client, with
destination.py for MX/nexthops, client_settings.py, roost.net.smtp_client, connection_cache.py), error /
retry / discard (simple.py); store.py delivers straight into roost's own store for an lmtp:
nexthop that is roost's own LMTP listener. Notices: bounce.py composes RFC 3464 DSNs exactly
as Postfix's bounce(8), notify.py queues them through cleanup (`send_notices`) and says when a
delay warning is due. Log lines: logline.py. Maildir writes of local/virtual share one
thread per process with group commit of the new/ fsync (commit_thread.py).

Invariants: results are frozen values; `status` is one of sent / deferred / bounced; the
`dsn` class digit agrees with the status (2 sent, 4 deferred, 5 bounced).
Security: agents run user commands and write user files; see roost.delivery.local for the
privilege rules (as the recipient when root, default_privs for non-user aliases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable


@dataclass(frozen=True)
class Recipient:
    address: str                 # the envelope recipient after rewriting (what we deliver to)
    orcpt: str | None = None     # RFC 3461 ORCPT (addr-type;xtext-decoded address), None if absent
    notify: str | None = None    # RFC 3461 NOTIFY ("NEVER" or a comma list of SUCCESS,FAILURE,DELAY)
    original: str = ""           # the address as the sender wrote it (Postfix's orig_to); "" = address


@dataclass(frozen=True)
class DeliveryRequest:
    queue_id: str
    sender: str                              # "" = null sender
    recipients: tuple[Recipient, ...]
    transport: str                           # master.cf service name: local, virtual, smtp, lmtp...
    nexthop: str                             # "example.org", "[10.0.0.1]:587", "unix:/path", error text...
    arrival_time: float                      # time.time() when the message was queued
    content: Callable[[], BinaryIO]          # opens the whole message (headers + body, CRLF lines)
    envelope: dict = field(default_factory=dict)   # RET, ENVID, BODY (7BIT/8BITMIME), SMTPUTF8, SIZE
    active_time: float | None = None         # when the queue manager moved it to active (delays= b)
    # the stored content with LF line ends (the queue's own form), when the caller has it:
    # agents that write files take it as it is instead of converting content() back
    lf_content: Callable[[], Iterable[bytes]] | None = None


@dataclass(frozen=True)
class RecipientResult:
    recipient: Recipient
    status: str                  # "sent" | "deferred" | "bounced"
    dsn: str                     # RFC 3463 enhanced status, e.g. "2.0.0", "5.1.1"
    text: str                    # Postfix's status text: "delivered to maildir", "host x[ip] said: ..."
    relay: str                   # "local", "virtual", "mx.example.org[192.0.2.1]:25", "none"
    remote_reply: str | None = None   # the server's reply line for DSN Diagnostic-Code (smtp/lmtp)
    remote_mta: str | None = None     # the server's host name for DSN Remote-MTA
    diagnostic_type: str = "smtp"     # RFC 3464 diagnostic-type of remote_reply: "smtp" or "lmtp"
    conn_use: int = 1                 # deliveries over this connection so far (Postfix's conn_use=N)
    # local(8) alias/.forward expansion: one result per final target (to=<target>,
    # orig_to=<recipient>); the queue manager bounces the `bounced` ones even when the
    # recipient's own status is `sent` (some targets got it).
    expanded: tuple["RecipientResult", ...] = ()


SENT, DEFERRED, BOUNCED = "sent", "deferred", "bounced"


# DeliveryRequest.envelope keys: the SMTP names (RET, ENVID, BODY, SMTPUTF8, SIZE) or the queue
# file attribute names roost.cleanup writes them under (the queue manager passes those).
_QUEUE_ATTRIBUTE = {"RET": "dsn_ret", "ENVID": "dsn_envid", "BODY": "body_type", "SMTPUTF8": "smtputf8",
                    "SIZE": "declared_size"}


def envelope_param(envelope: dict | None, name: str) -> str | None:
    """An envelope parameter by its SMTP name, whichever of the two spellings carries it."""
    if not envelope:
        return None
    value = envelope.get(name)
    if value is None:
        value = envelope.get(_QUEUE_ATTRIBUTE.get(name, ""))
    return None if value is None else str(value)


def status_for_dsn(dsn: str) -> str:
    """The result status a DSN class implies (RFC 3463 §3.1: 2 success, 4 transient, 5 permanent)."""
    return {"2": SENT, "4": DEFERRED}.get(dsn[:1], BOUNCED)


__all__ = ["Recipient", "DeliveryRequest", "RecipientResult", "SENT", "DEFERRED", "BOUNCED",
           "envelope_param", "status_for_dsn"]
