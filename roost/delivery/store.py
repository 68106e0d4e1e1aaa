"""Delivery straight into roost's own mail store, for an `lmtp:` nexthop that is roost's own
LMTP listener (issue 7: existing Postfix + Dovecot configurations "just work", without roost
talking LMTP to itself).

The message is spooled once to an unnamed file (in memory up to MEMORY_SPOOL bytes, else in
mail_temp_dir), each recipient is looked up
in the Dovecot userdb exactly as roost's LMTP server does (roost.lmtp.recipient: the
recipient_delimiter detail, 550 5.1.1 for unknown users) and delivered with the same step
(roost.lmtp.delivery.deliver_all: trace headers, lmtp_save_to_detail_mailbox, quota replies,
Dovecot's `saved mail to INBOX` log lines). The outcome of each recipient is then reported as
Postfix's lmtp(8) would have logged it over the socket: relay=`myhostname[/path]` (unix) or
`host[addr]:port`, `250 2.0.0 <rcpt> ID Saved`, or `host ... said: 550 5.1.1 ... (in reply to
RCPT TO command)`; 4xx defers, 5xx bounces.

The blocking part runs on the process's commit thread (roost.delivery.commit_thread, shared
with virtual(8) and local(8) Maildir writes): deliveries of the queue manager into the store
follow one another instead of contending for the same mailbox lock from several threads,
and the fsyncs of new/ are shared by the deliveries of a batch (the results reach the
queue manager only after them).

Invariants: `deliver` never raises; the spool file is closed on every path; a recipient gets
`sent` only after the store made the message durable (UserStore.deliver).
Security: the same userdb and store code as the LMTP server; no new path to a mailbox.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time

from roost.delivery import BOUNCED, DEFERRED, SENT, DeliveryRequest, RecipientResult
from roost.delivery import commit_thread
from roost.delivery.destination import parse_nexthop
from roost.delivery.logline import Timer, log_results

CHUNK = 64 * 1024
MEMORY_SPOOL = 1024 * 1024


def _relay(request: DeliveryRequest, settings) -> tuple[str, str]:
    """(relay for the log, host label for texts) as lmtp(8) names the configured nexthop."""
    nexthop = parse_nexthop(request.nexthop, lmtp=True)
    if nexthop.kind == "unix":
        label = f"{settings.get('myhostname')}[{nexthop.host}]"
        return label, label
    label = f"{nexthop.host}[{nexthop.host}]"
    return f"{label}:{nexthop.port or 24}", label


def _spool(request: DeliveryRequest, directory: str):
    """The message (CRLF) in an unnamed file: in memory (memfd) up to MEMORY_SPOOL bytes,
    which spares the file system an inode per delivery, else in mail_temp_dir."""
    spool = _memory_file()
    in_memory = spool is not None
    if spool is None:
        spool = _disk_file(directory)
    size = 0
    for chunk in _crlf_chunks(request):
        if in_memory and size + len(chunk) > MEMORY_SPOOL:
            spool = _moved_to_disk(spool, directory)
            in_memory = False
        spool.write(chunk)
        size += len(chunk)
    spool.flush()
    return spool, size


def _crlf_chunks(request: DeliveryRequest):
    """The message with CRLF line ends: the queue's LF chunks converted one by one when the
    request carries them (the queue manager's decoded content: no stream objects), else
    content() as it reads."""
    if request.lf_content is not None:
        for chunk in request.lf_content():
            yield chunk.replace(b"\n", b"\r\n")
        return
    with request.content() as source:
        while chunk := source.read(CHUNK):
            yield chunk


def _memory_file():
    try:
        return os.fdopen(os.memfd_create("roost-qmgr-lmtp", os.MFD_CLOEXEC), "w+b")
    except (AttributeError, OSError):   # no memfd here: a file in mail_temp_dir
        return None


def _disk_file(directory: str):
    os.makedirs(directory, exist_ok=True)
    return tempfile.TemporaryFile(dir=directory, prefix="roost-qmgr-lmtp.")


def _moved_to_disk(spool, directory: str):
    disk = _disk_file(directory)
    spool.flush()
    spool.seek(0)
    while chunk := spool.read(CHUNK):
        disk.write(chunk)
    spool.close()
    return disk


def _deliver_blocking(request: DeliveryRequest, config, settings) -> list:
    from roost.lmtp.delivery import Transaction, deliver_all
    from roost.lmtp.recipient import lookup_recipient

    answers: list = [None] * len(request.recipients)
    found = []
    for index, recipient in enumerate(request.recipients):
        answer = lookup_recipient(config.lookup, recipient.address, config.recipient_delimiter, index + 1)
        if hasattr(answer, "user"):
            found.append((index, answer))
        else:
            answers[index] = ("rcpt", answer)
    if found:
        spool, size = _spool(request, config.mail_temp_dir)
        try:
            transaction = Transaction(
                sender=request.sender, helo=settings.get("myhostname"), client_ip="",
                hostname=config.hostname, transaction_id=secrets.token_urlsafe(16)[:22],
                received_at=time.time(), add_received=config.add_received,
                save_to_detail=config.save_to_detail, quota_tempfail=config.quota_tempfail)
            logger_for = _logger_factory(config)
            replies = deliver_all(transaction, [r for _, r in found], spool.fileno(), size,
                                  config.open_store, logger_for)
        finally:
            spool.close()
        for (index, _), reply in zip(found, replies):
            answers[index] = ("dot", reply)
    return answers


def _logger_factory(config):
    def logger_for(user: str, ident: str):
        setup = getattr(config, "log_setup", None)
        if setup is not None:
            return setup.dovecot(f"lmtp({user})<{os.getpid()}><{ident}>")
        return _Quiet()
    return logger_for


class _Quiet:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


async def deliver(request: DeliveryRequest, settings, *, resolver=None, log, lmtp_config) -> list[RecipientResult]:
    """`lmtp_config`: roost.net.lmtp.LmtpConfig of the worker (its userdb lookup and stores)."""
    timer = Timer(request)
    relay, label = _relay(request, settings)
    try:
        job = commit_thread.StoreJob(_deliver_blocking, request, lmtp_config, settings)
        await commit_thread.run(job)
        answers = job.value
        timer.mark_connected()
        results = []
        for recipient, (stage, reply) in zip(request.recipients, answers):
            text = str(reply)   # `250 2.0.0 <rcpt> ID Saved`, as the wire reply reads
            if reply.code < 400:
                results.append(RecipientResult(recipient, SENT, reply.enhanced or "2.0.0", text, relay,
                                               remote_reply=text, remote_mta=label.split("[")[0],
                                               diagnostic_type="lmtp"))
                continue
            command = "RCPT TO" if stage == "rcpt" else "end of DATA"
            status = DEFERRED if reply.code < 500 else BOUNCED
            dsn = reply.enhanced or f"{str(reply.code)[0]}.0.0"
            results.append(RecipientResult(recipient, status, dsn, f"host {label} said: {text} (in reply to {command} "
                                           "command)", relay, remote_reply=text, remote_mta=label.split("[")[0],
                                           diagnostic_type="lmtp"))
    except Exception as exc:   # the contract: never raise
        results = [RecipientResult(r, DEFERRED, "4.3.0", f"unexpected error delivering to the mail store: {exc!r}",
                                   relay) for r in request.recipients]
    log_results(log, request.queue_id, results, timer)
    return results


__all__ = ["deliver"]
