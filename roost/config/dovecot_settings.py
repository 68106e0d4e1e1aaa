"""Typed view of a parsed dovecot.conf: the Dovecot 2.3 settings roost implements.

Implements Dovecot 2.3's defaults (the table in dovecot_settings_table.txt) and typed access
for the settings of DESIGN.md §2 (Dovecot side), and `protocol`/`local`/`remote`/`local_name`
filter resolution: a connection sees the global settings overridden by every matching filter,
less specific filters first (the order doveconf prints them in). passdb/userdb blocks come in
configuration order.

Checks live in roost.config.dovecot_check, listeners in roost.config.dovecot_listeners (also
importable from here).

Invariants: accessors never raise; an invalid value gives Dovecot's default (the parser
reported it as fatal). Frozen: a view is computed once per context.
Security: `ssl_key` contents are only held, never logged or shown.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from roost.config import dovecot_table
from roost.config.dovecot_conf import FILTER_TYPES, DovecotConfig, Section, Setting

# Filter nesting order Dovecot requires: local { local_name { remote { protocol { } } } }
FILTER_RANK = {"local": 0, "local_name": 1, "remote": 2, "protocol": 3}



def scope_of(section_type: str) -> str:
    return "global" if section_type in ("", *FILTER_TYPES) else section_type


def split_list(value: str) -> tuple[str, ...]:
    return tuple(word for word in value.replace(",", " ").split() if word)



def walk_filters(root: Section):
    todo = [s for s in root.children if s.type in FILTER_TYPES]
    while todo:
        section = todo.pop(0)
        yield section
        todo.extend(s for s in section.children if s.type in FILTER_TYPES)


def network_inside(inner: str, outer: str) -> bool:
    try:
        small = ipaddress.ip_network(inner, strict=False)
        large = ipaddress.ip_network(outer, strict=False)
    except ValueError:
        return inner == outer
    return small.version == large.version and small.subnet_of(large)  # type: ignore[arg-type]


# --- filter resolution -----------------------------------------------------------------------

@dataclass(frozen=True)
class FilterSpec:
    """One flattened filter: the conditions of its nesting path, and its section."""
    protocol: str | None
    local: str | None
    remote: str | None
    local_name: str | None
    section: Section

    def specificity(self) -> tuple[int, int, int, int]:
        return (self.local_name is not None, prefix_bits(self.local),
                prefix_bits(self.remote), self.protocol is not None)


def prefix_bits(network: str | None) -> int:
    if network is None:
        return 0
    try:
        return ipaddress.ip_network(network, strict=False).prefixlen
    except ValueError:
        return 0


def flatten_filters(root: Section) -> list[FilterSpec]:
    """Every filter with its full condition, less specific first (stable); nestings of the
    same condition are merged into one block."""
    return sorted(merge_same_filters(filter_specs(root)), key=FilterSpec.specificity)


def filter_specs(root: Section) -> list[FilterSpec]:
    """Every filter section with its full condition, in configuration order."""
    found: list[FilterSpec] = []
    todo: list[tuple[Section, dict[str, str]]] = [
        (s, {}) for s in root.children if s.type in FILTER_TYPES]
    while todo:
        section, conditions = todo.pop(0)
        conditions = {**conditions, section.type: section.name}
        found.append(FilterSpec(conditions.get("protocol"), conditions.get("local"),
                                conditions.get("remote"), conditions.get("local_name"),
                                section))
        todo.extend((child, conditions) for child in section.children
                    if child.type in FILTER_TYPES)
    return found


def merge_same_filters(found: list[FilterSpec]) -> list[FilterSpec]:
    """`local X { local X { } }` is the same filter as `local X { }`: one block."""
    merged: dict[tuple, FilterSpec] = {}
    for spec in found:
        identity = (spec.protocol, spec.local, spec.remote, spec.local_name)
        first = merged.get(identity)
        if first is None:
            merged[identity] = spec
            continue
        section = Section(first.section.type, first.section.name,
                          {**first.section.settings, **spec.section.settings},
                          (*first.section.children, *spec.section.children),
                          first.section.file, first.section.line)
        merged[identity] = FilterSpec(*identity, section)
    return list(merged.values())


def address_in(address: str | None, network: str | None) -> bool:
    if network is None:
        return True
    if address is None:
        return False
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def filter_matches(spec: FilterSpec, protocol: str, local: str | None, remote: str | None,
                   local_name: str | None) -> bool:
    if spec.protocol is not None:
        if spec.protocol.startswith("!"):
            if not protocol or protocol == spec.protocol[1:]:
                return False
        elif spec.protocol != protocol:
            return False
    if spec.local_name is not None and spec.local_name != local_name:
        return False
    return address_in(local, spec.local) and address_in(remote, spec.remote)


# --- the typed view --------------------------------------------------------------------------

@dataclass(frozen=True)
class AuthDb:
    """One passdb or userdb block, in configuration order."""
    kind: str  # "passdb" or "userdb"
    driver: str
    args: str
    default_fields: str
    override_fields: str
    result_success: str
    result_failure: str
    result_internalfail: str
    skip: str
    deny: bool
    file: str
    line: int
    settings: dict[str, Setting] = field(default_factory=dict)


@dataclass(frozen=True)
class DovecotSettings:
    """Global settings as one (protocol, local, remote, local_name) context sees them."""
    config: DovecotConfig
    protocol: str
    values: dict[str, Setting]
    passdbs: tuple[AuthDb, ...]
    userdbs: tuple[AuthDb, ...]
    plugin: dict[str, Setting]

    def setting(self, name: str) -> Setting | None:
        return self.values.get(name)

    def raw(self, name: str) -> str:
        """The configured value, else Dovecot's default (unknown names give "")."""
        found = self.values.get(name)
        if found is not None:
            return found.value
        spec = dovecot_table.spec("global", name)
        return spec.default if spec else ""

    def value(self, name: str) -> object:
        """The typed value (bool, int, seconds, bytes or str); invalid values give the default."""
        spec = dovecot_table.spec("global", name)
        if spec is None:
            return self.raw(name)
        value, error = dovecot_table.parse_value("global", name, spec.kind, self.raw(name))
        if error is not None:
            value, _error = dovecot_table.parse_value("global", name, spec.kind, spec.default)
        return value

    def str(self, name: str) -> str:
        return self.raw(name)

    def bool(self, name: str) -> bool:
        return bool(self.value(name))

    def int(self, name: str) -> int:
        value = self.value(name)
        return value if isinstance(value, int) else 0

    def time(self, name: str) -> float:
        """Seconds (time_msecs settings too)."""
        spec = dovecot_table.spec("global", name)
        value = self.int(name)
        return value / 1000 if spec and spec.kind == "time_msecs" else float(value)

    def size(self, name: str) -> int:
        return self.int(name)

    def list(self, name: str) -> tuple[str, ...]:
        return split_list(self.raw(name))

    def plugin_value(self, name: str, default: str = "") -> str:
        found = self.plugin.get(name)
        return default if found is None else found.value

    # the settings roost implements, by their Dovecot names
    protocols = property(lambda self: tuple(p for p in self.list("protocols") if p != "none"))
    listen = property(lambda self: self.list("listen"))
    base_dir = property(lambda self: self.str("base_dir"))
    disable_plaintext_auth = property(lambda self: self.bool("disable_plaintext_auth"))
    ssl = property(lambda self: self.str("ssl"))
    ssl_cert = property(lambda self: self.str("ssl_cert"))
    ssl_key = property(lambda self: self.str("ssl_key"))
    ssl_min_protocol = property(lambda self: self.str("ssl_min_protocol"))
    login_trusted_networks = property(lambda self: self.list("login_trusted_networks"))
    mail_location = property(lambda self: self.str("mail_location"))
    mail_uid = property(lambda self: self.str("mail_uid"))
    mail_gid = property(lambda self: self.str("mail_gid"))
    first_valid_uid = property(lambda self: self.int("first_valid_uid"))
    auth_mechanisms = property(lambda self: tuple(m.lower() for m in self.list("auth_mechanisms")))
    auth_username_format = property(lambda self: self.str("auth_username_format"))
    auth_default_realm = property(lambda self: self.str("auth_default_realm"))
    auth_failure_delay = property(lambda self: self.time("auth_failure_delay"))
    log_path = property(lambda self: self.str("log_path"))
    info_log_path = property(lambda self: self.str("info_log_path"))
    mail_max_userip_connections = property(lambda self: self.int("mail_max_userip_connections"))
    imap_max_line_length = property(lambda self: self.size("imap_max_line_length"))
    imap_idle_notify_interval = property(lambda self: self.time("imap_idle_notify_interval"))
    pop3_uidl_format = property(lambda self: self.str("pop3_uidl_format"))
    lmtp_save_to_detail_mailbox = property(lambda self: self.bool("lmtp_save_to_detail_mailbox"))
    recipient_delimiter = property(lambda self: self.str("recipient_delimiter"))
    postmaster_address = property(lambda self: self.str("postmaster_address"))
    hostname = property(lambda self: self.str("hostname"))
    quota_rule = property(lambda self: self.plugin_value("quota_rule"))


