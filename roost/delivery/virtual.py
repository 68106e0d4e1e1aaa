"""virtual(8): delivery to mailboxes of virtual_mailbox_domains, without system accounts.

postconf(5) / virtual(8): the recipient is looked up in virtual_mailbox_maps as `user@domain`
(then without its recipient_delimiter extension, then `@domain` as catch-all); the result is a
path under virtual_mailbox_base, a Maildir when it ends in `/`, else an mbox file.
virtual_uid_maps / virtual_gid_maps give the owner by the same keys (`static:5000` is usual);
an uid below virtual_minimum_uid is a configuration error and defers, as Postfix does.
virtual_mailbox_limit caps the size of an mbox file or of one Maildir file. Delivery headers
and the Delivered-To loop check are local(8)'s (roost.delivery.mailbox / local).

Results: relay=virtual, `delivered to maildir` / `delivered to mailbox`; unknown recipients
bounce `unknown user: "user@domain"` (5.1.1).

Maildir writes that need no other uid go to the process's commit thread
(roost.delivery.commit_thread: one fsync of new/ for the deliveries of a batch, no thread-pool
hop per message); the recipients of one request are written together. Others fork to the
mailbox's uid (roost.delivery.privileges) as before.

Invariants: `deliver` never raises; a mailbox path never escapes virtual_mailbox_base (`..`
components are refused); `sent` only after the Maildir file and new/ are fsynced.
Security: writes happen with the mailbox's uid/gid (roost.delivery.privileges), never root.
"""

from __future__ import annotations

import asyncio
import os

from roost.delivery import BOUNCED, DEFERRED, SENT, DeliveryRequest, Recipient, RecipientResult
from roost.delivery import commit_thread
from roost.delivery.local import delivered_to_values
from roost.delivery.logline import Timer, log_results
from roost.delivery.mailbox import (MailboxError, MaildirJob, append_mbox, content_chunks,
                                    deliver_maildir, delivery_headers)
from roost.delivery.privileges import run_as, runs_in_process
from roost.tables import open_table
from roost.tables.access import split_extension
from roost.tables.base import TableError


def _keys(address: str, delimiter: str) -> list[str]:
    local, _, domain = address.lower().rpartition("@")
    keys = [f"{local}@{domain}"]
    user, extension = split_extension(local, delimiter)
    if extension:
        keys.append(f"{user}@{domain}")
    keys.append(f"@{domain}")
    return keys


def _lookup(tables, keys: list[str]) -> str | None:
    for table in tables:
        for key in keys:
            value = table.lookup(key)
            if value is not None:
                return value.strip()
    return None


def _maildir(path: str, headers: bytes, opener, limit: int) -> str:
    with opener() as source:
        return deliver_maildir(path, headers, source, size_limit=limit)


def _mbox(path: str, sender: str, headers: bytes, opener, limit: int) -> int:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with opener() as source:
        return append_mbox(path, sender, headers, source, size_limit=limit)


class _Conf:
    """The parameters virtual(8) reads per recipient, taken from one Settings once."""

    def __init__(self, settings):
        self.settings = settings
        self.delimiter = settings.get("recipient_delimiter")
        self.maps = tuple(settings.list("virtual_mailbox_maps"))
        self.uid_maps = tuple(settings.list("virtual_uid_maps"))
        self.gid_maps = tuple(settings.list("virtual_gid_maps"))
        self.minimum_uid = settings.int("virtual_minimum_uid")
        self.base = settings.get("virtual_mailbox_base")
        self.limit = settings.size("virtual_mailbox_limit")
        self._tables: tuple | None = None

    def tables(self) -> tuple:
        """(mailbox, uid, gid) maps as table objects, opened at the first delivery (an
        opening error raises TableError there, and is tried again next time)."""
        found = self._tables
        if found is None:
            found = self._tables = tuple(tuple(open_table(reference) for reference in maps)
                                         for maps in (self.maps, self.uid_maps, self.gid_maps))
        return found


_confs: dict[int, _Conf] = {}


