"""Settings: the frozen, typed view of main.cf (plus a service's master.cf `-o` overrides).

`settings.raw(name)` is the unexpanded value (override > main.cf > default); `get` expands it
(postconf(5) `$name` rules, roost.config.expand); the typed getters parse it with Postfix's
units: `bool` (yes/no, any case), `int`, `size` (bytes), `time` (seconds, from `300s`, `5m`,
`1h`, `1d`, `1w` or a bare number in the parameter's own default unit), `list` (split on
commas and whitespace; a `{...}` group stays one item, braces kept, as in `inline:{a=b, c=d}`).
Defaults are Postfix 3.7's (roost.config.params), including the compatibility_level
expressions and the machine-dependent myhostname, mydomain and mynetworks (roost.config.netinfo).
A name that is not a parameter (`$name` defined only in main.cf) is still readable.

Load-time checks (`from_main_cf`, `validate`, `with_overrides`) report, with file and line:
  a main.cf name Postfix knows but roost does not implement     WARNING unsupported parameter
  a name nobody knows and nothing refers to as $name            WARNING unused parameter (Postfix)
  a value that cannot be expanded (loop, bad syntax)            FATAL
  a typed value that does not parse (`message_size_limit = lots`) FATAL
Getters never raise: a value that does not parse yields the parameter's default, and an
expansion error yields "" (both were reported by validate; a Config with them never starts).

Invariants: a Settings never changes after construction (caches only memoise); with_overrides
returns a new one. Expansion results are cached per instance.
Security: values are configuration text; nothing here opens files or runs commands.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from roost.config import netinfo
from roost.config.diagnostics import Diagnostics, excerpt
from roost.config.expand import ExpansionError, Expander, Final, parse_level, scan_references
from roost.config.main_cf import Assignment, MainCf
from roost.config.params import (COMPUTED, IMPLEMENTED, LEGACY_REFERENCES, PARAMS, POSTFIX_PARAMETER_NAMES, RAW_PARAMETERS,
                                 ROOST_ONLY, SERVICE_PARAMETER_DEFAULTS, TIME_LIMIT_DEFAULT,
                                 TIME_UNITS, Kind, builtin_default, is_builtin, kind_of,
                                 service_parameter_suffix, service_parameters)

LIST_SEPARATORS = ", \t\r\n\v\f"
TIME_PATTERN = re.compile(r"([0-9]+)([smhdw]?)")
INT_PATTERN = re.compile(r"[+-]?[0-9]+")



def unsupported(name: str) -> str:
    """The warning for a Postfix parameter that roost knows but does not act on yet."""
    return f"unsupported parameter: {name} (roost does not implement it yet)"

class SettingsError(Exception):
    """Raised only by Settings.checked: the value cannot be expanded or worked out."""


def split_list(value: str) -> tuple[str, ...]:
    """Items of a Postfix list value: separated by commas and/or whitespace; text inside
    `{...}` (at any depth) does not separate, so `inline:{a=b, c=d}` stays one item."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in value:
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        if depth == 0 and char in LIST_SEPARATORS:
            if current:
                items.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        items.append("".join(current))
    return tuple(items)


def parse_typed(kind: Kind, unit: str, value: str) -> int | float | bool | None:
    """The parsed value, or None when `value` is not valid for `kind`."""
    text = value.strip()
    if kind is Kind.BOOL:
        return {"yes": True, "no": False}.get(text.lower())
    if kind in (Kind.INT, Kind.SIZE):
        if not INT_PATTERN.fullmatch(text):
            return None
        number = int(text)
        return number if kind is Kind.INT or number >= 0 else None
    if kind is Kind.TIME:
        match = TIME_PATTERN.fullmatch(text)
        if not match:
            return None
        return float(int(match.group(1)) * TIME_UNITS[match.group(2) or unit or "s"])
    return None


def referenced_names(values: Iterable[str]) -> set[str]:
    """Names used as `$name` anywhere in these values (postconf's "user-defined" rule)."""
    found: set[str] = set()
    for value in values:
        found.update(scan_references(value)[0])
    return found


