"""From a Config to the worker pools the master runs, and to the loggers each one uses.

Pool sizing: a service gets `min(maxproc, os.cpu_count())` workers, all started up-front
(maxproc 0 means "no limit" in master(5), i.e. the CPU count). Why:
- each worker is one asyncio loop serving many connections, so more workers than cores buys
  no throughput, only memory (a Python process is tens of MB) and context switches;
- one worker per core still lets a CPU-heavy session (a large message, a TLS handshake storm)
  stall only its own process while the other cores keep serving;
- maxproc stays an upper bound, so `maxproc 1` (Dovecot auth, a single-process service) is
  honoured exactly;
- starting all of them before the first client, rather than on demand like Postfix, keeps the
  master simple (no accept-notification protocol) and the first connection fast.

Listeners are grouped into one pool per (service, handler): a Postfix service listening on
several `inet_interfaces` is one service with several sockets, as in Postfix's master.
Dovecot listeners are recognised by their `service/listener` name (Listener.service).
Invariants: pure functions of the Config; no sockets, no processes.
Security: nothing here is influenced by clients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics
from roost.config.master_cf import active_services
from roost.log import LogSetup


@dataclass(frozen=True)
class ServiceSpec:
    """One pool of identical workers."""

    name: str  # Listener.service
    handler: str  # Listener.handler
    listeners: tuple  # every Listener of this service
    pool_size: int
    dovecot: bool  # a Dovecot-side service (logs in Dovecot's format)
    settings: object = None  # a background service's Settings (listener-less); else None

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.handler)


def is_dovecot_listener(listener) -> bool:
    return listener.origin == "dovecot"


def pool_size(maxproc: int, cpus: int | None = None) -> int:
    cpus = max(1, cpus or os.cpu_count() or 1)
    return cpus if maxproc <= 0 else min(maxproc, cpus)


def plan_services(config, cpus: int | None = None) -> list[ServiceSpec]:
    grouped: dict[tuple[str, str], list] = {}
    for listener in config.listeners:
        grouped.setdefault((listener.service, listener.handler), []).append(listener)
    specs = []
    for (name, handler), listeners in grouped.items():
        maxproc = min(listener.maxproc for listener in listeners)
        specs.append(ServiceSpec(name=name, handler=handler, listeners=tuple(listeners),
                                 pool_size=pool_size(maxproc, cpus),
                                 dovecot=is_dovecot_listener(listeners[0])))
    return specs + background_services(config)


# master.cf commands that roost runs as one socket-less background process each (the
# queue manager also does pickup's job: maildrop/ is one of the directories it watches).
BACKGROUND_COMMANDS = ("qmgr",)


def background_services(config) -> list[ServiceSpec]:
    """One single-process pool per active master.cf service in BACKGROUND_COMMANDS."""
    specs = []
    for service in active_services(getattr(config, "services", ()) or ()):
        command = os.path.basename(service.command or "")
        if command in BACKGROUND_COMMANDS and service.type == "unix":
            settings = config.main.with_overrides(service.overrides, service.file,
                                                  service.line, Diagnostics())
            specs.append(ServiceSpec(name=service.name, handler=command, listeners=(),
                                     pool_size=1, dovecot=False, settings=settings))
    return specs


def dovecot_service_name(spec: ServiceSpec) -> str:
    """The process name Dovecot logs for this service: "imap-login" of "imap-login/imaps"."""
    return spec.name.split("/", 1)[0]


def service_logger(spec: ServiceSpec, logs: LogSetup):
    """The logger a worker of `spec` writes with: Dovecot format for Dovecot services,
    `$syslog_name/<handler>` (per-service syslog_name override honoured) for Postfix ones."""
    if spec.dovecot:
        return logs.dovecot(dovecot_service_name(spec))
    settings = spec.listeners[0].settings if spec.listeners else spec.settings
    try:
        syslog_name = settings.get("syslog_name") or "postfix"
    except Exception:
        syslog_name = "postfix"
    return logs.postfix(spec.handler, syslog_name)


def describe_listener(listener) -> str:
    if listener.family == "unix":
        where = f"unix:{listener.path}"
    elif listener.host and ":" in listener.host:
        where = f"[{listener.host}]:{listener.port}"
    else:
        where = f"{listener.host or '*'}:{listener.port}"
    return f"{listener.service} ({listener.handler}) on {where}" + (" with TLS" if listener.tls_wrapper else "")
