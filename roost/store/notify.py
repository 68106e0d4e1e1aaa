"""The store's change feed across processes: inotify on the mailbox directories, or polling.

Implements Mailbox.wait_changed for file-based stores: Linux inotify(7) through ctypes
(IN_CREATE, IN_MOVED_TO, IN_MOVED_FROM, IN_DELETE, IN_CLOSE_WRITE, IN_ATTRIB, IN_MODIFY on
each watched directory). One inotify instance serves the whole process (the kernel allows
only max_user_instances, 128 by default, per user), with a counter of events per watched
directory: a watcher remembers the counters it has seen, so a change that happened before
it started waiting is never lost. Where inotify is missing or exhausted, a poll of the
directories' mtimes every POLL_INTERVAL seconds. Either way a change made by any process
wakes the waiter within a second.

Two ways to wait: `await watcher.wait(timeout)`, or `watcher.subscribe(callback)`, a one-shot
callback run on the event loop at the next change, with no task, future or timer of its own
(the shape an IDLE session needs when thousands of them wait: roost.net.imap). A drain wakes
only the subscriptions whose directories had events.

Invariants: wait() never raises for OS errors (it falls back to polling); spurious wake-ups
are allowed (the caller refreshes); watches are never removed (bounded by the directories
opened), the shared descriptor lives as long as the process.
Security: only directories the store itself opened are watched; events' names are ignored.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import struct
import threading

POLL_INTERVAL = 0.5
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
WATCH_MASK = (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CLOSE_WRITE
              | IN_ATTRIB | IN_MODIFY)
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (inotify_event)


def directory_signature(paths) -> int:
    """A fingerprint of the directories' (inode, mtime, size), compared only for equality;
    one int rather than a tuple of tuples, since every idle session keeps two of them."""
    result = []
    for path in paths:
        try:
            st = os.stat(path)
            result.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            result.append(None)
    return hash(tuple(result))


def stats_signature(stats) -> int:
    """directory_signature() of directories already stat()ed (None: missing)."""
    return hash(tuple(None if st is None else (st.st_ino, st.st_mtime_ns, st.st_size)
                      for st in stats))


class _Inotify:
    """The process's inotify descriptor and an event counter per watch descriptor."""

    def __init__(self):
        self.fd = -1
        self.counters: dict[int, int] = {}
        self.waiters: dict = {}  # event loop -> futures of the waits in progress
        self.subscribed: dict = {}  # event loop -> {watch descriptor: {Subscription}}
        self.lock = threading.Lock()
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.inotify_init1.argtypes = [ctypes.c_int]
            libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            self.libc = libc
            self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError):
            self.libc = None

    def add(self, path: str) -> int:
        """A watch descriptor for `path`, or -1."""
        if self.fd < 0:
            return -1
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), WATCH_MASK)
        if wd >= 0:
            with self.lock:
                self.counters.setdefault(wd, 0)
        return wd

    def drain(self) -> bool:
        """Count every queued event; wake every waiting loop when there were some, and the
        subscriptions of the directories that had events."""
        got = False
        touched: set[int] = set()
        with self.lock:
            while True:
                try:
                    data = os.read(self.fd, 65536)
                except (BlockingIOError, OSError):
                    break
                if not data:
                    break
                offset = 0
                while offset + EVENT_HEADER.size <= len(data):
                    wd, _mask, _cookie, length = EVENT_HEADER.unpack_from(data, offset)
                    self.counters[wd] = self.counters.get(wd, 0) + 1
                    touched.add(wd)
                    offset += EVENT_HEADER.size + length
                got = True
            waiting = [(loop, list(futures)) for loop, futures in self.waiters.items()] \
                if got else []
            due = []
            for loop, by_wd in self.subscribed.items():
                found = set()
                for wd in touched:
                    present = by_wd.get(wd)
                    if isinstance(present, set):
                        found |= present
                    elif present is not None:
                        found.add(present)
                if found:
                    due.append((loop, found))
        for loop, futures in waiting:
            for future in futures:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:  # that loop is closed
                    pass
        for loop, subscriptions in due:
            for subscription in subscriptions:
                try:
                    loop.call_soon_threadsafe(subscription.fire)
                except RuntimeError:
                    pass
        return got

    def _interested(self, loop) -> bool:
        return bool(self.waiters.get(loop)) or bool(self.subscribed.get(loop))

    def register(self, loop, future) -> None:
        with self.lock:
            first = not self._interested(loop)
            self.waiters.setdefault(loop, set()).add(future)
        if first:
            loop.add_reader(self.fd, self.drain)

    def unregister(self, loop, future) -> None:
        with self.lock:
            futures = self.waiters.get(loop, set())
            futures.discard(future)
            if not futures:
                self.waiters.pop(loop, None)
            last = not self._interested(loop)
        if last and not loop.is_closed():
            loop.remove_reader(self.fd)

    def subscribe(self, loop, subscription: "Subscription") -> None:
        with self.lock:
            first = not self._interested(loop)
            by_wd = self.subscribed.setdefault(loop, {})
            for wd in subscription.watcher.wds:
                # one subscriber of a directory is kept as itself, more as a set: a set
                # per idling session's directories would be 2 x 216 bytes each
                present = by_wd.get(wd)
                if present is None:
                    by_wd[wd] = subscription
                elif isinstance(present, set):
                    present.add(subscription)
                elif present is not subscription:
                    by_wd[wd] = {present, subscription}
        if first:
            loop.add_reader(self.fd, self.drain)

    def unsubscribe(self, loop, subscription: "Subscription") -> None:
        with self.lock:
            by_wd = self.subscribed.get(loop, {})
            for wd in subscription.watcher.wds:
                present = by_wd.get(wd)
                if present is subscription:
                    del by_wd[wd]
                elif isinstance(present, set):
                    present.discard(subscription)
                    if len(present) == 1:
                        by_wd[wd] = present.pop()
            if not by_wd:
                self.subscribed.pop(loop, None)
            last = not self._interested(loop)
        if last and not loop.is_closed():
            loop.remove_reader(self.fd)


