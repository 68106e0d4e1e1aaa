"""The delivery agents by master.cf command name (Postfix's `local`, `virtual`, `smtp`, `lmtp`,
`error`, `discard`): `agent_for(command)` returns the coroutine function
`deliver(request, settings, *, resolver, log) -> list[RecipientResult]`. The queue manager
maps a transport (master.cf service name) to its command and calls it; `retry` is error(8)
run as the retry service. Invariants: unknown commands give None (the caller defers).
Security: a command name selects among these fixed functions, never an import path.
"""

from __future__ import annotations

from functools import partial

from roost.delivery import local, pipe, simple, smtp, virtual

AGENTS = {
    "local": local.deliver,
    "virtual": virtual.deliver,
    "smtp": partial(smtp.deliver, lmtp=False),
    "relay": partial(smtp.deliver, lmtp=False),
    "lmtp": partial(smtp.deliver, lmtp=True),
    "error": simple.deliver_error,
    "retry": simple.deliver_retry,
    "discard": simple.deliver_discard,
    "pipe": pipe.deliver,   # the caller adds service=NAME, args=(the master.cf words after "pipe")
}


def agent_for(command: str):
    return AGENTS.get(command)
