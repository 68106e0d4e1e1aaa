"""The queue manager service: master.cf `qmgr unix n - n 300 1 qmgr`, one background process.

roost.master runs it as a socket-less worker (roost.master.plan.background_services);
`make_service` builds a QueueManager (roost.qmgr.manager) with the delivery agent of each
transport: the master.cf service of that name (`smtp`, `relay`, `local`, `virtual`, `lmtp`,
`error`, `discard`, `retry`...) names the agent by its command (roost.delivery.agents) and
gives it its `-o` overrides, as Postfix's master runs that command for the transport (pipe(8)
also gets its service name and its master.cf arguments: flags=, user=, argv=). An
`lmtp:` nexthop that is roost's own LMTP listener is delivered straight into the store
(roost.delivery.store), without roost talking LMTP to itself.

Invariants: a transport without a master.cf service, or whose command roost has no agent
for, defers its mail ("mail transport unavailable"), as Postfix does.
Security: agent modules come from a fixed table, never from configuration text.
"""

from __future__ import annotations

import os
from functools import partial

from roost.config.diagnostics import Diagnostics
from roost.config.master_cf import active_services

def transport_agents(config, log, own_lmtp=None, log_setup=None) -> dict:
    """transport name -> (deliver, Settings with that service's -o overrides, logger
    `$syslog_name/<command>` as Postfix's agent would log); the lmtp
    agent delivers straight into the store when the nexthop is roost's own LMTP listener
    (`own_lmtp`: (LmtpConfig, listener addresses))."""
    from roost.delivery.agents import agent_for

    found: dict = {}
    for service in active_services(config.services):
        if service.type != "unix":
            continue
        command = os.path.basename(service.command or "")
        # master.cf runs error(8) as `retry` too: that service defers instead of bouncing
        deliver = agent_for("retry" if (command, service.name) == ("error", "retry") else command)
        if deliver is None:
            continue
        if command == "pipe":  # pipe(8) reads its flags=, user=, argv= from master.cf
            deliver = partial(deliver, service=service.name, args=tuple(service.args))
        if command == "lmtp" and own_lmtp is not None:
            deliver = _lmtp_with_shortcut(deliver, *own_lmtp, config.main.get("queue_directory"))
        settings = config.main.with_overrides(service.overrides, service.file, service.line,
                                              Diagnostics())
        agent_log = log if log_setup is None else log_setup.postfix(
            command, settings.get("syslog_name") or "postfix")
        found[service.name] = (deliver, settings, agent_log)
    return found


def own_lmtp_endpoints(config) -> set:
    """("unix", path) and ("inet", host, port) of roost's own LMTP listeners."""
    endpoints: set = set()
    for listener in config.listeners:
        if listener.handler != "lmtp":
            continue
        if listener.path:
            endpoints.add(("unix", os.path.realpath(listener.path)))
        elif listener.port:
            for host in (listener.host or "127.0.0.1", "localhost"):
                endpoints.add(("inet", host, listener.port))
    return endpoints


def _lmtp_with_shortcut(network_deliver, lmtp_config, endpoints: set, queue_directory: str):
    from roost.delivery import store
    from roost.delivery.destination import parse_nexthop

    async def deliver(request, settings, *, resolver, log):
        nexthop = parse_nexthop(request.nexthop, lmtp=True)
        if nexthop.kind == "unix":
            path = nexthop.host if os.path.isabs(nexthop.host) else \
                os.path.join(queue_directory, nexthop.host)
            key = ("unix", os.path.realpath(path))
        else:
            key = ("inet", nexthop.host, nexthop.port or 24)
        if key in endpoints:
            return await store.deliver(request, settings, resolver=resolver, log=log,
                                       lmtp_config=lmtp_config)
        return await network_deliver(request, settings, resolver=resolver, log=log)

    return deliver


# gc generation-0 threshold of the queue-manager process (CPython's default is 700)
GC_THRESHOLD = 20000


def _tune_collector() -> None:
    """The queue manager allocates a few dozen short-lived containers per message (records,
    requests, results, futures) that reference counting frees; at CPython's default
    threshold a generation-0 collection ran every ~70 messages, each walking the whole
    working set of the messages in flight (~5-10 us per delivered message in all). Objects
    made at start-up (modules, settings, tables) are moved out of the collector's sight
    (gc.freeze) and collections run every GC_THRESHOLD net allocations instead: the same
    garbage is found, later (a cycle waits for at most that many allocations)."""
    import gc

    gc.freeze()
    _first, second, third = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, second, third)


def make_service(context):
    from roost.cleanup import CleanupService
    from roost.qmgr import trigger
    from roost.qmgr.manager import QueueManager
    from roost.qmgr.pickup import Pickup
    from roost.queue import QueueLayout

    settings = context.config.main
    own_lmtp = None
    endpoints = own_lmtp_endpoints(context.config)
    if endpoints and context.config.dovecot is not None:
        from roost.net.lmtp import build_config
        own_lmtp = (build_config(context), endpoints)
    agents = transport_agents(context.config, context.log, own_lmtp, context.log_setup)
    resolver = None
    try:
        from roost.net.dns import Resolver
        resolver = Resolver()
    except Exception as exc:  # noqa: BLE001 - smtp then defers for want of DNS
        context.log.warning(f"DNS resolver unavailable: {exc}")
    syslog_name = settings.get("syslog_name") or "postfix"
    pickup = Pickup(QueueLayout.from_settings(settings),
                    CleanupService(settings, context.log_setup.postfix("cleanup", syslog_name)),
                    context.log_setup.postfix("pickup", syslog_name))
    manager = QueueManager(settings, context.log, agent_for=agents.get, resolver=resolver,
                           pickup=pickup,
                           bounce_log=context.log_setup.postfix("bounce", syslog_name))

    async def handle(conn):  # no listeners: never called
        return None

    async def background(stopping):
        listener = await trigger.listen(settings.get("queue_directory"), manager.request,
                                        manager.queued)
        _tune_collector()
        try:
            await manager.run(stopping)
        finally:
            listener.close()

    handle.background = background
    handle.manager = manager
    return handle
