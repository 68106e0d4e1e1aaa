"""Open SMTP/LMTP connections kept between messages to one destination (Postfix scache(8)).

Postfix's smtp(8) keeps a connection after a delivery (ending it with RSET instead of QUIT)
when the queue manager has more mail for the destination (smtp_connection_cache_on_demand)
or the destination is listed in smtp_connection_cache_destinations; an idle connection is
closed after smtp_connection_cache_time_limit (2 s), and none is reused longer than
smtp_connection_reuse_time_limit (300 s) after it was opened. The queue manager owns one
ConnectionCache per process and passes it to roost.delivery.smtp.deliver(cache=...).

Invariants: a connection is in the cache at most once, only between deliveries; `take`
never returns one the server has already closed or that has outlived its limits.
Security: connections are keyed by destination and TLS level, so mail never travels over a
connection made under a weaker TLS policy than its own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from roost.delivery.destination import Target
from roost.proto.smtp_client import ResumeState


@dataclass
class Cached:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    state: ResumeState
    target: Target
    opened: float
    uses: int = 1
    parked: float = field(default_factory=time.monotonic)


class ConnectionCache:
    def __init__(self, idle_limit: float = 2.0, reuse_limit: float = 300.0) -> None:
        self.idle_limit = idle_limit
        self.reuse_limit = reuse_limit
        self._idle: dict[tuple, list[Cached]] = {}

    @classmethod
    def from_settings(cls, settings) -> "ConnectionCache":
        return cls(settings.time("smtp_connection_cache_time_limit") or 2.0,
                   settings.time("smtp_connection_reuse_time_limit") or 300.0)

    def _usable(self, cached: Cached) -> bool:
        now = time.monotonic()
        return (not cached.reader.at_eof() and not cached.writer.is_closing()
                and now - cached.parked <= self.idle_limit and now - cached.opened <= self.reuse_limit)

    def take(self, key: tuple) -> Cached | None:
        entries = self._idle.get(key, [])
        while entries:
            cached = entries.pop()
            if self._usable(cached):
                cached.uses += 1
                return cached
            cached.writer.close()
        self._idle.pop(key, None)
        return None

    def put(self, key: tuple, cached: Cached) -> None:
        if time.monotonic() - cached.opened > self.reuse_limit:
            cached.writer.close()
            return
        cached.parked = time.monotonic()
        self._idle.setdefault(key, []).append(cached)
        try:
            asyncio.get_running_loop().call_later(self.idle_limit + 0.05, self._expire, key, cached)
        except RuntimeError:
            pass

    def _expire(self, key: tuple, cached: Cached) -> None:
        entries = self._idle.get(key)
        if entries and cached in entries and not self._usable(cached):
            entries.remove(cached)
            cached.writer.close()   # Postfix sends QUIT here; closing is enough for an idle peer

    def close_all(self) -> None:
        for entries in self._idle.values():
            for cached in entries:
                cached.writer.close()
        self._idle.clear()

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._idle.values())
