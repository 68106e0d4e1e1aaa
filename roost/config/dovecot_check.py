"""Checks of a parsed dovecot.conf: what Dovecot 2.3 refuses, and what roost does not honour.

Implements the rules Dovecot applies when it loads its configuration (observed with Debian's
doveconf 2.3.19.1): section nesting (`Nested protocol`, `protocol { remote }`, `Auth settings
not supported inside local/remote blocks`), missing passdb/userdb drivers, unknown protocols,
filter conflicts (`Conflict in setting X found from filter at ...`), duplicate listeners, and a
TLS certificate for a server with `ssl` on. Names Dovecot knows but roost does not implement
give `unsupported setting: NAME` (a warning), names Dovecot does not know `unknown setting:
NAME` (fatal, with file and line, because Dovecot itself refuses to start on them).

Invariants: never raises; each problem is reported once, where it was written.
Security: messages quote configuration text through `excerpt`.
"""

from __future__ import annotations

import ipaddress

from roost.config import dovecot_table
from roost.config.diagnostics import Diagnostics, excerpt
from roost.config.dovecot_conf import FILTER_TYPES, DovecotConfig, Section, Setting
from roost.config.dovecot_listeners import (BUILTIN_LISTENERS, SERVICE_PROTOCOLS,
                                            DovecotListener, service_listeners)
from roost.config.dovecot_settings import (FILTER_RANK, FilterSpec, dovecot_settings,
                                           flatten_filters, network_inside, prefix_bits,
                                           scope_of, split_list, walk_filters)

