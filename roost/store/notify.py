"""The store's change feed across processes: inotify on the mailbox directories, or polling.

Implements Mailbox.wait_changed for file-based stores: Linux inotify(7) through ctypes
(IN_CREATE, IN_MOVED_TO, IN_MOVED_FROM, IN_DELETE, IN_CLOSE_WRITE, IN_ATTRIB, IN_MODIFY on
each watched directory). One inotify instance serves the whole process (the kernel allows
only max_user_instances, 128 by default, per user), with a counter of events per watched
directory: a watcher remembers the counters it has seen, so a change that happened before
it started waiting is never lost. Where inotify is missing or exhausted, a poll of the
directories' mtimes every POLL_INTERVAL seconds. Either way a change made by any process
wakes the waiter within a second.

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


class _Inotify:
    """The process's inotify descriptor and an event counter per watch descriptor."""

    def __init__(self):
        self.fd = -1
        self.counters: dict[int, int] = {}
        self.waiters: dict = {}  # event loop -> futures of the waits in progress
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
        """Count every queued event; wake every waiting loop when there were some."""
        got = False
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
                    offset += EVENT_HEADER.size + length
                got = True
            waiting = [(loop, list(futures)) for loop, futures in self.waiters.items()] \
                if got else []
        for loop, futures in waiting:
            for future in futures:
                try:
                    loop.call_soon_threadsafe(_resolve, future)
                except RuntimeError:  # that loop is closed
                    pass
        return got

    def register(self, loop, future) -> None:
        with self.lock:
            futures = self.waiters.setdefault(loop, set())
            first = not futures
            futures.add(future)
        if first:
            loop.add_reader(self.fd, self.drain)

    def unregister(self, loop, future) -> None:
        with self.lock:
            futures = self.waiters.get(loop, set())
            futures.discard(future)
            last = not futures
            if last:
                self.waiters.pop(loop, None)
        if last and not loop.is_closed():
            loop.remove_reader(self.fd)


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

    async def wait(self, timeout: float, since: int | None = None) -> bool:
        """True when something changed (or may have) since the last wait (or the watcher's
        creation), False after `timeout` seconds. `since`: a directory_signature() taken
        when the caller last looked; a difference returns at once."""
        if since is not None:
            current = directory_signature(self.paths)
            if current != since:
                self._signature = current
                if self.inotify is not None:
                    self.inotify.drain()
                    self._seen = self._counts()
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

    def close(self) -> None:
        """Nothing to release: the descriptor is shared, the watches stay."""
        self.inotify = None