def auth_db(section: Section) -> AuthDb:
    def get(name: str) -> str:
        found = section.settings.get(name)
        if found is not None:
            return found.value
        spec = dovecot_table.spec(section.type, name)
        return spec.default if spec else ""

    return AuthDb(section.type, get("driver"), get("args"), get("default_fields"),
                  get("override_fields"), get("result_success"), get("result_failure"),
                  get("result_internalfail"), get("skip"),
                  section.type == "passdb" and dovecot_table.parse_bool(get("deny"))[0] is True,
                  section.file, section.line, dict(section.settings))


def dovecot_settings(config: DovecotConfig, *, protocol: str = "", local: str | None = None,
                     remote: str | None = None, local_name: str | None = None
                     ) -> DovecotSettings:
    """The settings a connection for `protocol` (from `remote` to `local`) sees: the global
    ones overridden by every matching filter, less specific filters first."""
    root = config.root
    values = dict(root.settings)
    sections = list(root.children)
    for spec in flatten_filters(root):
        if filter_matches(spec, protocol, local, remote, local_name):
            values.update(spec.section.settings)
            sections.extend(c for c in spec.section.children if c.type not in FILTER_TYPES)
    plugin: dict[str, Setting] = {}
    for section in sections:
        if section.type == "plugin":
            plugin.update(section.settings)
    return DovecotSettings(
        config, protocol, values,
        tuple(auth_db(s) for s in sections if s.type == "passdb"),
        tuple(auth_db(s) for s in sections if s.type == "userdb"), plugin)


def __getattr__(name: str):
    """Listeners and checks, importable from here too (they import this module)."""
    if name in ("DovecotListener", "dovecot_listeners", "listen_addresses", "BUILTIN_LISTENERS"):
        from roost.config import dovecot_listeners

        return getattr(dovecot_listeners, name)
    if name == "check_dovecot_config":
        from roost.config.dovecot_check import check_dovecot_config

        return check_dovecot_config
    raise AttributeError(name)