SUPPORTED: dict[str, frozenset[str]] = {
    "global": frozenset((
        "protocols", "listen", "base_dir", "disable_plaintext_auth", "ssl", "ssl_cert",
        "ssl_key", "ssl_min_protocol", "login_trusted_networks", "mail_location", "mail_uid",
        "mail_gid", "first_valid_uid", "auth_mechanisms", "auth_username_format",
        "auth_default_realm", "auth_failure_delay", "log_path", "info_log_path",
        "mail_max_userip_connections", "imap_max_line_length", "imap_idle_notify_interval",
        "pop3_uidl_format", "lmtp_save_to_detail_mailbox", "recipient_delimiter",
        "postmaster_address", "hostname", "last_valid_uid", "first_valid_gid",
        "last_valid_gid", "default_internal_user",
        "default_internal_group", "default_login_user", "default_process_limit",
        "log_timestamp", "auth_username_chars", "auth_verbose", "mail_home", "mail_fsync",
        "mail_plugins", "maildir_copy_with_hardlinks", "login_greeting", "pop3_lock_session",
        "pop3_logout_format", "lmtp_add_received_header", "lmtp_hdr_delivery_address",
        "lmtp_rcpt_check_quota", "mail_temp_dir", "mbox_dotlock_change_timeout",
        "mbox_lock_timeout", "quota_full_tempfail", "imap_literal_minus", "imap_logout_format")),
    "passdb": frozenset(("driver", "args", "default_fields", "override_fields", "deny",
                         "result_success", "result_failure", "result_internalfail", "skip")),
    "userdb": frozenset(("driver", "args", "default_fields", "override_fields",
                         "result_success", "result_failure", "result_internalfail", "skip")),
    "service": frozenset(("process_limit",)),
    "inet_listener": frozenset(("address", "port", "ssl")),
    "unix_listener": frozenset(("mode", "user", "group")),
    "fifo_listener": frozenset(),
    "namespace": frozenset(("inbox", "separator", "prefix")),
    "mailbox": frozenset(("special_use", "auto")),
    "plugin": frozenset(("quota_rule", *(f"quota_rule{n}" for n in range(2, 10)), "quota_grace",
                         "quota_exceeded_message")),
}
# Of SUPPORTED (understood: typed, defaulted, printed by doveconf), what roost acts on today.
# The rest is reported as not implemented yet, never silently ignored; grow this as the
# authentication, mail store, POP3, LMTP and IMAP parts land.
ACTED_ON: dict[str, frozenset[str]] = {
    "global": frozenset(("protocols", "listen", "base_dir", "ssl", "ssl_cert", "ssl_key",
                         "ssl_min_protocol",  # roost.net.tls.dovecot_context
                         "log_path", "info_log_path", "log_timestamp", "default_process_limit",
                         # the auth socket (roost.net.auth) and the lookup chain
                         "auth_mechanisms", "auth_username_format", "auth_default_realm",
                         "auth_failure_delay", "auth_username_chars", "auth_verbose",
                         # the mail store (roost.store.location, roost.store.maildir)
                         "mail_location", "mail_home", "mail_uid", "mail_gid",
                         "first_valid_uid", "last_valid_uid", "first_valid_gid",
                         "last_valid_gid", "mail_fsync", "mail_plugins",
                         "maildir_copy_with_hardlinks",
                         # the IMAP/POP3 logins (roost.net.login) and POP3 (roost.net.pop3)
                         "disable_plaintext_auth", "login_trusted_networks", "login_greeting",
                         "pop3_uidl_format", "pop3_lock_session", "pop3_logout_format",
                         # held against mail_owner (roost.config.process_users)
                         "default_internal_user", "default_internal_group",
                         "default_login_user",
                         # IMAP (roost.net.imap)
                         "imap_max_line_length", "imap_literal_minus", "imap_logout_format",
                         "imap_idle_notify_interval",
                         # both logins (roost.login.userip)
                         "mail_max_userip_connections",
                         # LMTP (roost.net.lmtp, roost.lmtp) and the mbox store
                         "hostname", "recipient_delimiter", "lmtp_save_to_detail_mailbox",
                         "lmtp_add_received_header", "lmtp_rcpt_check_quota",
                         "lmtp_hdr_delivery_address", "quota_full_tempfail", "mail_temp_dir",
                         "mbox_lock_timeout", "mbox_dotlock_change_timeout")),
    "passdb": SUPPORTED["passdb"],
    "userdb": SUPPORTED["userdb"],
    "service": SUPPORTED["service"],
    "inet_listener": SUPPORTED["inet_listener"],
    "unix_listener": SUPPORTED["unix_listener"],
    "namespace": SUPPORTED["namespace"],
    "mailbox": SUPPORTED["mailbox"],
    "plugin": SUPPORTED["plugin"],  # quota_rule (roost.store.quota)
}
SUPPORTED_SERVICES = ("imap-login", "pop3-login", "lmtp", "auth")
SUPPORTED_PASSDB_DRIVERS = ("passwd-file", "passwd", "shadow", "pam", "static")
SUPPORTED_USERDB_DRIVERS = ("passwd-file", "passwd", "static", "prefetch")
SUPPORTED_PROTOCOLS = ("imap", "pop3", "lmtp")
KNOWN_PROTOCOLS = (*SUPPORTED_PROTOCOLS, "submission", "sieve", "none")
# Section types Dovecot 2.3 accepts at the top level (and in filters), and inside others.
TOP_SECTIONS = ("service", "passdb", "userdb", "namespace", "plugin", "dict", "metric",
                "event_exporter", *FILTER_TYPES)
CHILD_SECTIONS = {"service": ("inet_listener", "unix_listener", "fifo_listener"),
                  "namespace": ("mailbox",)}
FREE_FORM = ("plugin", "dict", "metric", "event_exporter")
# Settings of Dovecot's auth process, which local/remote/local_name filters cannot change.
AUTH_PROCESS_SETTINGS = ("base_dir", "first_valid_gid", "first_valid_uid", "last_valid_gid",
                         "last_valid_uid", "ssl_client_ca_dir", "ssl_client_ca_file",
                         "verbose_proctitle")


def check_dovecot_config(config: DovecotConfig, diags: Diagnostics, *,
                         server: bool = True) -> None:
    """Report every problem Dovecot would refuse and everything roost would not honour.
    `server` adds what only matters to a running server (TLS certificate present)."""
    todo: list[tuple[Section, tuple[Section, ...]]] = [(config.root, ())]
    while todo:
        section, parents = todo.pop()
        if check_section(config, section, parents, diags):
            todo.extend((child, (*parents, section)) for child in reversed(section.children))
    check_globals(config, diags)
    check_duplicate_listeners(config, diags)
    if server and config.expanded:
        check_ssl_files(config, diags)


