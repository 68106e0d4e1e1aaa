"""Load a configuration directory into one frozen `Config`: settings, services, listeners.

Reads `main.cf` and `master.cf` from the directory and `dovecot.conf` from the main.cf
parameter `dovecot_config_file` (default `$config_directory/dovecot.conf`), gives every
listener its own Settings (main.cf plus that service's `-o` overrides, master(5)), and lists
every socket the master must bind: master.cf `inet` services that roost serves and Dovecot's
login/lmtp/auth listeners.

Invariants: never raises on bad configuration; every problem is a Diagnostic with file and
line, all of them from one run. A Config with a fatal diagnostic must not be started.
Security: only reads the files named by the administrator; nothing here opens sockets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import DovecotConfig, parse_dovecot_conf
from roost.config.dovecot_listeners import dovecot_listeners
from roost.config.listen import duplicate_endpoints, inet_endpoints
from roost.config.main_cf import parse_main_cf
from roost.config.master_cf import MasterService, active_services, effective_maxproc, parse_master_cf
from roost.config.process_users import check_process_users
from roost.config.size_limits import check_size_limits
from roost.config.settings import Settings

# master.cf command -> roost handler serving its inet listeners.
POSTFIX_INET_HANDLERS = {"smtpd": "smtpd"}
# Dovecot service -> roost handler.
DOVECOT_HANDLERS = {"imap-login": "imap", "pop3-login": "pop3", "lmtp": "lmtp", "auth": "auth",
                    "imap": "imap", "pop3": "pop3"}


@dataclass(frozen=True)
class Listener:
    """One socket the master binds, and who serves it."""

    service: str  # master.cf service name, or Dovecot "imap-login/imaps"
    origin: str  # "postfix" (master.cf) or "dovecot" (dovecot.conf): decides log format and names
    handler: str  # "smtpd", "imap", "pop3", "lmtp", "auth", ...
    family: str  # "inet" | "unix"
    host: str | None
    port: int | None
    path: str | None
    mode: int | None
    user: str | None
    group: str | None
    tls_wrapper: bool  # TLS from the first byte (smtps, imaps, pop3s)
    maxproc: int
    settings: Settings
    file: str
    line: int

    def describe(self) -> str:
        where = f"unix:{self.path}" if self.family == "unix" else (
            f"[{self.host}]:{self.port}" if self.host and ":" in self.host else f"{self.host}:{self.port}")
        tls = " (TLS)" if self.tls_wrapper else ""
        return f"{self.service} ({self.handler}) on {where}{tls}"


@dataclass(frozen=True)
class Config:
    config_dir: str
    main: Settings
    services: tuple[MasterService, ...]
    dovecot: DovecotConfig | None
    listeners: tuple[Listener, ...]
    diagnostics: Diagnostics


def load_config(config_dir: str) -> Config:
    config_dir = os.path.abspath(config_dir)
    diags = Diagnostics()
    main_path = os.path.join(config_dir, "main.cf")
    main_cf = parse_main_cf(main_path, diags)
    # master.cf first: its `-o` values may be the only users of a main.cf parameter
    # (e.g. `-o smtpd_client_restrictions=$mua_client_restrictions`), as postconf knows.
    services = parse_master_cf(os.path.join(config_dir, "master.cf"), diags)
    settings = Settings.from_main_cf(main_cf, config_dir, diags, services=services)
    postfix_listeners = _postfix_listeners(services, settings, diags)

    dovecot = _load_dovecot(settings, diags)
    if dovecot is not None:
        check_process_users(dovecot, settings.get("mail_owner"), diags)
    dovecot_side = _dovecot_listeners(dovecot, settings, diags) if dovecot is not None else []

    listeners = tuple(postfix_listeners + dovecot_side)
    duplicate_endpoints(
        [(_endpoint_key(listener), listener.file, listener.line) for listener in listeners], diags)
    settings.validate(diags)
    check_size_limits(settings, main_path, diags)
    return Config(config_dir, settings, services, dovecot, listeners, diags)


def _endpoint_key(listener: Listener):
    if listener.family == "unix":
        return ("unix", listener.path)
    return ("inet", listener.host, listener.port)


def _postfix_listeners(services, settings: Settings, diags: Diagnostics) -> list[Listener]:
    listeners = []
    interfaces = settings.list("inet_interfaces")
    protocols = settings.list("inet_protocols")
    process_limit = settings.int("default_process_limit")
    # Of duplicate entries the last one wins, as in master(8); the parser already warned.
    for service in active_services(services):
        if service.type != "inet":
            continue
        own = settings.with_overrides(service.overrides, service.file, service.line, diags)
        handler = POSTFIX_INET_HANDLERS.get(service.command, service.command)
        for endpoint in inet_endpoints(service.name, interfaces, protocols, diags,
                                       service.file, service.line):
            listeners.append(Listener(
                service=service.name, origin="postfix", handler=handler, family="inet",
                host=endpoint.host,
                port=endpoint.port, path=None, mode=None, user=None, group=None,
                tls_wrapper=own.bool("smtpd_tls_wrappermode"),
                maxproc=effective_maxproc(service, process_limit), settings=own,
                file=service.file, line=service.line))
    return listeners


def _load_dovecot(settings: Settings, diags: Diagnostics) -> DovecotConfig | None:
    path = settings.get("dovecot_config_file")
    if not os.path.exists(path) and "dovecot_config_file" not in settings.explicit:
        return None  # a Postfix-only configuration: no IMAP/POP3/LMTP listeners
    return parse_dovecot_conf(path, diags)


def _dovecot_listeners(dovecot: DovecotConfig, settings: Settings, diags: Diagnostics) -> list[Listener]:
    listeners = []
    for dl in dovecot_listeners(dovecot, diags):
        handler = DOVECOT_HANDLERS.get(dl.service, dl.service)
        common = dict(service=f"{dl.service}/{dl.name}", origin="dovecot", handler=handler, mode=dl.mode, user=dl.user,
                      group=dl.group, tls_wrapper=bool(dl.ssl), maxproc=dl.process_limit,
                      settings=settings, file=dl.file, line=dl.line)
        if dl.kind == "unix":
            listeners.append(Listener(family="unix", host=None, port=None, path=dl.path, **common))
            continue
        for host in dl.addresses:
            listeners.append(Listener(family="inet", host=host, port=dl.port, path=None, **common))
    return listeners
