"""The parameter table: every main.cf parameter roost implements, with Postfix 3.7's defaults.

`PARAMS` (from params.txt beside this file) holds, per parameter, its kind, its Postfix 3.7
default (as `postconf -d` prints it: unexpanded, compatibility-level expressions kept) and a
one-line description. `POSTFIX_DEFAULTS` (from postfix_defaults.txt, Debian's Postfix 3.7.11
`postconf -d` with an empty master.cf) names every parameter Postfix 3.7 knows, so a main.cf
name roost does not implement can be told ("unsupported") from one nobody knows ("unused").
Parameters that exist only because of a master.cf service (`smtp_destination_concurrency_limit`
for a service running `smtp`; postconf(5) "transport_..." parameters) come from
`service_parameters`. Defaults marked @computed (myhostname, mydomain, mynetworks) are worked out
by roost.config.settings from this machine, as Postfix does. `mail_version` is roost's version
and `config_directory` defaults to /etc/roost (both differ from Postfix on purpose).

Spec: postconf(5) of Postfix 3.7 (names, kinds, units); defaults observed from Debian's postconf.
Invariants: PARAMS is read-only after import; every PARAMS name is a Postfix 3.7 parameter except
the roost-only ones in ROOST_ONLY; a parameter's kind decides how Settings parses it.
Security: the tables are package data; nothing here reads the administrator's files.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

COMPUTED = "@computed"
ROOST_DEFAULT_CONFIG_DIRECTORY = "/etc/roost"
ROOST_ONLY = frozenset({"dovecot_config_file"})


def _roost_version() -> str:
    try:
        from importlib.metadata import version

        return version("roost")
    except Exception:  # not installed as a distribution (running from a source tree)
        return "0.1.0"


ROOST_VERSION = _roost_version()


class Kind(enum.Enum):
    STR = "str"
    LIST = "list"  # separated by commas and/or whitespace; `{...}` groups stay whole
    BOOL = "bool"  # yes / no, any case
    INT = "int"
    SIZE = "size"  # a byte count
    TIME = "time"  # a number with an optional unit letter s, m, h, d, w


TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Values Postfix accepts for enumerated parameters (compared case-insensitively).
CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "mynetworks_style": ("host", "subnet", "class"),
    "smtpd_tls_security_level": ("", "none", "may", "encrypt"),
    "smtp_tls_security_level": ("", "none", "may", "encrypt", "dane", "dane-only",
                                "fingerprint", "verify", "secure"),
    "lmtp_tls_security_level": ("", "none", "may", "encrypt", "dane", "dane-only",
                                "fingerprint", "verify", "secure"),
    "smtpd_sasl_type": ("cyrus", "dovecot"),
    "smtp_sasl_type": ("cyrus",),
    "lmtp_sasl_type": ("cyrus",),
    "smtpd_forbid_bare_newline": ("no", "normalize", "yes", "reject"),
    "sendmail_fix_line_endings": ("always", "strict", "never"),
    "smtp_address_preference": ("any", "ipv4", "ipv6"),
    "smtp_dns_support_level": ("", "disabled", "enabled", "dnssec"),
    "smtpd_tls_ciphers": ("export", "low", "medium", "high", "null"),
    "smtpd_tls_mandatory_ciphers": ("export", "low", "medium", "high", "null"),
    "smtp_tls_ciphers": ("export", "low", "medium", "high", "null"),
    "smtp_tls_mandatory_ciphers": ("export", "low", "medium", "high", "null"),
    "lmtp_tls_mandatory_ciphers": ("export", "low", "medium", "high", "null"),
})
LIST_CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "inet_protocols": ("all", "ipv4", "ipv6"),
})

# Values Postfix never expands: the `$name`s in them are filled in at delivery or reply time
# (postconf -x prints them as they are, and they are not scanned for parameter references).
RAW_PARAMETERS = frozenset({
    "command_execution_directory", "default_rbl_reply", "forward_path", "luser_relay",
    "mailbox_command", "postscreen_expansion_filter", "postscreen_reject_footer", "process_id",
    "process_name", "service_name", "smtpd_expansion_filter", "smtpd_reject_footer",
})

# master.cf services running these commands add `<service>_<suffix>` parameters (postconf(5)
# "transport_destination_concurrency_limit" etc.), defaulting to the global ones.
DELIVERY_AGENT_COMMANDS = frozenset({"smtp", "lmtp", "local", "virtual", "pipe", "error"})
TIME_LIMIT_COMMANDS = frozenset({"pipe", "spawn"})
SERVICE_PARAMETER_DEFAULTS: Mapping[str, str] = MappingProxyType({
    "delivery_slot_cost": "$default_delivery_slot_cost",
    "delivery_slot_discount": "$default_delivery_slot_discount",
    "delivery_slot_loan": "$default_delivery_slot_loan",
    "destination_concurrency_failed_cohort_limit":
        "$default_destination_concurrency_failed_cohort_limit",
    "destination_concurrency_limit": "$default_destination_concurrency_limit",
    "destination_concurrency_negative_feedback":
        "$default_destination_concurrency_negative_feedback",
    "destination_concurrency_positive_feedback":
        "$default_destination_concurrency_positive_feedback",
    "destination_rate_delay": "$default_destination_rate_delay",
    "destination_recipient_limit": "$default_destination_recipient_limit",
    "extra_recipient_limit": "$default_extra_recipient_limit",
    "initial_destination_concurrency": "$initial_destination_concurrency",
    "minimum_delivery_slots": "$default_minimum_delivery_slots",
    "recipient_limit": "$default_recipient_limit",
    "recipient_refill_delay": "$default_recipient_refill_delay",
    "recipient_refill_limit": "$default_recipient_refill_limit",
    "transport_rate_delay": "$default_transport_rate_delay",
})
TIME_LIMIT_DEFAULT = "$command_time_limit"
SERVICE_PARAMETER_KINDS: Mapping[str, tuple[Kind, str]] = MappingProxyType({
    "destination_rate_delay": (Kind.TIME, "s"), "transport_rate_delay": (Kind.TIME, "s"),
    "recipient_refill_delay": (Kind.TIME, "s"), "time_limit": (Kind.TIME, "s"),
    "destination_concurrency_negative_feedback": (Kind.STR, ""),  # "1" or "1/concurrency"
    "destination_concurrency_positive_feedback": (Kind.STR, ""),
})


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind
    default: str  # as `postconf -d` shows it; COMPUTED when worked out on this machine
    doc: str
    unit: str = ""  # TIME: the unit of a bare number
    choices: tuple[str, ...] = ()  # allowed values (any case); empty: anything

    @property
    def computed(self) -> bool:
        return self.default == COMPUTED

    @property
    def raw(self) -> bool:
        return self.name in RAW_PARAMETERS


def _data_lines(filename: str) -> Iterable[str]:
    text = resources.files("roost.config").joinpath(filename).read_text(encoding="utf-8")
    return (line for line in text.splitlines() if line and not line.startswith("#"))


def _load_params() -> dict[str, Param]:
    table: dict[str, Param] = {}
    for line in _data_lines("params.txt"):
        name, kind_text, default, doc = line.split("\t")
        kind_name, _, unit = kind_text.partition(":")
        table[name] = Param(name, Kind(kind_name), default, doc, unit,
                            CHOICES.get(name, ()) or LIST_CHOICES.get(name, ()))
    return table


def _load_postfix_defaults() -> dict[str, str]:
    defaults: dict[str, str] = {}
    for line in _data_lines("postfix_defaults.txt"):
        name, _, value = line.partition(" =")
        defaults[name] = value[1:] if value.startswith(" ") else value
    return defaults


PARAMS: Mapping[str, Param] = MappingProxyType(_load_params())
POSTFIX_DEFAULTS: Mapping[str, str] = MappingProxyType(_load_postfix_defaults())
# process_id is left out of the data file: it is always the reading process's own pid.
POSTFIX_PARAMETER_NAMES = frozenset(POSTFIX_DEFAULTS) | {"process_id"}
# The parameters roost acts on today (a subset of PARAMS, which holds defaults for postconf).
IMPLEMENTED = frozenset(_data_lines("implemented.txt"))


def builtin_default(name: str) -> str | None:
    """The unexpanded default of a built-in parameter (Postfix's or roost's), or None.
    COMPUTED for the machine-dependent ones; roost's own values for mail_version and
    config_directory."""
    if name == "mail_version":
        return ROOST_VERSION
    if name == "config_directory":
        return ROOST_DEFAULT_CONFIG_DIRECTORY
    if name == "process_id":
        return str(os.getpid())
    param = PARAMS.get(name)
    if param is not None:
        return param.default
    return POSTFIX_DEFAULTS.get(name)


def is_builtin(name: str) -> bool:
    return name in PARAMS or name in POSTFIX_PARAMETER_NAMES


def builtin_names() -> frozenset[str]:
    """Every built-in parameter name: Postfix 3.7's and roost's own."""
    return POSTFIX_PARAMETER_NAMES | frozenset(PARAMS)


def _default_references() -> frozenset[str]:
    from roost.config.expand import scan_references

    names: set[str] = set()
    for name in builtin_names():
        default = builtin_default(name) or ""
        if "$" in default and name not in RAW_PARAMETERS:
            names.update(scan_references(default)[0])
    return frozenset(names - builtin_names())


# Names that built-in defaults refer to without being parameters themselves (older names such
# as virtual_maps and fallback_relay): setting one in main.cf is a use, not an unused name.
LEGACY_REFERENCES = _default_references()


def service_parameters(services: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Parameters added by master.cf services, given (service name, command) pairs, with
    their defaults; built-in parameters of the same name keep their own default."""
    found: dict[str, str] = {}
    for service, command in services:
        names: dict[str, str] = {}
        if command in DELIVERY_AGENT_COMMANDS:
            names.update({f"{service}_{suffix}": default
                          for suffix, default in SERVICE_PARAMETER_DEFAULTS.items()})
        if command in TIME_LIMIT_COMMANDS:
            names[f"{service}_time_limit"] = TIME_LIMIT_DEFAULT
        for name, default in names.items():
            if not is_builtin(name):
                found.setdefault(name, default)
    return found


def service_parameter_suffix(name: str) -> str | None:
    """The transport-parameter suffix `name` ends with (e.g. destination_concurrency_limit)."""
    for suffix in (*SERVICE_PARAMETER_DEFAULTS, "time_limit"):
        if name.endswith("_" + suffix) and len(name) > len(suffix) + 1:
            return suffix
    return None


def kind_of(name: str) -> tuple[Kind, str]:
    """(kind, time unit) used to parse `name`; STR for parameters roost does not type."""
    param = PARAMS.get(name)
    if param is not None:
        return param.kind, param.unit
    suffix = service_parameter_suffix(name)
    if suffix is not None and not is_builtin(name):
        return SERVICE_PARAMETER_KINDS.get(suffix, (Kind.INT, ""))
    return Kind.STR, ""
