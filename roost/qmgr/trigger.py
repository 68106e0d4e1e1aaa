"""Waking the queue manager: a datagram socket at `$queue_directory/public/qmgr`.

Postfix's qmgr listens on the `public/qmgr` FIFO for one-letter requests (qmgr(8) "TRIGGERS"):
`I` scan incoming, `D` scan deferred, `F` flush (deferred mail now, what `postqueue -f`
and ETRN ask), `A` scan everything, `W` wake up. roost uses a UNIX datagram socket at the
same path: senders never block, and a request to a stopped manager is simply lost (the
manager scans everything when it starts, so nothing waits for a lost request).

Invariants: `send_request` never raises; unknown letters are ignored by the receiver.
Security: the socket is mode 0622 like Postfix's public FIFO: anyone may poke it, and a poke
only makes the manager look at its own queue sooner.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

REQUESTS = frozenset("IDFAW")


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


class TriggerProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_request: Callable[[str], None]):
        self.on_request = on_request

    def datagram_received(self, data: bytes, addr) -> None:
        for letter in data[:16].decode("ascii", "ignore"):
            if letter in REQUESTS:
                self.on_request(letter)


async def listen(queue_directory: str, on_request: Callable[[str], None]):
    """Bind the trigger socket (replacing a stale one); returns the transport to close."""
    path = trigger_path(queue_directory)
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o622)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: TriggerProtocol(on_request),
                                                       sock=sock)
    return transport
