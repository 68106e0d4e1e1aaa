"""Which event loop a worker process runs: uvloop when it is installed, else asyncio's own.

DESIGN.md §4 names uvloop as an optional dependency ("uvloop when installed"); the set-up
scripts install it. Every service is written against asyncio's public API only, so both loops
serve the same bytes; `ROOST_EVENT_LOOP=asyncio` in the environment forces the stdlib loop
(for side-by-side measurements and to rule the loop out when chasing a bug). The queue
manager always runs asyncio's loop: its delivery agents start commands as the recipient
(`create_subprocess_exec(user=, group=, extra_groups=)`), which uvloop does not take.

Invariants: the choice is made once per process, when the loop is created; nothing else in
roost imports uvloop.
Security: no effect on what a client can do; uvloop is imported only from the installed
environment, never from a path taken from configuration.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Coroutine

# handlers whose worker needs asyncio's own loop (see the module docstring)
STDLIB_LOOP_HANDLERS = frozenset({"qmgr"})


def loop_factory(handler: str = "") -> Callable[[], asyncio.AbstractEventLoop]:
    """The constructor of the loop a worker of `handler` runs."""
    if handler not in STDLIB_LOOP_HANDLERS and os.environ.get("ROOST_EVENT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.SelectorEventLoop


def run(main: Coroutine[Any, Any, Any], handler: str = "") -> Any:
    """asyncio.run(main) on the loop loop_factory(handler) chooses."""
    with asyncio.Runner(loop_factory=loop_factory(handler)) as runner:
        return runner.run(main)
