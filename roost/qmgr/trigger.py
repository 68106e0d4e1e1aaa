"""Waking the queue manager: a datagram socket at `$queue_directory/public/qmgr`.

Postfix's qmgr listens on the `public/qmgr` FIFO for one-letter requests (qmgr(8) "TRIGGERS"):
`I` scan incoming, `D` scan deferred, `F` flush (deferred mail now, what `postqueue -f`
and ETRN ask), `A` scan everything, `W` wake up. roost uses a UNIX datagram socket at the
same path: senders never block, and a request to a stopped manager is simply lost (the
manager scans everything when it starts, so nothing waits for a lost request).

roost's own addition: cleanup announces each queue file it committed with
`notify_queued(queue_directory, queue_id)`, a datagram `I:ID [ID...]`, so the manager takes
that file at once without scanning `incoming` (Postfix's `I` makes qmgr scan the whole
directory). A datagram the socket could not take (the receiver's queue is full) is not
lost: its IDs go with the next one from the same process or with a retry RETRY_DELAY later,
and the manager's scan of `incoming` every second finds any file whose announcement never
came. The manager drains every waiting datagram when its socket is readable (Listener).

Invariants: `send_request` and `notify_queued` never raise; unknown letters are ignored by
the receiver; a queue ID is acted on only when it is a valid queue ID.
Security: the socket is mode 0622 like Postfix's public FIFO: anyone may poke it, and a poke
only makes the manager look at its own queue sooner.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable

from roost.log import current_pid
from roost.queue.ids import is_queue_id

REQUESTS = frozenset("IDFAW")
QUEUED_PREFIX = b"I:"
MAX_PENDING = 64          # announcements kept for the next datagram when one could not go
MAX_DATAGRAM = 4096
MAX_DRAIN = 64            # datagrams read per readiness of the socket
RETRY_DELAY = 0.02        # seconds before announcements that found the queue full go again
RETRIES = 25


def trigger_path(queue_directory: str) -> str:
    return os.path.join(queue_directory, "public", "qmgr")


def send_request(queue_directory: str, letters: str = "I") -> bool:
    """Poke the manager; False when no manager listens."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(letters.encode("ascii", "ignore"), trigger_path(queue_directory))
        return True
    except OSError:
        return False


class _Announcer:
    """One unbound datagram socket per process (made again after a fork) and the IDs whose
    datagram could not be sent yet: they go with the next announcement, or with a retry
    RETRY_DELAY later (a timer thread, at most RETRIES times) when no other comes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.pid = 0
        self.pending: list[bytes] = []
        self.queue_directory = ""
        self.retry: threading.Timer | None = None
        self.retries = 0

    def send(self, queue_directory: str, queue_id: str) -> bool:
        with self.lock:
            if self.sock is None or self.pid != current_pid():
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self.sock.setblocking(False)
                self.pid = current_pid()
                self.pending = []
                self.retry = None
            self.queue_directory = queue_directory
            self.retries = 0
            return self._send_locked([queue_id.encode("ascii", "ignore")])

    def _send_locked(self, new: list[bytes]) -> bool:
        ids = self.pending + new
        payload = QUEUED_PREFIX + b" ".join(ids)
        while len(payload) > MAX_DATAGRAM and len(ids) > 1:
            ids = ids[1:]   # the oldest are left to the manager's regular scan
            payload = QUEUED_PREFIX + b" ".join(ids)
        try:
            self.sock.sendto(payload, trigger_path(self.queue_directory))
        except (BlockingIOError, InterruptedError):   # the manager's queue is full
            self.pending = ids[-MAX_PENDING:]
            if self.retry is None and self.retries < RETRIES:
                self.retry = threading.Timer(RETRY_DELAY, self._retry)
                self.retry.daemon = True
                self.retry.start()
            return False
        except OSError:   # no manager listening: it scans everything when it starts
            self.pending = []
            return False
        self.pending = []
        return True

    def _retry(self) -> None:
        with self.lock:
            self.retry = None
            if self.pid != current_pid() or not self.pending:
                return
            self.retries += 1
            self._send_locked([])


_announcer = _Announcer()


def notify_queued(queue_directory: str, queue_id: str) -> bool:
    """cleanup, after the queue file `queue_id` is durable: ask the manager to take it now.
    False when the datagram could not go (it is then retried with the next one)."""
    return _announcer.send(queue_directory, queue_id)


class TriggerProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_request: Callable[[str], None],
                 on_queued: Callable[[str], None] | None = None):
        self.on_request = on_request
        self.on_queued = on_queued

    def datagram_received(self, data: bytes, addr) -> None:
        if data.startswith(QUEUED_PREFIX):
            if self.on_queued is None:
                self.on_request("I")
                return
            for word in data[len(QUEUED_PREFIX):MAX_DATAGRAM].split():
                queue_id = word.decode("ascii", "ignore")
                if is_queue_id(queue_id):
                    self.on_queued(queue_id)
            return
        for letter in data[:16].decode("ascii", "ignore"):
            if letter in REQUESTS:
                self.on_request(letter)


class Listener:
    """The bound trigger socket in an event loop: every readiness drains the datagrams that
    wait (up to MAX_DRAIN), so the receive queue (net.unix.max_dgram_qlen, often 10) seldom
    fills while cleanup processes announce files."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol: TriggerProtocol):
        self.loop = loop
        self.sock = sock
        self.protocol = protocol
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._drain)

    def _drain(self) -> None:
        for _ in range(MAX_DRAIN):
            try:
                data = self.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.protocol.datagram_received(data, None)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


async def listen(queue_directory: str, on_request: Callable[[str], None],
                 on_queued: Callable[[str], None] | None = None) -> Listener:
    """Bind the trigger socket (replacing a stale one); returns the Listener to close.
    `on_queued(queue_id)` receives notify_queued announcements (else they count as "I")."""
    path = trigger_path(queue_directory)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(path)
    os.chmod(path, 0o622)
    return Listener(asyncio.get_running_loop(), sock, TriggerProtocol(on_request, on_queued))
