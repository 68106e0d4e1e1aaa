"""The sockets Dovecot's services listen on, from a parsed dovecot.conf.

Implements Dovecot 2.3's service listeners (`service NAME { inet_listener NAME { address port
ssl } unix_listener PATH { mode user group } }`) merged over its built-in defaults (`doveconf
-a`: imap-login imap 143 / imaps 993 ssl, pop3-login pop3 110 / pop3s 995 ssl, lmtp unix
`lmtp` 0666), for every enabled protocol, plus the unix listeners configured in `service
auth`. `listen` (`*, ::`) gives the addresses of listeners without their own `address`;
`port = 0` or an empty address list disables a listener, as does `ssl = no` for ssl ones.

Invariants: pure functions of the configuration; never raise. Duplicates are reported by
roost.config.dovecot_check.
Security: unix socket modes and owners are passed through as configured; relative socket
names live under base_dir.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.config import dovecot_table
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import DovecotConfig, Section, Setting
from roost.config.dovecot_settings import DovecotSettings, dovecot_settings, split_list


@dataclass(frozen=True)
class DovecotListener:
    service: str  # imap-login, pop3-login, lmtp, auth
    name: str  # the listener's name: imap, imaps, lmtp, /var/spool/postfix/private/auth...
    kind: str  # "inet" or "unix"
    addresses: tuple[str, ...]  # inet: one per address family/address ("0.0.0.0", "::")
    port: int  # inet
    path: str  # unix: absolute socket path (relative names live under base_dir)
    ssl: bool  # inet: implicit TLS (imaps, pop3s)
    mode: int | None  # unix
    user: str
    group: str
    file: str
    line: int | None
    process_limit: int = 100  # the service's process_limit, else default_process_limit


# Dovecot 2.3's built-in listeners (`doveconf -a`): (kind, name, port, ssl, mode)
BUILTIN_LISTENERS: dict[str, tuple[tuple[str, str, int, bool, int], ...]] = {
    "imap-login": (("inet", "imap", 143, False, 0), ("inet", "imaps", 993, True, 0)),
    "pop3-login": (("inet", "pop3", 110, False, 0), ("inet", "pop3s", 995, True, 0)),
    "lmtp": (("unix", "lmtp", 0, False, 0o666),),
    "submission-login": (("inet", "submission", 587, False, 0),),
    "auth": (),
}
# The protocol that enables each of Dovecot's protocol services; other services always run.
SERVICE_PROTOCOLS = {"imap-login": "imap", "imap": "imap", "imap-urlauth-login": "imap",
                     "imap-urlauth": "imap", "imap-urlauth-worker": "imap",
                     "imap-hibernate": "imap", "pop3-login": "pop3", "pop3": "pop3",
                     "lmtp": "lmtp", "submission-login": "submission",
                     "submission": "submission", "managesieve-login": "sieve",
                     "managesieve": "sieve"}
# Modes of service auth's built-in sockets, used when one of them is configured.
AUTH_SOCKET_MODES = {"auth-client": 0o600, "auth-login": 0o600, "auth-master": 0o600,
                     "auth-userdb": 0o666, "login/login": 0o666,
                     "token-login/tokenlogin": 0o666}
PROTOCOL_SERVICES = {"imap": "imap-login", "pop3": "pop3-login", "lmtp": "lmtp"}
DEFAULT_UNIX_MODE = 0o600


def listen_addresses(value: str) -> tuple[str, ...]:
    """`*, ::` -> ("0.0.0.0", "::"); `[::1]` -> "::1"; duplicates dropped."""
    found: list[str] = []
    for word in split_list(value):
        address = {"*": "0.0.0.0", "[::]": "::"}.get(word, word)
        address = address[1:-1] if address.startswith("[") and address.endswith("]") else address
        if address not in found:
            found.append(address)
    return tuple(found)


def dovecot_listeners(config: DovecotConfig, diags: Diagnostics | None = None
                      ) -> tuple[DovecotListener, ...]:
    """The sockets of every enabled protocol's service, plus service auth's unix listeners.
    `port = 0`, an empty address list, or an ssl listener while `ssl = no` disable one.
    Problems (duplicates...) were reported by check_dovecot_config; `diags` is not used."""
    global_view = dovecot_settings(config)
    services = [PROTOCOL_SERVICES[p] for p in global_view.protocols if p in PROTOCOL_SERVICES]
    listeners: list[DovecotListener] = []
    for service in dict.fromkeys([*services, "auth"]):
        protocol = next((p for p, s in PROTOCOL_SERVICES.items() if s == service), "")
        view = dovecot_settings(config, protocol=protocol) if protocol else global_view
        listeners.extend(service_listeners(config, service, view))
    return tuple(listeners)




def service_listeners(config: DovecotConfig, service: str, view: DovecotSettings,
                      keep_ssl: bool = False) -> list[DovecotListener]:
    """`keep_ssl` keeps ssl listeners even while `ssl = no` (Dovecot's duplicate check)."""
    section = config.root.section("service", service)
    configured = {(c.type.split("_")[0], c.name): c for c in (section.children if section else ())
                  if c.type in ("inet_listener", "unix_listener")}
    builtin = {(kind, name): (port, ssl, mode)
               for kind, name, port, ssl, mode in BUILTIN_LISTENERS.get(service, ())}
    protocols = view.setting("protocols")
    process_limit = service_process_limit(section, view)
    fallback = (section.file, section.line) if section else (
        (protocols.file, protocols.line) if protocols else (config.path, None))
    found: list[DovecotListener] = []
    for kind, name in dict.fromkeys([*builtin, *configured]):
        port, ssl, mode = builtin.get((kind, name), (
            0, False, AUTH_SOCKET_MODES.get(name, DEFAULT_UNIX_MODE) if service == "auth"
            else DEFAULT_UNIX_MODE))
        listener_section = configured.get((kind, name))
        settings = listener_section.settings if listener_section else {}

        def get(key: str, default: str, settings: dict[str, Setting] = settings) -> str:
            found_setting = settings.get(key)
            return default if found_setting is None else found_setting.value

        file, line = ((listener_section.file, listener_section.line) if listener_section
                      else fallback)
        if kind == "inet":
            port_value = dovecot_table.parse_port(get("port", str(port)))[0]
            ssl_value = dovecot_table.parse_bool(get("ssl", "yes" if ssl else "no"))[0]
            if not port_value or ssl_value is None or (
                    ssl_value and view.ssl == "no" and not keep_ssl):
                continue
            addresses = listen_addresses(get("address", "") or view.str("listen"))
            if addresses:
                found.append(DovecotListener(service, name, "inet", addresses, port_value, "",
                                             ssl_value, None, "", "", file, line, process_limit))
        else:
            mode_value = dovecot_table.parse_octal(get("mode", f"0{mode:o}"))[0]
            path = name if name.startswith("/") else f"{view.base_dir.rstrip('/')}/{name}"
            found.append(DovecotListener(service, name, "unix", (), 0, path, False,
                                         DEFAULT_UNIX_MODE if mode_value is None else mode_value,
                                         get("user", ""), get("group", ""), file, line,
                                         process_limit))
    return found


def service_process_limit(section: Section | None, view: DovecotSettings) -> int:
    """`process_limit` of the service; 0 or unset means default_process_limit (Dovecot)."""
    found = section.settings.get("process_limit") if section else None
    limit = dovecot_table.parse_uint(found.value)[0] if found else None
    return limit or view.int("default_process_limit")