def section_path(section: Section, parents: tuple[Section, ...]) -> str:
    parts = [p for s in (*parents, section) if s.type and s.type not in FILTER_TYPES
             for p in ((s.type, s.name) if s.name else (s.type,))]
    return "/".join(parts)


def check_section(config: DovecotConfig, section: Section, parents: tuple[Section, ...],
                  diags: Diagnostics) -> bool:
    """Check one section's own settings; False when its contents are not checked further."""
    parent = parents[-1] if parents else None
    if parent is not None and not check_nesting(section, parents, diags):
        return False
    scope = scope_of(section.type)
    prefix = section_path(section, parents)
    if section.type in FREE_FORM and section.type != "plugin":
        if section.settings:
            diags.warning(section.file, section.line,
                          f"unsupported setting: {excerpt(section.type)} section")
        return False
    in_network_filter = any(s.type in ("local", "remote", "local_name")
                            for s in (*parents, section))
    for key, setting in section.settings.items():
        if scope == "global" and in_network_filter and (
                key.startswith("auth_") or key in AUTH_PROCESS_SETTINGS):
            diags.fatal(setting.file, setting.line,
                        f"Auth settings not supported inside local/remote blocks: {key}")
            continue
        check_setting(config, scope, prefix, key, setting, section, parents, diags)
    if section.type in ("passdb", "userdb") and "driver" not in section.settings:
        diags.fatal(section.file, section.line, f"{section.type} is missing driver")
    if section.type == "service" and not section.name:
        diags.fatal(section.file, section.line, "service is missing name")
    limit = section.settings.get("process_limit") if section.type == "service" else None
    if section.name == "auth" and limit is not None and limit.value.strip() != "1":
        diags.fatal(limit.file, limit.line, "service(auth): process_limit must be 1")
    return True


def check_nesting(section: Section, parents: tuple[Section, ...], diags: Diagnostics) -> bool:
    parent = parents[-1]
    where = (section.file, section.line)
    if parent.type in ("", *FILTER_TYPES):
        if section.type not in TOP_SECTIONS:
            diags.warning(*where, f"unknown section: {excerpt(section.type)}")
            return False
        if section.type in FILTER_TYPES and parent.type in FILTER_TYPES:
            inner, outer = section.type, parent.type
            if inner == outer == "protocol":
                diags.fatal(*where, "Nested protocol { protocol { .. } } block not allowed")
                return False
            if inner == outer and inner in ("local", "remote") and not network_inside(
                    section.name, parent.name):
                diags.fatal(*where, f"{outer} net1 {{ {inner} net2 {{ .. }} }} requires net2 "
                            "to be inside net1")
                return False
            if FILTER_RANK[inner] < FILTER_RANK[outer]:
                diags.fatal(*where, f"{outer} {{ {inner} {{ .. }} }} not allowed (use "
                            f"{inner} {{ {outer} {{ .. }} }} instead)")
                return False
        if section.type in ("local", "remote") and not check_network(section, diags):
            return False
        if section.type in ("passdb", "userdb") and any(
                p.type in ("local", "remote", "local_name") for p in parents):
            diags.fatal(*where, "Auth settings not supported inside local/remote blocks: "
                        f"{section.type}")
            return False
        return True
    if section.type not in CHILD_SECTIONS.get(parent.type, ()):
        diags.warning(*where, f"unknown section: {excerpt(parent.type)} {{ "
                      f"{excerpt(section.type)} }}")
        return False
    return True


def check_network(section: Section, diags: Diagnostics) -> bool:
    name = section.name
    if not name:
        diags.fatal(section.file, section.line, f"{section.type} filter needs an address")
        return False
    try:
        ipaddress.ip_network(name, strict=False)
        return True
    except ValueError:
        pass
    address, _slash, bits = name.partition("/")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        diags.warning(section.file, section.line, f"unsupported setting: {section.type} "
                      f"{excerpt(name)} (host names are not resolved; use an address)")
        return False
    diags.fatal(section.file, section.line, f"Invalid network mask: {excerpt(bits)}")
    return False


