"""Service handler registry: which code serves the connections of a listener's handler.

A Listener names its handler ("smtpd", "imap", "pop3", "lmtp", "auth"). A protocol
implementation plugs in by providing, in the module named in HANDLER_MODULES (or by calling
`register_handler` before the master forks), a factory

    def make_service(context: roost.net.server.ServiceContext) -> ConnectionHandler
    async def handler(conn: roost.net.server.Connection) -> None

A background service (the queue manager) has no listeners: its handler object carries
`background`, an async callable `background(stopping: asyncio.Event)` that the worker runs
until the master stops it.

The factory runs once in each worker process after the fork (open per-process resources
there); the handler runs once per accepted connection, with asyncio streams, the Listener
(and its per-service Settings), the Config, the service logger and the listener's TLS context
for STARTTLS. Until a module exists, its listeners are served by roost.net.unavailable.

The second half classifies master.cf services that are not socket listeners in roost
(master(5) internal services: pickup, cleanup, qmgr, ...) into ones roost does internally and
ones it does not support, for the master's start-up log.

Invariants: resolving never raises; an implementation that fails to import is reported and
replaced by the "not available" handler, so one broken protocol never stops the others.
Security: module names come from the fixed table below, never from configuration.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Callable

from roost.net import unavailable

# handler name -> module that will provide make_service(context) for it.
HANDLER_MODULES = {
    "smtpd": "roost.net.smtpd",
    "lmtp": "roost.net.lmtp",
    "imap": "roost.net.imap",
    "pop3": "roost.net.pop3",
    "auth": "roost.net.auth",
    "qmgr": "roost.qmgr",  # a background service: no listeners (roost.master.plan)
}

NOT_LANDED = "roost implementation not available yet"

_registered: dict[str, Callable] = {}


def register_handler(name: str, factory: Callable) -> None:
    """Serve handler `name` with `factory(context) -> handler` (wins over HANDLER_MODULES)."""
    _registered[name] = factory


def unregister_handler(name: str) -> None:
    _registered.pop(name, None)


@dataclass(frozen=True)
class ResolvedHandler:
    name: str
    factory: Callable  # make_service(context) -> async handler(conn)
    available: bool  # False: answering "service not available"
    reason: str | None  # why not available, for the log


def resolve_handler(name: str) -> ResolvedHandler:
    if name in _registered:
        return ResolvedHandler(name, _registered[name], True, None)
    module_name = HANDLER_MODULES.get(name)
    if module_name is None:
        return ResolvedHandler(name, unavailable.make_service, False, "not supported by roost")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return ResolvedHandler(name, unavailable.make_service, False, NOT_LANDED)
        return ResolvedHandler(name, unavailable.make_service, False,
                               f"cannot load {module_name}: {exc}")
    except Exception as exc:  # a broken implementation must not stop the other services
        return ResolvedHandler(name, unavailable.make_service, False,
                               f"cannot load {module_name}: {type(exc).__name__}: {exc}")
    factory = getattr(module, "make_service", None)
    if not callable(factory):
        return ResolvedHandler(name, unavailable.make_service, False,
                               f"{module_name} has no make_service()")
    return ResolvedHandler(name, factory, True, None)


# master.cf commands (daemon program names) whose job roost does inside its own processes:
# the queue manager, cleanup, delivery agents, address rewriting, bounces, and helpers
# (tlsmgr, anvil, scache, proxymap, postlogd) that a single-package server does not need.
INTERNAL_COMMANDS = frozenset({
    "pickup", "cleanup", "qmgr", "oqmgr", "tlsmgr", "trivial-rewrite", "bounce", "verify",
    "flush", "proxymap", "smtp", "lmtp", "showq", "error", "discard", "local", "virtual",
    "anvil", "scache", "postlogd",
})


@dataclass(frozen=True)
class NonListenerServices:
    internal: tuple  # MasterService objects roost provides internally
    unsupported: tuple  # (MasterService, reason)


def classify_non_listeners(services) -> NonListenerServices:
    """Sort master.cf services that are not inet listeners into internal / unsupported."""
    internal, unsupported = [], []
    for service in services:
        if getattr(service, "type", None) == "inet":
            continue
        command = os.path.basename(getattr(service, "command", "") or "")
        if command in INTERNAL_COMMANDS:
            internal.append(service)
        elif command == "pipe":
            unsupported.append((service, "pipe(8) delivery is not supported yet"))
        else:
            unsupported.append((service, f"{command or 'this command'} is not supported yet"))
    return NonListenerServices(tuple(internal), tuple(unsupported))
