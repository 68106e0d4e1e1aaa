"""Dovecot 2.3 setting names, value types, defaults, and the typed value rules.

The table (dovecot_settings_table.txt, observed from Debian's doveconf 2.3.19.1 by
tests/data/dovecot/make_settings_table.py) lists every setting Dovecot knows at the top level
and inside passdb, userdb, service, inet_listener, unix_listener, fifo_listener, namespace and
mailbox sections, with the default `doveconf -a` shows and the value type. This module parses
and formats values of those types exactly as doveconf does (`90s` -> `90 secs`, `1024` ->
`1 k`, `666` -> `01232`), with Dovecot's own error texts.

Invariants: parsing never raises; a bad value yields (None, message). Formatting a parsed value
and parsing it again gives the same value.
Security: pure string work; error messages quote the value through `excerpt`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from roost.config.diagnostics import excerpt

TABLE_FILE = Path(__file__).with_name("dovecot_settings_table.txt")

# Scopes whose setting names are fixed; everything else (plugin, dict, metric...) is free-form.
SCOPES = ("global", "passdb", "userdb", "service", "inet_listener", "unix_listener",
          "fifo_listener", "namespace", "mailbox")

# Allowed words of the enumerations roost relies on (Dovecot 2.3 documentation); an enum not
# listed here accepts any word, since roost does not act on it.
ENUM_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("global", "ssl"): ("yes", "no", "required"),
    ("global", "pop3_uidl_duplicates"): ("allow", "rename"),
    ("global", "pop3_delete_type"): ("default", "expunge", "flag"),
    ("namespace", "type"): ("private", "shared", "public"),
    ("namespace", "list"): ("yes", "no", "children"),
    ("mailbox", "auto"): ("no", "create", "subscribe"),
}
for _db in ("passdb", "userdb"):
    for _name in ("result_success", "result_failure", "result_internalfail"):
        ENUM_VALUES[(_db, _name)] = ("return-ok", "return", "return-fail", "continue",
                                     "continue-ok", "continue-fail")
    ENUM_VALUES[(_db, "auth_verbose")] = ("default", "yes", "no")
ENUM_VALUES[("passdb", "skip")] = ("never", "authenticated", "unauthenticated")
ENUM_VALUES[("userdb", "skip")] = ("never", "found", "notfound")

UINT_MAX = 2**32 - 1
SIZE_MAX = 2**64 - 1
TIME_MAX_SECS = 2**32 - 1

SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
SIZE_RE = re.compile(r"\s*([0-9]+)\s*(?:([bkmgt])(i?b)?)?\s*", re.IGNORECASE)

TIME_UNITS_MSECS = {
    **dict.fromkeys(("ms", "msec", "msecs", "msecond", "mseconds", "millisecond",
                     "milliseconds"), 1),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1000),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000),
    **dict.fromkeys(("h", "hour", "hours"), 3_600_000),
    **dict.fromkeys(("d", "day", "days"), 86_400_000),
    **dict.fromkeys(("w", "week", "weeks"), 604_800_000),
}
TIME_RE = re.compile(r"\s*([0-9]+)\s*([a-z]*)\s*", re.IGNORECASE)
TIME_STEPS = ((604_800, "weeks"), (86_400, "days"), (3_600, "hours"), (60, "mins"))

HIDDEN_TEXT = "# hidden, use -P to show it"


@dataclass(frozen=True)
class SettingSpec:
    scope: str
    name: str
    kind: str  # str, str_hidden, bool, uint, octal, port, size, time, time_msecs, enum
    default: str  # as `doveconf -a` prints it
    hidden: bool = False  # `doveconf -a` lists it only with -s


@cache
def table() -> dict[tuple[str, str], SettingSpec]:
    specs: dict[tuple[str, str], SettingSpec] = {}
    for line in TABLE_FILE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        scope, name, kind, visibility, default = line.split("\t", 4)
        specs[(scope, name)] = SettingSpec(scope, name, kind, default, visibility == "hidden")
    return specs


def spec(scope: str, name: str) -> SettingSpec | None:
    return table().get((scope, name))


def names(scope: str) -> list[str]:
    return [name for (s, name) in table() if s == scope]


# --- typed values: parse(kind, text) -> (value | None, error | None) --------------------------

def parse_bool(text: str) -> tuple[bool | None, str | None]:
    word = text.lower()
    if word in ("yes", "y", "1"):
        return True, None
    if word == "no":
        return False, None
    return None, f"Invalid boolean value: {excerpt(text)} (use yes or no)"


def parse_uint(text: str, limit: int = UINT_MAX) -> tuple[int | None, str | None]:
    word = text.strip()
    if word.startswith("-") and word[1:].isdigit():
        return None, f"Invalid number {excerpt(text)}: Number too small"
    if not word.isascii() or not word.isdigit():
        return None, f"Invalid number {excerpt(text)}: Not a valid number"
    number = int(word)
    if number > limit:
        return None, f"Invalid number {excerpt(text)}: Number too large"
    return number, None


def parse_octal(text: str) -> tuple[int | None, str | None]:
    word = text.strip()
    if word.startswith("0"):
        if word.isascii() and all(c in "01234567" for c in word):
            number = int(word, 8)
            return (number, None) if number <= UINT_MAX else (
                None, f"Invalid number {excerpt(text)}: Number too large")
        return None, f"Invalid number: {excerpt(text)}"
    return parse_uint(text)


def parse_port(text: str) -> tuple[int | None, str | None]:
    word = text.strip()
    if word.isascii() and word.isdigit() and int(word) <= 65535:
        return int(word), None
    return None, f"Invalid port number {excerpt(text)}"


def parse_size(text: str) -> tuple[int | None, str | None]:
    match = SIZE_RE.fullmatch(text)
    if match is None:
        return None, f"Invalid size: {excerpt(text)}"
    unit = (match.group(2) or "b").lower()
    if unit == "b" and match.group(3):
        return None, f"Invalid size: {excerpt(text)}"
    number = int(match.group(1)) * SIZE_UNITS[unit]
    if number > SIZE_MAX:
        return None, f"Invalid size: {excerpt(text)}"
    return number, None


def parse_time_msecs(text: str, allow_msecs: bool = True) -> tuple[int | None, str | None]:
    """A Dovecot time interval in milliseconds (`90s`, `2 mins`, `1 weeks`, `1500ms`)."""
    match = TIME_RE.fullmatch(text)
    if match is None:
        return None, f"Invalid time interval: {excerpt(text)}"
    number, unit = int(match.group(1)), match.group(2).lower()
    if not unit:
        if number != 0:
            return None, (f"Time interval '{excerpt(text)}' is missing units "
                          "(add e.g. 's' for seconds)")
        return 0, None
    if unit not in TIME_UNITS_MSECS:
        return None, f"Invalid time interval: {excerpt(text)}"
    msecs = number * TIME_UNITS_MSECS[unit]
    if not allow_msecs and msecs % 1000:
        return None, f"Milliseconds not supported for this setting: {excerpt(text)}"
    if msecs // 1000 > TIME_MAX_SECS:
        return None, f"Time interval is too large: {excerpt(text)}"
    return msecs, None


def parse_time(text: str) -> tuple[int | None, str | None]:
    """A Dovecot time interval in whole seconds."""
    msecs, error = parse_time_msecs(text, allow_msecs=False)
    return (None if msecs is None else msecs // 1000), error


def format_size(number: int) -> str:
    if number == 0:
        return "0"
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("k", 1024)):
        if number % factor == 0:
            return f"{number // factor} {unit}"
    return f"{number} B"


def format_time(secs: int) -> str:
    if secs == 0:
        return "0"
    for step, unit in TIME_STEPS:
        if secs % step == 0:
            return f"{secs // step} {unit}"
    return f"{secs} secs"


def format_time_msecs(msecs: int) -> str:
    return f"{msecs} ms" if msecs % 1000 else format_time(msecs // 1000)


def parse_value(scope: str, name: str, kind: str, text: str) -> tuple[object, str | None]:
    """Typed value of `text` for a setting of `kind`; strings pass through unchanged."""
    if kind == "bool":
        return parse_bool(text)
    if kind == "uint":
        return parse_uint(text)
    if kind == "octal":
        return parse_octal(text)
    if kind == "port":
        return parse_port(text)
    if kind == "size":
        return parse_size(text)
    if kind == "time":
        return parse_time(text)
    if kind == "time_msecs":
        return parse_time_msecs(text)
    if kind == "enum":
        allowed = ENUM_VALUES.get((scope, name))
        if allowed is not None and text not in allowed:
            return None, f"Invalid value: {excerpt(text)} ({name}: use {', '.join(allowed)})"
    return text, None


def format_value(kind: str, value: object) -> str:
    """The text doveconf prints for a parsed value."""
    if kind == "bool":
        return "yes" if value else "no"
    if kind == "octal":
        return f"0{value:o}"
    if kind == "size":
        return format_size(int(value))  # type: ignore[call-overload]
    if kind == "time":
        return format_time(int(value))  # type: ignore[call-overload]
    if kind == "time_msecs":
        return format_time_msecs(int(value))  # type: ignore[call-overload]
    return str(value)


def normalize(scope: str, name: str, text: str) -> str:
    """`text` as doveconf prints it for this setting (unchanged when unknown or invalid)."""
    found = spec(scope, name)
    if found is None:
        return text
    value, error = parse_value(scope, name, found.kind, text)
    return text if error is not None else format_value(found.kind, value)