def check_setting(config: DovecotConfig, scope: str, prefix: str, key: str, setting: Setting,
                  section: Section, parents: tuple[Section, ...], diags: Diagnostics) -> None:
    shown = f"{prefix}/{key}" if prefix else key
    where = (setting.file, setting.line)
    if scope == "plugin":
        if key not in SUPPORTED["plugin"]:
            diags.warning(*where, f"unsupported setting: {excerpt(shown)}")
        elif key not in ACTED_ON.get("plugin", ()):
            diags.warning(*where, f"unsupported setting: {excerpt(shown)} (roost does not "
                                  "implement it yet)")
        return
    spec = dovecot_table.spec(scope, key)
    if spec is None:
        # Dovecot refuses to start on a name it does not know (a typo would otherwise
        # silently leave the default in force), so roost does too.
        diags.fatal(*where, f"unknown setting: {excerpt(shown)}")
        return
    from_file = setting.path is not None
    if not from_file or config.expanded:
        value, error = dovecot_table.parse_value(scope, key, spec.kind, setting.value)
        if error is not None:
            return  # reported by the parser where it was assigned
        if dovecot_table.format_value(spec.kind, value) == dovecot_table.normalize(
                scope, key, spec.default):
            return
    if key in SUPPORTED.get(scope, ()) and service_supported(section, parents):
        if key not in ACTED_ON.get(scope, ()):
            diags.warning(*where, f"unsupported setting: {excerpt(shown)} (roost does not "
                                  "implement it yet)")
        return
    diags.warning(*where, f"unsupported setting: {excerpt(shown)}")


def service_supported(section: Section, parents: tuple[Section, ...]) -> bool:
    services = [s for s in (*parents, section) if s.type == "service"]
    return not services or services[-1].name in SUPPORTED_SERVICES


def check_globals(config: DovecotConfig, diags: Diagnostics) -> None:
    root = config.root
    protocols = root.settings.get("protocols")
    if protocols is not None:
        for word in split_list(protocols.value):
            if word not in KNOWN_PROTOCOLS:
                diags.fatal(protocols.file, protocols.line,
                            f"protocols: Unknown protocol: {excerpt(word)}")
            elif word not in SUPPORTED_PROTOCOLS and word != "none":
                diags.warning(protocols.file, protocols.line,
                              f"unsupported setting: protocols {excerpt(word)}")
    for kind, drivers in (("passdb", SUPPORTED_PASSDB_DRIVERS),
                          ("userdb", SUPPORTED_USERDB_DRIVERS)):
        for db in root.sections(kind):
            driver = db.settings.get("driver")
            if driver is not None and driver.value not in drivers:
                diags.warning(driver.file, driver.line, f"unsupported setting: {kind} driver "
                              f"{excerpt(driver.value)}")
    ssl = root.settings.get("ssl")
    if ssl is not None and ssl.value == "no":
        for section in walk_filters(root):
            inner = section.settings.get("ssl")
            if inner is not None and inner.value != "no":
                diags.warning(inner.file, inner.line, "SSL is disabled because global ssl=no, "
                              f"ignoring ssl={excerpt(inner.value)} for subsection")
    for section in (root, *walk_filters(root)):
        uidl = section.settings.get("pop3_uidl_format")
        if uidl is not None and "%" not in uidl.value:
            diags.fatal(uidl.file, uidl.line,
                        "pop3_uidl_format setting doesn't contain any %% variables.")
    check_filter_conflicts(root, diags)


def check_filter_conflicts(root: Section, diags: Diagnostics) -> None:
    """Dovecot's conflict rule: for each filter, take the filters that match its
    connections, most specific first; a filter that is not a superset of the one before it
    may not set anything already set (doveconf: "Conflict in setting ... found from filter
    at ...")."""
    specs = flatten_filters(root)
    reported: set[tuple[str, str, int]] = set()
    for target in specs:
        matching = [s for s in reversed(specs) if filter_matches_filter(s, target)]
        changed: dict[str, Setting | Section] = {}
        for index, spec in enumerate(matching):
            own = settings_of(spec.section)
            if index and not filter_superset(spec, matching[index - 1]):
                for key, item in own.items():
                    other = changed.get(key)
                    mark = (key, item.file, item.line)
                    if other is not None and mark not in reported:
                        reported.add(mark)
                        diags.fatal(other.file, other.line, "Conflict in setting "
                                    f"{key.split(chr(0))[-1]} found from filter at "
                                    f"{item.file}:{item.line}")
            for key, item in own.items():
                changed.setdefault(key, item)


