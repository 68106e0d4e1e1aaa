"""The queue manager: moves messages through incoming → active → deferred and delivers them.

Implements Postfix's qmgr(8) life cycle (QSHAPE_README, qmgr(8), postconf(5)):
- pickup: local submissions in `maildrop` go through cleanup first (roost.qmgr.pickup);
- start-up recovery (roost.queue.recovery): files left in `active` go back to `incoming`,
  corrupt ones are set aside in `corrupt` with Postfix's warning; nothing valid is lost; only
  complete files (owner-execute bit set by cleanup's finish) are ever picked up;
- a file cleanup announces on the trigger socket (roost.qmgr.trigger `I:ID`) is taken at
  once; `incoming` is scanned on an `I` request, every second, and (while no announcements
  come) after a delivery when the last scan found mail; `maildrop` (pickup) on a
  `W` or `A` request and every second; `deferred` every `queue_run_delay`, taking files
  whose retry time (kept as the file's modification time, as Postfix does) has come, or
  all of them on a flush; a small queue file is read once and its content kept (decoded once)
  while the message is active (roost.qmgr.content, at most HELD_BYTES of files in all);
- at most `qmgr_message_active_limit` messages are active; each pending recipient is
  resolved (roost.qmgr.routing) (a transport listed in defer_transports is deferred with
  `4.3.2 deferred transport` unless the message was taken by a flush), grouped per (transport, nexthop) in batches, and delivered
  by the agent of the transport's master.cf command, at most the destination concurrency
  limit at once (roost.qmgr.schedule);
- a delivered recipient is marked done in the file at once, unless the file is removed
  right away because every recipient is done (as Postfix, which marks in place only what
  must survive: a crash in between delivers again, never loses); when every batch of a message
  is back, failed recipients are returned to the sender (roost.delivery.notify: RFC 3464
  report queued through cleanup) and only then marked done, and
  the message is removed (all done) or moved to `deferred` with its next retry time, unless
  it outlived maximal_queue_lifetime: then the deferred recipients are returned too
  (`status=expired, returned to sender`);
- delay_warning_time: one "delayed mail" notice per message (roost.delivery.notify),
  remembered as the first line of the defer log so a restart never repeats it;
- smtp(8)/lmtp(8) get the manager's connection cache (`cache=`) while their destination has
  a backlog (smtp_connection_cache_on_demand) or is in smtp_connection_cache_destinations.

Log lines are qmgr's: `ID: from=<s>, size=N, nrcpt=M (queue active)`, `ID: removed`,
`ID: from=<s>, status=expired, returned to sender`.
Invariants: a queue file is only renamed or marked, never rewritten; a message is active in
at most one place; an exception in one delivery defers that batch, never stops the manager.
Security: only files whose names are queue IDs are touched; nothing is followed out of the
queue directory.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections import deque
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

from roost.delivery import DEFERRED, DeliveryRequest, Recipient, RecipientResult
from roost.delivery.bounce import DELAY, FAILURE
from roost.delivery.connection_cache import ConnectionCache
from roost.delivery.notify import delay_warning_due
from roost.qmgr import content
from roost.qmgr.content import open_crlf
from roost.qmgr.pickup import prepare_maildrop
from roost.qmgr.routing import Router, split_transport
from roost.qmgr.schedule import (Batch, batches, concurrency_limit, expired, lifetime_for,
                                 next_attempt_delay, recipient_limit)
from roost.queue import QueueFileError, QueueLayout, mark_done, read_envelope, recovery
from roost.queue.records import notify_words

DEFERRED_TRANSPORT = "4.3.2 deferred transport"
DELAY_WARNED_MARK = "delay_warned=yes"  # first line of the defer log once the warning is queued

INCOMING_SCAN_INTERVAL = 1.0
ANNOUNCED_RECENTLY = 2.0  # seconds: while cleanup announces files, no rescan after deliveries
HELD_BYTES = 32 * 1024 * 1024  # queue file bytes kept in memory for active messages, in all

Agent = Callable[..., Any]  # async deliver(request, settings, *, resolver, log) -> results
Notifier = Callable[[str, DeliveryRequest, list[RecipientResult]], Awaitable[Any]]


def _bounced_expansions(result: RecipientResult) -> bool:
    """A local recipient delivered to some alias targets and bounced for others."""
    return any(r.status == "bounced" for r in (getattr(result, "expanded", None) or ()))


@dataclass(eq=False)
class ActiveMessage:
    qf: QueueFile
    path: str
    active_time: float
    batches_left: int = 0
    batches_total: int = 0
    batches_returned: int = 0  # batches whose agent has answered (their marks may still run)
    unclean: bool = False  # some recipient was not simply delivered: every batch marks its own
    outcomes: list = field(default_factory=list)  # (recipient record offset, RecipientResult)
    redirect: str | None = None  # cleanup's redirect_to: every copy goes there
    delay_warned: bool = False  # the sender has had its delay warning (kept in the defer log)
    held: tuple[bytes, ...] | None = None  # the content's LF chunks (small files), decoded once
    held_size: int = 0   # the queue file bytes they came from, as the budget counts them
    source_queue: str = "incoming"

    def lf_content(self):
        held = self.held
        return iter(held) if held is not None else content.lf_chunks(self.qf)

    def crlf_content(self):
        held = self.held
        return content.open_crlf_chunks(held) if held is not None else open_crlf(self.qf)


def envelope_of(qf) -> dict:
    """The queue file's attributes, plus SMTPUTF8 when the size record's flag says the
    client asked for it (RFC 6531 §3.4: the parameter is passed on to the next hop)."""
    envelope = dict(qf.attributes)
    if getattr(qf, "smtputf8", 0):
        envelope["SMTPUTF8"] = "yes"
    return envelope


class QueueManager:
    def __init__(self, settings, log, *, agent_for: Callable[[str], tuple[Agent, Any] | None],
                 resolver: Any = None, notifier: Notifier | None = None,
                 clock: Callable[[], float] = time.time, router: Router | None = None,
                 pickup: Any = None, bounce_log: Any = None):
        self.settings = settings
        self.log = log
        self.agent_for = agent_for  # transport name -> (deliver, settings of that service)
        self.resolver = resolver
        self.notifier = notifier or self.default_notifier
        self.pickup = pickup  # roost.qmgr.pickup.Pickup: maildrop → cleanup → incoming
        self.bounce_log = bounce_log or log  # postfix/bounce lines
        self.clock = clock
        self.layout = QueueLayout.from_settings(settings)
        self.router = router or Router(settings)
        self.active: dict[str, ActiveMessage] = {}
        # batches not yet started, per destination (transport, nexthop), in arrival order
        self.waiting: dict[tuple[str, str], deque[tuple[ActiveMessage, Batch]]] = {}
        self._limits: dict[str, int] = {}  # transport -> destination concurrency limit
        self._rcpt_limits: dict[str, int] = {}  # transport -> destination recipient limit
        self.running: dict[tuple[str, str], int] = {}
        self.tasks: set[asyncio.Task] = set()
        self._loop: asyncio.AbstractEventLoop | None = None   # the loop deliveries run in
        self.wake = asyncio.Event()
        self.flush_requested = False
        self.pickup_requested = True
        self.next_timed_scan = 0.0      # monotonic time of the next scan of incoming + maildrop
        self.incoming_requested = True
        self.scan_blocked = False       # the last scan stopped at qmgr_message_active_limit
        self.scan_found = False         # the last scan of incoming activated something
        self.last_announcement = -1e9   # monotonic time cleanup last announced a file
        self.held_bytes = 0
        self.recovered: set[str] = set()  # requeued at start: they may have a defer log
        self.next_deferred_scan = 0.0
        self.active_limit = max(1, settings.int("qmgr_message_active_limit"))
        self.defer_transports = frozenset(settings.list("defer_transports"))
        # smtp(8)/lmtp(8) connections kept between deliveries to one destination (scache(8))
        self.connection_cache = ConnectionCache.from_settings(settings)
        self.cache_on_demand = settings.bool("smtp_connection_cache_on_demand")
        self.cache_destinations = {d.lower() for d in
                                   settings.list("smtp_connection_cache_destinations")}
        self._takes_cache: dict[str, bool] = {}
        self._cache_used: dict[tuple[str, str], float] = {}  # destination -> when cache was passed

    async def default_notifier(self, kind: str, request: DeliveryRequest, results) -> None:
        from roost.delivery.notify import send_notices
        await send_notices(kind, request, results, self.settings, self.bounce_log)

    # ---- start-up ------------------------------------------------------------------------

    def recover(self) -> None:
        """qmgr's start-up: roost.queue.recovery (active back to incoming, corrupt files set
        aside, dead writers' temporary files removed)."""
        report = recovery.recover_at_start(self.layout, self.log)
        self.recovered = set(getattr(report, "requeued", ()) or ())
        prepare_maildrop(self.layout)

    # ---- the loop ------------------------------------------------------------------------

    async def run(self, stopping: asyncio.Event) -> None:
        self.recover()
        while not stopping.is_set():
            now = time.monotonic()
            timed = now >= self.next_timed_scan
            if timed:
                self.next_timed_scan = now + INCOMING_SCAN_INTERVAL
            if self.pickup is not None and (timed or self.pickup_requested):
                self.pickup_requested = False
                await asyncio.to_thread(self.pickup.scan)
                self.incoming_requested = True
            if timed or self.incoming_requested or self.scan_blocked:
                self.incoming_requested = False
                self.scan()
            else:
                self.scan_deferred()
            self.dispatch()
            self.wake.clear()
            stop_wait = asyncio.ensure_future(stopping.wait())
            wake_wait = asyncio.ensure_future(self.wake.wait())
            await asyncio.wait({stop_wait, wake_wait}, timeout=INCOMING_SCAN_INTERVAL,
                               return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            wake_wait.cancel()
        if self.tasks:  # let deliveries in progress finish (the master's grace time bounds it)
            await asyncio.wait(set(self.tasks))

    def request(self, kind: str) -> None:
        """A trigger: "I" incoming, "D" deferred, "F" flush (deferred now), "A" all."""
        if kind in ("D", "A"):
            self.next_deferred_scan = 0.0
        if kind == "F":
            self.flush_requested = True
            self.next_deferred_scan = 0.0
        if kind in ("W", "A"):
            self.pickup_requested = True
        if kind in ("I", "A", "W"):
            self.incoming_requested = True
        self.wake.set()

    def queued(self, queue_id: str) -> None:
        """cleanup announced a new queue file (trigger `I:ID`): take it now, without a scan
        (when the active queue is full, the next scan finds it)."""
        self.last_announcement = time.monotonic()
        if queue_id in self.active or len(self.active) >= self.active_limit:
            self.scan_blocked = self.scan_blocked or queue_id not in self.active
            return
        try:
            path = self.layout.path("incoming", queue_id)
        except ValueError:
            return
        if self.activate("incoming", queue_id, path):
            self.dispatch()

    def scan(self) -> None:
        self.scan_blocked = self.scan_found = False
        for queue_id, path in list(self.layout.scan("incoming")):
            if len(self.active) >= self.active_limit:
                self.scan_blocked = True
                return
            if queue_id not in self.active and recovery.is_ready(path):
                self.scan_found = self.activate("incoming", queue_id, path) or self.scan_found
        self.scan_deferred()

    def scan_deferred(self) -> None:
        now = self.clock()
        if now < self.next_deferred_scan:
            return
        self.next_deferred_scan = now + self.settings.time("queue_run_delay")
        flush, self.flush_requested = self.flush_requested, False
        for queue_id, path in list(self.layout.scan("deferred")):
            if len(self.active) >= self.active_limit:
                self.scan_blocked = True
                return
            try:
                due = flush or os.stat(path).st_mtime <= now
            except OSError:
                continue
            if due and queue_id not in self.active:
                self.activate("deferred", queue_id, path, flushed=flush)

    def activate(self, queue: str, queue_id: str, path: str, flushed: bool = False) -> bool:
        """Move one complete file to `active` and queue its deliveries; False when the
        file is not there or not complete (yet)."""
        try:
            loaded = content.load(path, queue_id)
        except QueueFileError as exc:
            if not os.path.lexists(path):
                return False   # taken already (a scan, an announcement), or removed by postsuper
            self._set_aside(queue, queue_id, str(exc))
            return False
        if loaded is None:  # cleanup is still writing it
            return False
        qf, held = loaded
        active_path = os.path.join(self.layout.ensure_directory("active", queue_id), queue_id)
        try:
            os.rename(path, active_path)
        except OSError as exc:
            self.log.warning(f"{queue_id}: cannot move from {queue} to active: {exc}")
            return False
        qf.path = active_path
        message = ActiveMessage(qf, active_path, self.clock(), source_queue=queue)
        if held is not None and self.held_bytes + len(held) <= HELD_BYTES:
            message.held = content.decoded(qf, held)
            message.held_size = len(held)
            self.held_bytes += len(held)
        else:   # over budget: the content is read from the file, not kept by the parse either
            qf.content_chunks = None
        self.active[queue_id] = message
        self.log.info(f"{queue_id}: from=<{qf.sender or ''}>, size={qf.content_size}, "
                      f"nrcpt={len(qf.recipients)} (queue active)")
        triples = []
        # header/body_checks and access actions left these (cleanup(8)): REDIRECT sends
        # every recipient's copy to one address, FILTER routes them to a content filter.
        message.redirect = qf.attributes.get("redirect_to") or None
        content_filter = qf.attributes.get("content_filter")
        for recipient in qf.pending_recipients:
            route = self.router.resolve(message.redirect or recipient.address)
            transport, nexthop = route.transport, route.nexthop
            if content_filter:
                filter_transport, filter_nexthop = split_transport(content_filter)
                transport = filter_transport or transport
                nexthop = filter_nexthop or nexthop
            if transport in self.defer_transports and not flushed:
                # defer_transports: held back until a flush (postqueue -f, sendmail -q);
                # Postfix hands these to its retry service, which logs them as error(8)
                transport, nexthop = "retry", DEFERRED_TRANSPORT
            triples.append((transport, nexthop, recipient))
        work = batches(triples, self._recipient_limit)
        if message.redirect and triples:  # one copy, whatever the number of recipients
            work = [Batch(triples[0][0], triples[0][1], tuple(t[2] for t in triples))]
        message.batches_left = message.batches_total = len(work)
        if not work:
            self._release(message)
            self.finish(message, [])
            return True
        for batch in work:
            self.waiting.setdefault((batch.transport, batch.nexthop), deque()).append(
                (message, batch))
        return True

    def _release(self, message: ActiveMessage) -> None:
        """The message's deliveries are over: its kept bytes go (in the loop's thread, which
        alone counts them)."""
        if message.held is not None:
            self.held_bytes -= message.held_size
            message.held = None

    def _recipient_limit(self, transport: str) -> int:
        limit = self._rcpt_limits.get(transport)
        if limit is None:   # settings are fixed for the manager's life
            limit = self._rcpt_limits[transport] = recipient_limit(self.settings, transport)
        return limit

    def dispatch(self) -> None:
        """Start waiting batches while their destination has a free slot (one pass over the
        destinations, not over every waiting batch: a large backlog costs nothing here)."""
        for key in list(self.waiting):
            queue = self.waiting[key]
            limit = self._limits.get(key[0])
            if limit is None:
                limit = self._limits[key[0]] = concurrency_limit(self.settings, key[0])
            while queue and self.running.get(key, 0) < limit:
                message, batch = queue.popleft()
                self.running[key] = self.running.get(key, 0) + 1
                loop = self._loop
                if loop is None or loop.is_closed():   # looked up once, not per delivery
                    loop = self._loop = asyncio.get_running_loop()
                task = loop.create_task(self.deliver(message, batch))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if not queue:
                del self.waiting[key]

    # ---- one delivery --------------------------------------------------------------------

    async def deliver(self, message: ActiveMessage, batch: Batch) -> None:
        qf = message.qf
        recipients = tuple(Recipient(r.address, r.orcpt, notify_words(r.notify) or None,
                                     r.original or r.address) for r in batch.recipients)
        if message.redirect:
            recipients = (Recipient(message.redirect, None, None, recipients[0].original),)
        try:
            found = self.agent_for(batch.transport)
            if found is None:
                results = [RecipientResult(r, DEFERRED, "4.3.0", "mail transport unavailable",
                                           "none") for r in recipients]
                for result in results:
                    self.log.warning(f"{qf.queue_id}: to=<{result.recipient.address}>: "
                                     f"no delivery agent for transport {batch.transport}")
            else:
                deliver, agent_settings = found[0], found[1]
                agent_log = found[2] if len(found) > 2 else self.log  # postfix/virtual etc.
                request = DeliveryRequest(
                    queue_id=qf.queue_id, sender=qf.sender or "", recipients=recipients,
                    transport=batch.transport, nexthop=batch.nexthop, arrival_time=qf.arrival,
                    content=message.crlf_content, envelope=envelope_of(qf),
                    active_time=message.active_time, lf_content=message.lf_content)
                extra = {}
                if self._cache_wanted(batch, deliver):
                    extra["cache"] = self.connection_cache
                results = list(await deliver(request, agent_settings, resolver=self.resolver,
                                             log=agent_log, **extra))
                if message.redirect:  # the one copy settles every original recipient
                    results = results[:1] * len(batch.recipients)
            if not self._removed_after(message, results):
                await asyncio.to_thread(self._mark, message, batch, results)
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the manager
            message.unclean = True
            self.log.warning(f"{qf.queue_id}: delivery via {batch.transport} failed: "
                             f"{type(exc).__name__}: {exc}")
            results = [RecipientResult(r, DEFERRED, "4.3.0", "delivery agent failure", "none")
                       for r in recipients]
        finally:
            key = (batch.transport, batch.nexthop)
            self.running[key] -= 1
        message.outcomes.extend((r.offset, result) for r, result in zip(batch.recipients, results))
        message.batches_left -= 1
        if message.batches_left == 0:
            await self.complete(message)
        self.dispatch()
        if self.scan_blocked:   # room in the active queue again
            self.wake.set()
        elif self.scan_found and time.monotonic() - self.last_announcement > ANNOUNCED_RECENTLY:
            # mail is coming in without announcements (a cleanup that does not send them):
            # look again as each delivery ends, instead of once a second
            self.incoming_requested = True
            self.wake.set()

    @staticmethod
    def _removed_after(message: ActiveMessage, results: list[RecipientResult]) -> bool:
        """This is the message's last batch to answer and every recipient of the message was
        delivered: the file is removed next, so marking them done in it would be wasted.
        (Decided when the agent answers, before any await: batches still marking theirs
        finish before the message completes.)"""
        message.batches_returned += 1
        if not all(r.status == "sent" and not _bounced_expansions(r) for r in results):
            message.unclean = True
        return message.batches_returned == message.batches_total and not message.unclean

    def _cache_wanted(self, batch: Batch, deliver) -> bool:
        """smtp_connection_cache_on_demand: keep the connection when more mail waits for
        this destination; smtp_connection_cache_destinations: always (postconf(5))."""
        if not self._agent_takes_cache(batch.transport, deliver):
            return False
        if batch.nexthop.lower() in self.cache_destinations:
            return True
        if not self.cache_on_demand:
            return False
        key = (batch.transport, batch.nexthop)
        now = time.monotonic()
        backlog = self.running.get(key, 0) > 1 or bool(self.waiting.get(key))
        # the delivery after a backlog may still find the connection kept for it
        recent = now - self._cache_used.get(key, -1e9) <= self.connection_cache.idle_limit
        if backlog:
            self._cache_used[key] = now
        return backlog or recent

    def _agent_takes_cache(self, transport: str, deliver) -> bool:
        known = self._takes_cache.get(transport)
        if known is None:
            try:
                known = "cache" in inspect.signature(deliver).parameters
            except (TypeError, ValueError):
                known = False
            self._takes_cache[transport] = known
        return known

    def _mark(self, message: ActiveMessage, batch: Batch, results: list[RecipientResult]) -> None:
        """Delivered recipients are done at once; bounced ones only once their notice is
        queued (complete), so a failure to queue it loses no notification."""
        for queue_recipient, result in zip(batch.recipients, results):
            if result.status == "sent" and not _bounced_expansions(result):
                mark_done(message.path, queue_recipient.offset)

    # ---- the end of an active round ------------------------------------------------------

    async def complete(self, message: ActiveMessage) -> None:
        qf = message.qf
        outcomes = message.outcomes
        if any(r.status == DEFERRED for _o, r in outcomes) and \
                expired(self.clock() - qf.arrival, lifetime_for(qf.sender or "", self.settings)):
            self.log.info(f"{qf.queue_id}: from=<{qf.sender or ''}>, status=expired, "
                          "returned to sender")
            outcomes = [(o, replace(r, status="bounced") if r.status == DEFERRED else r)
                        for o, r in outcomes]
        failed = [(o, r) for o, r in outcomes if r.status == "bounced" or _bounced_expansions(r)]
        if any(r.status == DEFERRED for _o, r in outcomes):   # else nothing to warn about
            await self._warn_if_delayed(message, outcomes)
        if failed:
            try:
                await self.notifier(FAILURE, self.request_of(message), [r for _o, r in outcomes])
            except Exception as exc:  # noqa: BLE001 - keep the recipients, retry later
                self.log.warning(f"{qf.queue_id}: cannot queue the non-delivery notification: "
                                 f"{type(exc).__name__}: {exc}; keeping the message")
                outcomes = [(o, replace(r, status=DEFERRED) if (o, r) in failed else r)
                            for o, r in outcomes]
                failed = []
        message.outcomes = outcomes
        self._release(message)
        if not failed and all(r.status != DEFERRED for _o, r in outcomes):
            self.finish(message, [])   # unlinks only: not worth a thread hop
            return
        await asyncio.to_thread(self.finish, message, [o for o, _r in failed])

    async def _warn_if_delayed(self, message: ActiveMessage, outcomes) -> None:
        """qmgr(8) delay_warning_time: one "delayed mail" notice per message, for the
        recipients still deferred; remembered in the defer log so a restart never repeats it."""
        qf = message.qf
        delayed = [r for _o, r in outcomes if r.status == DEFERRED]
        if not delayed:   # no defer log will be written: nothing to remember either
            return
        message.delay_warned = self._already_warned(qf.queue_id)
        if not delay_warning_due(qf.arrival, self.clock(), self.settings, message.delay_warned):
            return
        try:
            await self.notifier(DELAY, self.request_of(message), delayed)
        except Exception as exc:  # noqa: BLE001 - try again after the next attempt
            self.log.warning(f"{qf.queue_id}: cannot queue the delay notification: "
                             f"{type(exc).__name__}: {exc}")
            return
        message.delay_warned = True

    def _already_warned(self, queue_id: str) -> bool:
        try:
            with open(self.layout.path("defer", queue_id), encoding="utf-8",
                      errors="replace") as handle:
                return handle.readline().strip() == DELAY_WARNED_MARK
        except OSError:
            return False

    def request_of(self, message: ActiveMessage) -> DeliveryRequest:
        qf = message.qf
        return DeliveryRequest(queue_id=qf.queue_id, sender=qf.sender or "", recipients=(),
                               transport="", nexthop="", arrival_time=qf.arrival,
                               content=message.crlf_content, envelope=envelope_of(qf),
                               lf_content=message.lf_content)

    def finish(self, message: ActiveMessage, failed_offsets: list[int]) -> None:
        qf = message.qf
        now = self.clock()
        for offset in failed_offsets:
            try:
                mark_done(message.path, offset)
            except (OSError, QueueFileError):
                pass
        deferred = [(o, r) for o, r in message.outcomes if r.status == DEFERRED]
        self.active.pop(qf.queue_id, None)
        if deferred:
            self._write_defer_log(qf.queue_id, deferred, message.delay_warned)
            path = self._move("active", "deferred", qf.queue_id)
            if path is not None:
                delay = next_attempt_delay(now - qf.arrival,
                                           self.settings.time("minimal_backoff_time"),
                                           self.settings.time("maximal_backoff_time"))
                when = now + delay
                try:
                    os.utime(path, (when, when))
                except OSError:
                    pass
            return
        try:
            os.unlink(message.path)
        except OSError as exc:
            self.log.warning(f"{qf.queue_id}: remove {message.path}: {exc.strerror}")
            return
        # a defer log exists only for a message that was deferred before
        if message.source_queue != "incoming" or qf.queue_id in self.recovered:
            self.recovered.discard(qf.queue_id)
            try:
                os.unlink(self.layout.path("defer", qf.queue_id))
            except OSError:
                pass
        self.log.info(f"{qf.queue_id}: removed")

    def _write_defer_log(self, queue_id: str, deferred, delay_warned: bool = False) -> None:
        """The defer logfile mailq shows reasons from (Postfix's bounce(8) attribute lines:
        recipient, offset, status, action, reason; a blank line after each recipient),
        headed by DELAY_WARNED_MARK once the sender has been warned."""
        lines = [DELAY_WARNED_MARK + "\n"] if delay_warned else []
        for offset, result in deferred:
            text = " ".join(result.text.split())
            lines.append(f"recipient={result.recipient.address}\noffset={offset}\n"
                         f"status={result.dsn}\naction=delayed\nreason={text}\n\n")
        path = os.path.join(self.layout.ensure_directory("defer", queue_id), queue_id)
        try:
            with open(path, "w", encoding="utf-8", errors="replace") as out:
                out.write("".join(lines))
        except OSError as exc:
            self.log.warning(f"{queue_id}: cannot write the defer log: {exc.strerror}")

    # ---- files ---------------------------------------------------------------------------

    def _move(self, source: str, target: str, queue_id: str) -> str | None:
        try:
            return recovery.move(self.layout, queue_id, source, target)
        except OSError as exc:
            self.log.warning(f"{queue_id}: cannot move from {source} to {target}: {exc}")
            return None

    def _set_aside(self, queue: str, queue_id: str, why: str) -> None:
        self.log.warning(f"{queue_id}: {why}")
        try:
            recovery.set_aside(self.layout, queue_id, queue, self.log)
        except OSError:
            pass