class Subscription:
    """One pending `ChangeWatcher.subscribe`: calls `callback()` once, at the next change."""

    __slots__ = ("watcher", "callback", "loop", "handle", "inotify")

    def __init__(self, watcher: "ChangeWatcher", callback, loop):
        self.watcher, self.callback, self.loop = watcher, callback, loop
        self.inotify = None  # the _Inotify it is registered with
        self.handle = None  # the poll timer or the call_soon of a change seen at once

    def fire(self) -> None:
        """On the loop: a drain saw events in one of the directories (or the poll a new
        signature); the callback runs when the watcher agrees something changed."""
        if self.callback is None:
            return
        watcher = self.watcher
        if watcher.inotify is None and watcher.wds:
            changed = True  # closed meanwhile: a spurious wake-up, which callers allow
        elif watcher.inotify is not None:
            changed = watcher._changed()
        else:
            current = directory_signature(watcher.paths)
            changed = current != watcher._signature
            if changed:
                watcher._signature = current
            else:
                self.handle = self.loop.call_later(POLL_INTERVAL, self.fire)
                return
        if changed:
            callback = self.callback
            self.cancel()
            callback()

    def fire_now(self) -> None:
        """A change the subscriber already knows of: the callback without a check."""
        self.handle = None
        if self.callback is not None:
            callback = self.callback
            self.cancel()
            callback()

    def cancel(self) -> None:
        """Stop waiting (no callback after this); safe to call more than once."""
        if self.callback is None:
            return
        self.callback = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.inotify is not None:
            inotify, self.inotify = self.inotify, None
            inotify.unsubscribe(self.loop, self)


def _resolve(future) -> None:
    if not future.done():
        future.set_result(True)


_shared: _Inotify | None = None
_shared_lock = threading.Lock()


def shared_inotify() -> _Inotify:
    global _shared
    with _shared_lock:
        if _shared is None or (_shared.fd >= 0 and _shared.pid != os.getpid()):
            _shared = _Inotify()
            _shared.pid = os.getpid()
        return _shared


class ChangeWatcher:
    """Wakes when anything in `paths` (directories) changes after the watcher was made."""

    __slots__ = ("paths", "_signature", "inotify", "wds", "_seen")  # one per open mailbox

    def __init__(self, paths: list[str], *, use_inotify: bool = True):
        self.paths = list(paths)
        self._signature = directory_signature(self.paths)
        self.inotify = shared_inotify() if use_inotify else None
        self.wds: list[int] = []
        if self.inotify is not None:
            self.wds = [self.inotify.add(p) for p in self.paths if os.path.isdir(p)]
            if not self.wds or min(self.wds) < 0:
                self.inotify, self.wds = None, []
        self._seen = self._counts()

    @property
    def uses_inotify(self) -> bool:
        return self.inotify is not None

    def _counts(self) -> tuple:
        if self.inotify is None:
            return ()
        counters = self.inotify.counters
        return tuple(counters.get(wd, 0) for wd in self.wds)

    def _changed(self) -> bool:
        if self.inotify is None:
            return True  # closed while waiting: a spurious wake-up, which callers allow
        self.inotify.drain()
        counts = self._counts()
        if counts != self._seen:
            self._seen = counts
            return True
        return False

    def _differs_from(self, since: int | None) -> bool:
        """Whether the directories look different from `since` (a directory_signature() the
        caller took when it last looked); if so, what is seen now counts as seen."""
        if since is None:
            return False
        current = directory_signature(self.paths)
        if current == since:
            return False
        self._signature = current
        if self.inotify is not None:
            self.inotify.drain()
            self._seen = self._counts()
        return True

    async def wait(self, timeout: float, since: int | None = None) -> bool:
        """True when something changed (or may have) since the last wait (or the watcher's
        creation), False after `timeout` seconds. `since`: a directory_signature() taken
        when the caller last looked; a difference returns at once."""
        if self._differs_from(since):
            return True
        inotify = self.inotify  # close() may run while this waits
        if inotify is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                if self._changed():
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                woke = loop.create_future()
                inotify.register(loop, woke)
                try:
                    if self._changed():  # an event between the check and the register
                        return True
                    try:
                        # asyncio.timeout, not wait_for: no extra waiter per idle session
                        async with asyncio.timeout(remaining):
                            await woke
                    except TimeoutError:
                        return self._changed()
                finally:
                    inotify.unregister(loop, woke)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            current = directory_signature(self.paths)
            if current != self._signature:
                self._signature = current
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(POLL_INTERVAL, remaining))

    def subscribe(self, callback, since: int | None = None) -> Subscription:
        """Call `callback()` once on the running loop at the next change (a change since the
        last wait or subscription, or since `since`, a directory_signature(), counts: then
        it runs at once, through call_soon). Returns the Subscription; `.cancel()` it when
        no longer interested."""
        loop = asyncio.get_running_loop()
        subscription = Subscription(self, callback, loop)
        if self._differs_from(since):
            subscription.handle = loop.call_soon(subscription.fire_now)
            return subscription
        if self.inotify is not None:
            subscription.inotify = self.inotify
            self.inotify.subscribe(loop, subscription)
            if self._changed():  # events queued before the subscription
                subscription.handle = loop.call_soon(subscription.fire_now)
        else:
            subscription.handle = loop.call_later(POLL_INTERVAL, subscription.fire)
        return subscription

    def close(self) -> None:
        """Nothing to release: the descriptor is shared, the watches stay."""
        self.inotify = None