def settings_of(section: Section) -> dict[str, Setting | Section]:
    # a service inside a filter conflicts as Dovecot's "name" (other sections: not modelled)
    found: dict[str, Setting | Section] = dict(section.settings)
    for child in section.children:
        if child.type == "service":
            found[f"{child.type} {child.name}\0name"] = child
    return found


def filter_matches_filter(spec: FilterSpec, target: FilterSpec) -> bool:
    """Does `spec` apply to every connection `target` applies to?"""
    if spec.protocol is not None:
        have = target.protocol
        if have is None:
            return False
        if spec.protocol.startswith("!") and not have.startswith("!"):
            if have == spec.protocol[1:]:
                return False
        elif have != spec.protocol:
            return False
    if spec.local_name is not None and spec.local_name != target.local_name:
        return False
    return all(getattr(spec, f) is None or (getattr(target, f) is not None and network_inside(
        getattr(target, f), getattr(spec, f))) for f in ("local", "remote"))


def filter_superset(sup: FilterSpec, spec: FilterSpec) -> bool:
    return (prefix_bits(sup.local) <= prefix_bits(spec.local)
            and prefix_bits(sup.remote) <= prefix_bits(spec.remote)
            and not (sup.local_name is not None and spec.local_name is None)
            and not (sup.protocol is not None and spec.protocol is None))


def check_ssl_files(config: DovecotConfig, diags: Diagnostics) -> None:
    """A login service with TLS needs a certificate and key (Dovecot fails at first login)."""
    for protocol in ("imap", "pop3"):
        view = dovecot_settings(config, protocol=protocol)
        if protocol not in view.protocols or view.ssl == "no":
            continue
        for name in ("ssl_cert", "ssl_key"):
            if not view.str(name):
                where = view.setting("ssl")
                diags.fatal(where.file if where else config.path, where.line if where else None,
                            f"ssl enabled, but {name} not set")
        return


def check_duplicate_listeners(config: DovecotConfig, diags: Diagnostics) -> None:
    """Two enabled services (any, not only roost's) may not listen on the same socket."""
    global_view = dovecot_settings(config)
    enabled = set(global_view.protocols)
    for section in walk_filters(config.root):  # Dovecot's master counts these too
        enabled.update(split_list(section.get("protocols", "") or ""))
    names = [s.name for s in config.root.sections("service") if s.name]
    names += [s for s, p in SERVICE_PROTOCOLS.items() if s in BUILTIN_LISTENERS and p in enabled]
    listeners: list[DovecotListener] = []
    for service in dict.fromkeys(names):
        protocol = SERVICE_PROTOCOLS.get(service)
        if protocol is not None and protocol not in enabled:
            continue
        view = dovecot_settings(config, protocol=protocol) if protocol else global_view
        listeners.extend(service_listeners(config, service, view, keep_ssl=True))
    report_duplicates(listeners, diags)


def addresses_overlap(first: str, second: str) -> bool:
    try:
        a, b = ipaddress.ip_address(first), ipaddress.ip_address(second)
    except ValueError:
        return first == second
    return a.version == b.version and (a == b or a.is_unspecified or b.is_unspecified)


def report_duplicates(listeners: list[DovecotListener], diags: Diagnostics) -> None:
    for index, listener in enumerate(listeners):
        for earlier in listeners[:index]:
            if listener.kind != earlier.kind:
                continue
            if listener.kind == "unix":
                clash = listener.path if listener.path == earlier.path else None
            else:
                clash = next((f"{listener.port}:{address}" for address in listener.addresses
                              for other in earlier.addresses if listener.port == earlier.port
                              and addresses_overlap(address, other)), None)
            if clash is not None:
                where = f"{earlier.file}, line {earlier.line}" if earlier.line else earlier.file
                diags.fatal(listener.file, listener.line,
                            f"duplicate listener: {excerpt(clash)} (service {listener.service} "
                            f"{excerpt(listener.name)}; also service {earlier.service} "
                            f"{excerpt(earlier.name)} at {where})")
                break