def _conf(settings) -> _Conf:
    found = _confs.get(id(settings))
    if found is None or found.settings is not settings:
        if len(_confs) > 64:
            _confs.clear()
        found = _confs[id(settings)] = _Conf(settings)
    return found


async def deliver_one(request: DeliveryRequest, recipient: Recipient, settings, loops: set[str],
                      one_at_a_time: asyncio.Lock | None = None) -> RecipientResult:
    """One recipient; `one_at_a_time` serializes the writes that do not go to the commit
    thread (mbox appends, forks to another uid), which the recipients of a request would
    otherwise make at once (and then wait for each other's mailbox locks)."""
    address = recipient.address
    conf = _conf(settings)

    def result(status: str, dsn: str, text: str) -> RecipientResult:
        return RecipientResult(recipient, status, dsn, text, "virtual")

    if address.lower() in loops:
        return result(BOUNCED, "5.4.6", f"mail forwarding loop for {address}")
    keys = _keys(address, conf.delimiter)
    try:
        maps, uid_maps, gid_maps = conf.tables()
        path = _lookup(maps, keys)
        uid_text = _lookup(uid_maps, keys) if path else None
        gid_text = _lookup(gid_maps, keys) if path else None
    except TableError as exc:
        return result(DEFERRED, "4.3.0", f"virtual_mailbox_maps lookup failure: {exc}")
    if path is None:
        return result(BOUNCED, "5.1.1", f'unknown user: "{address}"')
    if not uid_text or not uid_text.isdigit():
        return result(DEFERRED, "4.3.0", f"recipient {address}: uid not found in virtual_uid_maps")
    if not gid_text or not gid_text.isdigit():
        return result(DEFERRED, "4.3.0", f"recipient {address}: gid not found in virtual_gid_maps")
    uid, gid = int(uid_text), int(gid_text)
    if uid < conf.minimum_uid:
        return result(DEFERRED, "4.3.0", f"recipient {address}: bad uid {uid} in virtual_uid_maps")
    if path.startswith("/") or ".." in path.split("/"):
        return result(DEFERRED, "4.3.0", f"recipient {address}: bad mailbox path {path!r} in virtual_mailbox_maps")
    full = os.path.join(conf.base, path)
    headers = delivery_headers(request.sender, recipient.original or address, address)
    limit = conf.limit
    try:
        if path.endswith("/") and runs_in_process(uid):
            await commit_thread.run(MaildirJob(full, headers, content_chunks(request), size_limit=limit))
            return result(SENT, "2.0.0", "delivered to maildir")
        async with one_at_a_time or asyncio.Lock():
            if path.endswith("/"):
                await asyncio.to_thread(run_as, uid, gid, _maildir, full, headers, request.content, limit)
                return result(SENT, "2.0.0", "delivered to maildir")
            await asyncio.to_thread(run_as, uid, gid, _mbox, full, request.sender, headers, request.content,
                                    limit)
            return result(SENT, "2.0.0", "delivered to mailbox")
    except MailboxError as exc:
        return result(DEFERRED if exc.temporary else BOUNCED, exc.dsn, exc.text)
    except OSError as exc:
        return result(DEFERRED, "4.2.0", f"cannot deliver to {full}: {exc}")


async def deliver(request: DeliveryRequest, settings, *, resolver=None, log) -> list[RecipientResult]:
    timer = Timer(request)
    try:
        loops = delivered_to_values(content_chunks(request))
    except Exception:
        loops = set()

    # one recipient (the usual request): no lock, no task; several: written together, their
    # Maildir files sharing one commit batch
    one_at_a_time = asyncio.Lock() if len(request.recipients) > 1 else None

    async def one(recipient: Recipient) -> RecipientResult:
        try:
            return await deliver_one(request, recipient, settings, loops, one_at_a_time)
        except Exception as exc:   # the contract: never raise
            return RecipientResult(recipient, DEFERRED, "4.3.0", f"unexpected error in virtual delivery: {exc!r}",
                                   "virtual")

    if one_at_a_time is None:
        results = [await one(r) for r in request.recipients]
    else:
        results = list(await asyncio.gather(*(one(r) for r in request.recipients)))
    log_results(log, request.queue_id, results, timer)
    return results
