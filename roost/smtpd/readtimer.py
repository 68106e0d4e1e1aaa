"""smtpd_timeout for the reads of one SMTP session (postconf(5) smtpd_timeout), with one timer
per session instead of one per read.

`ReadTimer.read(reader, size)` returns what `reader.read(size)` returns, or None when nothing
came for `timeout` seconds. The deadline moves with every read; the single loop timer is armed
at the first read and, when it fires early (a later read moved the deadline), re-armed for
the current deadline: a client that keeps talking costs one timer for its whole session,
where `asyncio.timeout` per read schedules and cancels one each time.

Invariants: the timer interrupts only a read in progress (the session task is cancelled while
it awaits the reader, and the cancellation is taken back there: `Task.uncancel`); a timer is
never left behind (`close()`); a cancellation from anyone else passes through untouched.
Security: bounds how long a silent client holds a session.
"""

from __future__ import annotations

import asyncio


class ReadTimer:
    def __init__(self, timeout: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """`loop`: the running loop when the caller has it (asking asyncio for it costs a
        getpid() system call)."""
        self.timeout = timeout
        self._loop = loop = loop or asyncio.get_running_loop()
        self._task = asyncio.current_task(loop)  # given the loop: no second look-up of it
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # set only while a read is awaited
        self._fired = False

    def _expired(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:  # not reading now: the next read arms a timer again
            return
        if self._loop.time() < deadline:  # a later read moved the deadline
            self._timer = self._loop.call_at(deadline, self._expired)
            return
        self._fired = True
        self._task.cancel()  # interrupts the read; read() takes the cancellation back

    async def read(self, reader, size: int) -> bytes | None:
        self._deadline = deadline = self._loop.time() + self.timeout
        if self._timer is None:
            self._timer = self._loop.call_at(deadline, self._expired)
        try:
            return await reader.read(size)
        except asyncio.CancelledError:
            if not self._fired:
                raise
            self._fired = False
            self._task.uncancel()
            return None
        finally:
            self._deadline = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
