"""Deliver one spooled LMTP message to each accepted recipient's store; one Reply each.

Implements Dovecot 2.3's LMTP delivery step (doc.dovecot.org "LMTP server"): for each
recipient in RCPT order, the trace headers (roost.lmtp.headers) plus the spooled message are
saved into the user's INBOX, or into the detail mailbox with lmtp_save_to_detail_mailbox
(falling back to INBOX when that mailbox does not exist, as Dovecot does without
lda_mailbox_autocreate); `250 2.0.0 <rcpt> ID Saved` once the store has made it durable,
`552 5.2.2 <rcpt> Quota exceeded (mailbox for user is full)` over quota, `451 4.2.0` on a
store failure. Log lines are Dovecot's: `lmtp(user)<pid><ID>: Info: msgid=<...>: saved mail
to INBOX` / `save failed to INBOX: ...`.

Invariants: blocking (run it in a thread); never raises for a recipient's failure (it becomes
that recipient's reply); the spool file is only read.
Security: each store is opened for the looked-up user only (roost.store.open_user_store).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from roost.lmtp import replies
from roost.lmtp.headers import trace_headers
from roost.lmtp.recipient import Recipient
from roost.proto.smtp.reply import Reply
from roost.store.api import InvalidMailboxName, MailboxNotFound, QuotaExceeded, StoreError

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
HEADER_SCAN = 64 * 1024


@dataclass(frozen=True)
class Transaction:
    """What the client said for this message, as the delivery needs it."""
    sender: str
    helo: str | None
    client_ip: str
    hostname: str
    transaction_id: str  # session id, plus :T<n> from the second transaction on
    received_at: float
    add_received: bool = True
    save_to_detail: bool = False
    quota_tempfail: bool = False
    delivered_to: bool = True  # lmtp_hdr_delivery_address = none drops Delivered-To


class SpoolReader(io.RawIOBase):
    """The trace headers, then the spooled message read with pread (own offset)."""

    def __init__(self, head: bytes, fd: int, size: int):
        self.head = head
        self.fd = fd
        self.size = size
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        total = len(self.head) + self.size
        if self.position >= total:
            return 0
        if self.position < len(self.head):
            chunk = self.head[self.position:self.position + len(buffer)]
        else:
            chunk = os.pread(self.fd, len(buffer), self.position - len(self.head))
            if not chunk:
                return 0
        buffer[:len(chunk)] = chunk
        self.position += len(chunk)
        return len(chunk)


def message_id(fd: int) -> str:
    """The Message-ID of the spooled message for the log (`msgid=<...>`)."""
    head = os.pread(fd, HEADER_SCAN, 0)
    end = head.find(b"\r\n\r\n")
    head = head if end < 0 else head[:end + 2]
    match = _MESSAGE_ID.search(head)
    if not match:
        return "unspecified"
    return " ".join(match.group(1).decode("utf-8", "replace").split())[:200]


def delivery_id(transaction_id: str, recipient: Recipient) -> str:
    """Dovecot's per-recipient id: the transaction id, plus :R<n> from the second RCPT on."""
    return f"{transaction_id}:R{recipient.index}" if recipient.index > 1 else transaction_id


def deliver_all(transaction: Transaction, recipients: list[Recipient], spool_fd: int,
                spool_size: int, open_store: Callable[[Any], Any], logger_for: Callable[[str, str], Any]) -> list[Reply]:
    """Deliver to every recipient in order; their replies in the same order.
    `open_store(user_record)` gives a UserStore; `logger_for(user, id)` a Dovecot logger."""
    msgid = message_id(spool_fd) if recipients else "unspecified"
    single = recipients[0].address if len(recipients) == 1 else None
    head = trace_headers(sender=transaction.sender, recipient=single, helo=transaction.helo,
                         client_ip=transaction.client_ip, hostname=transaction.hostname,
                         transaction_id=transaction.transaction_id,
                         when=transaction.received_at, add_received=transaction.add_received,
                         delivered_to=transaction.delivered_to)
    results = []
    for recipient in recipients:
        ident = delivery_id(transaction.transaction_id, recipient)
        log = logger_for(recipient.user.user, ident)
        results.append(_deliver_one(transaction, recipient, ident, head, spool_fd, spool_size,
                                    open_store, log, msgid))
    return results


def _deliver_one(transaction: Transaction, recipient: Recipient, ident: str, head: bytes,
                 spool_fd: int, spool_size: int, open_store, log, msgid: str) -> Reply:
    mailbox = recipient.detail if (transaction.save_to_detail and recipient.detail) else "INBOX"
    try:
        store = open_store(recipient.user)
    except (StoreError, OSError) as error:
        log.error(f"msgid={msgid}: Failed to initialize user: {error}")
        return replies.internal_error(recipient.address)
    for attempt in (mailbox, "INBOX"):
        try:
            store.deliver(attempt, SpoolReader(head, spool_fd, spool_size))
        except (MailboxNotFound, InvalidMailboxName) as error:
            if attempt != "INBOX":
                # no such (or no valid) detail mailbox: INBOX, as Dovecot does
                log.info(f"msgid={msgid}: save failed to open mailbox {attempt}: {error}")
                continue
            log.error(f"msgid={msgid}: save failed to INBOX: Mailbox doesn't exist: INBOX")
            return replies.internal_error(recipient.address)
        except QuotaExceeded as error:
            log.info(f"msgid={msgid}: save failed to {attempt}: {error}")
            return replies.over_quota(recipient.address, str(error), transaction.quota_tempfail)
        except (StoreError, OSError) as error:
            log.error(f"msgid={msgid}: save failed to {attempt}: {error}")
            return replies.internal_error(recipient.address)
        except Exception as error:  # a store bug fails this recipient, not the session
            log.error(f"msgid={msgid}: save failed to {attempt}: "
                      f"unexpected {type(error).__name__}: {error}")
            return replies.internal_error(recipient.address)
        log.info(f"msgid={msgid}: saved mail to {attempt}")
        return replies.saved(recipient.address, ident)
    return replies.internal_error(recipient.address)


def rcpt_quota_reply(open_store: Callable[[Any], Any], recipient: Recipient,
                     tempfail: bool = False) -> Reply | None:
    """lmtp_rcpt_check_quota = yes: refuse the RCPT of a user already over quota (Dovecot
    tests a zero-byte allocation, so a user exactly at the limit is still accepted). A store
    that cannot answer lets the RCPT through: the delivery will report the problem."""
    try:
        used, limit = open_store(recipient.user).quota_usage()
    except (StoreError, OSError):
        return None
    if limit is not None and used > limit:
        return replies.over_quota(recipient.address, replies.QUOTA_EXCEEDED, tempfail)
    return None