class Settings:
    """Parameters of one listener; see the module docstring."""

    def __init__(self, main: Mapping[str, Assignment], config_dir: str,
                 overrides: Mapping[str, tuple[str, str, int]] | None = None,
                 services: Sequence | None = None):
        self._main = dict(main)
        self._config_dir = config_dir
        self._overrides = dict(overrides or {})
        self._services = services
        self._service_params = service_parameters(
            (s.name, s.command) for s in services) if services is not None else None
        self._expander = Expander(self._lookup)
        self._computed: dict[str, str] = {}
        self._computing: set[str] = set()
        self._problems: dict[str, str] = {}  # computed default -> why it could not be worked out
        self._touched_problems: list[str] = []  # problem defaults an evaluation ran into
        self.explicit = frozenset(self._main) | frozenset(self._overrides)

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_main_cf(cls, main_cf: MainCf, config_dir: str, diags: Diagnostics,
                     services: Sequence | None = None) -> "Settings":
        """Settings of main.cf; warns about parameter names nobody uses. `services` (the
        master.cf entries) makes their `-o` references and transport parameters count."""
        settings = cls(main_cf.effective, config_dir, services=services)
        settings._check_names(diags)
        return settings

    def with_overrides(self, pairs: Sequence[tuple[str, str]], file: str, line: int,
                       diags: Diagnostics) -> "Settings":
        """A copy with master.cf `-o name=value` overrides (the last of a name wins)."""
        merged = dict(self._overrides)
        references = referenced_names(value for _, value in pairs)
        for name, value in pairs:
            if (name in PARAMS or name in POSTFIX_PARAMETER_NAMES) and name not in IMPLEMENTED:
                diags.warning(file, line, unsupported(name))
            elif not self._knows(name, references):
                diags.warning(file, line, f"unused parameter: {name}={excerpt(value)}")
            merged[name] = (value, file, line)
        clone = Settings(self._main, self._config_dir, merged, self._services)
        for name, value in pairs:
            if merged[name][0] == value:
                clone._validate_one(name, file, line, diags)
        return clone

    # ---------------------------------------------------------------- values

    def raw(self, name: str) -> str:
        """Unexpanded value: override > main.cf > default ("" when there is none)."""
        found = self._lookup(name)
        return "" if found is None else str(found)

    def get(self, name: str) -> str:
        """Expanded value ("" when undefined or when expansion fails; see validate)."""
        if name in RAW_PARAMETERS:
            return self.raw(name)
        try:
            return self._expander.value(name)
        except ExpansionError:
            return ""

    def bool(self, name: str) -> bool:
        return bool(self._typed(name, Kind.BOOL))

    def int(self, name: str) -> int:
        return int(self._typed(name, Kind.INT) or 0)

    def size(self, name: str) -> int:
        return int(self._typed(name, Kind.SIZE) or 0)

    def time(self, name: str) -> float:
        """Seconds."""
        return float(self._typed(name, Kind.TIME) or 0.0)

    def list(self, name: str) -> tuple[str, ...]:
        return split_list(self.get(name))

    def checked(self, name: str, on_undefined=None) -> str:
        """Expanded value for tools that must fail on bad values (postconf -x): raises
        SettingsError for an expansion error or a default that cannot be worked out."""
        self._touched_problems.clear()
        try:
            if name in RAW_PARAMETERS:
                value = self.raw(name)
            else:
                value = Expander(self._lookup, on_undefined=on_undefined).value(name)
        except ExpansionError as error:
            raise SettingsError(error.message) from None
        if self._touched_problems:
            raise SettingsError(self._problems[self._touched_problems[0]])
        return value

    def checked_text(self, text: str, on_undefined=None) -> str:
        """Like `checked`, for free text such as a master.cf `-o` value."""
        self._touched_problems.clear()
        try:
            value = Expander(self._lookup, on_undefined=on_undefined).expand(text)
        except ExpansionError as error:
            raise SettingsError(error.message) from None
        if self._touched_problems:
            raise SettingsError(self._problems[self._touched_problems[0]])
        return value

    def origin(self, name: str) -> tuple[str, int] | None:
        """(file, line) where `name` was set, or None for a default."""
        if name in self._overrides:
            _, file, line = self._overrides[name]
            return file, line
        found = self._main.get(name)
        return (found.file, found.line) if found else None

    @property
    def config_directory(self) -> str:
        return self._config_dir

    def _typed(self, name: str, kind: Kind):
        _, unit = kind_of(name)
        parsed = parse_typed(kind, unit, self.get(name))
        if parsed is None:
            default = builtin_default(name)
            parsed = parse_typed(kind, unit, self._expand_quietly(default or ""))
        return parsed

    def _expand_quietly(self, text: str) -> str:
        try:
            return Expander(self._lookup).expand(text)
        except ExpansionError:
            return ""

    # ---------------------------------------------------------------- lookup and defaults

    def _lookup(self, name: str) -> str | None:
        if name in self._overrides:
            return self._overrides[name][0]
        found = self._main.get(name)
        if found is not None:
            return found.value
        if name == "config_directory":
            return self._config_dir
        default = builtin_default(name)
        if default == COMPUTED:
            return self._computed_default(name)
        if default is not None:
            return default
        if self._service_params is not None:
            return self._service_params.get(name)
        suffix = service_parameter_suffix(name)
        if suffix is not None:
            return SERVICE_PARAMETER_DEFAULTS.get(suffix, TIME_LIMIT_DEFAULT)
        return None

    def _computed_default(self, name: str) -> Final:
        """myhostname, mydomain, mynetworks. A computation that needs its own result sees ""
        (Postfix 3.7 does the same: `myhostname = x.$mydomain` gives mydomain "")."""
        if name in self._computed:
            if name in self._problems:
                self._touched_problems.append(name)
            return Final(self._computed[name])
        if name in self._computing:
            return Final("")
        self._computing.add(name)
        try:
            fresh = Expander(self._lookup)  # its intermediate results are not kept
            if name == "myhostname":
                domain = fresh.value("mydomain") if "mydomain" in self.explicit else None
                value = netinfo.default_myhostname(domain)
            elif name == "mydomain":
                value = netinfo.domain_of(fresh.value("myhostname"))
            else:
                value = netinfo.mynetworks(fresh.value("mynetworks_style"),
                                           list(split_list(fresh.value("inet_interfaces"))),
                                           list(split_list(fresh.value("inet_protocols"))))
        except (netinfo.NetinfoError, ExpansionError) as error:
            self._problems[name] = getattr(error, "message", None) or str(error)
            self._touched_problems.append(name)
            value = ""
        finally:
            self._computing.discard(name)
        self._computed[name] = value
        return Final(value)

    # ---------------------------------------------------------------- checks

    def _knows(self, name: str, extra_references: set[str] = frozenset()) -> bool:
        if is_builtin(name) or name in extra_references or name in LEGACY_REFERENCES:
            return True
        if self._service_params is not None:
            if name in self._service_params:
                return True
        elif service_parameter_suffix(name) is not None:
            return True
        return name in self._user_defined()

    def _user_defined(self) -> set[str]:
        cached = getattr(self, "_user_defined_cache", None)
        if cached is None:
            values = [a.value for a in self._main.values() if a.name not in RAW_PARAMETERS]
            for service in self._services or ():
                values.extend(value for _, value in service.overrides)
            cached = referenced_names(values)
            classes = self._main.get("smtpd_restriction_classes")
            if classes is not None:  # their names are parameters too (postconf does not warn)
                cached |= set(split_list(classes.value))
            self._user_defined_cache = cached
        return cached

    def _check_names(self, diags: Diagnostics) -> None:
        # unsupported: Postfix knows it, roost does not act on it yet (never silently ignored)
        for assignment in self._main.values():
            name = assignment.name
            if name in ROOST_ONLY:
                continue
            if name in PARAMS or name in POSTFIX_PARAMETER_NAMES:
                if name not in IMPLEMENTED:
                    diags.warning(assignment.file, assignment.line, unsupported(name))
            elif not self._knows(name):
                diags.warning(assignment.file, assignment.line,
                              f"unused parameter: {name}={excerpt(assignment.value)}")

    def validate(self, diags: Diagnostics) -> None:
        """Report every explicit value that cannot be expanded or parsed (FATAL, file:line),
        and machine-dependent defaults that cannot be worked out."""
        for name, assignment in self._main.items():
            if name not in self._overrides:
                self._validate_one(name, assignment.file, assignment.line, diags)
        for name, (_, file, line) in self._overrides.items():
            self._validate_one(name, file, line, diags)
        if "mynetworks" not in self.explicit:
            self.get("mynetworks")
            problem = self._problems.get("mynetworks")
            if problem:
                suspects = ("compatibility_level",) if "compatibility level" in problem else (
                    "inet_interfaces", "mynetworks_style", "inet_protocols", "compatibility_level")
                where = next((self.origin(n) for n in suspects if self.origin(n)), None)
                file, line = where if where else (self._config_dir + "/main.cf", None)
                diags.fatal(file, line, f"cannot work out the default mynetworks: {problem}")

    def _validate_one(self, name: str, file: str, line: int, diags: Diagnostics) -> None:
        if name in RAW_PARAMETERS:
            return
        try:
            value = self._expander.value(name)
        except ExpansionError as error:
            diags.fatal(file, line, f"cannot expand {name}: {error.message}")
            return
        if name == "compatibility_level" and parse_level(value) is None:
            diags.fatal(file, line, f'bad compatibility_level value: "{excerpt(value)}" '
                        "(expected a Postfix version such as 0, 1, 2, 3.6)")
            return
        kind, unit = kind_of(name)
        param = PARAMS.get(name)
        if kind is not Kind.STR and kind is not Kind.LIST:
            if parse_typed(kind, unit, value) is None:
                diags.fatal(file, line, f"bad {_KIND_WORDS[kind]} value for {name}: "
                            f'"{excerpt(value)}"{_KIND_HINTS.get(kind, "")}')
        elif param is not None and param.choices:
            items = split_list(value) if kind is Kind.LIST else (value.strip(),)
            allowed = {choice.lower() for choice in param.choices}
            for item in items:
                if item.lower() not in allowed:
                    shown = ", ".join(c for c in param.choices if c) or "(empty)"
                    diags.fatal(file, line, f'bad value for {name}: "{excerpt(item)}" '
                                f"(expected one of: {shown})")
                    break


_KIND_WORDS = {Kind.BOOL: "boolean", Kind.INT: "numerical", Kind.SIZE: "size",
               Kind.TIME: "time"}
_KIND_HINTS = {Kind.BOOL: " (expected yes or no)", Kind.SIZE: " (expected a number of bytes)",
               Kind.TIME: " (expected a number with an optional s, m, h, d or w unit)"}
