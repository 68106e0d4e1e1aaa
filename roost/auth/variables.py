"""Dovecot 2.3 `%` variable expansion for auth and mail settings.

Implements the variables of the Dovecot 2.3 documentation ("Config Variables"): short forms
`%u %n %d %s %h %l %r %p %w %m %c %a %b %k %i`, long forms `%{user}`, `%{username}`,
`%{domain}`, `%{service}`, `%{home}`, `%{lip}`, `%{rip}`, `%{pid}`, `%{hostname}`,
`%{env:NAME}` and the other auth names listed in LONG_NAMES, `%%`; modifiers `L` (lower),
`U` (upper), `E` (backslash before `"`, `'` and `\\`), `R` (reverse), `X` (decimal to hex),
`T` (trim trailing whitespace), `M` (MD5 hex), `D` (`a.b.c` -> `a,dc=b,dc=c`), applied left
to right; and the substring syntax `%[offset.]width` (negative offset counts from the end,
zero-prefixed width pads with '0' instead of truncating, negative width drops characters
from the end), taken from the final string. Behaviour checked against Dovecot 2.3.19's
`doveadm user` (tests/auth/test_variables_doveadm.py).

Invariants: `expand` raises only VariableError (a ValueError), naming the offending variable;
a known variable with no value expands to "". Expansion is single-pass: values are never
re-expanded.
Security: values are inserted verbatim (no re-expansion), so a user name containing `%`
cannot inject variables; callers building paths must still refuse `/` and `..` themselves.
"""

from __future__ import annotations

import functools

import hashlib
import os
import socket
from collections.abc import Collection, Mapping

SHORT_NAMES = {
    "u": "user", "n": "username", "d": "domain", "s": "service", "h": "home",
    "l": "lip", "r": "rip", "p": "pid", "w": "password", "m": "mech", "c": "secured",
    "a": "lport", "b": "rport", "k": "cert", "i": "uid",
}
# Long names Dovecot 2.3 auth knows besides the short ones' (empty when not provided).
LONG_NAMES = frozenset(SHORT_NAMES.values()) | {
    "gid", "session", "real_rip", "real_lip", "real_rport", "real_lport", "orig_user",
    "orig_username", "orig_domain", "master_user", "login_user", "login_username",
    "login_domain", "domain_first", "domain_last", "session_pid", "auth_user",
    "auth_username", "auth_domain", "client_id", "local_name", "hostname", "mail",
}
MODIFIERS = "LUERXTMD"


class VariableError(ValueError):
    """A template names an unknown variable or is malformed; the message says which."""


def split_user(user: str) -> tuple[str, str]:
    """(username, domain) as %n and %d see `user`: split at the first '@'."""
    name, at, domain = user.partition("@")
    return (name, domain) if at else (user, "")


def user_values(user: str, **others: str | None) -> dict[str, str | None]:
    """The values of %u %n %d for `user`, plus any other long names given."""
    name, domain = split_user(user)
    values: dict[str, str | None] = {"user": user, "username": name, "domain": domain}
    values.update(others)
    return values


def _global_value(name: str) -> str | None:
    if name == "pid":
        return str(os.getpid())
    if name == "hostname":
        return os.environ.get("DOVECOT_HOSTNAME") or socket.gethostname().split(".")[0]
    if name.startswith("env:"):
        return os.environ.get(name[4:], "")
    return None


def _lookup(name: str, values: Mapping[str, str | None]) -> str:
    if name in values:
        return values[name] or ""
    found = _global_value(name)
    if found is not None:
        return found
    if name in LONG_NAMES:
        return ""
    # Dovecot 2.3 words it so for long names too: "Unknown variable '%nonesuch'".
    raise VariableError(f"Unknown variable '%{name}'")


def _modify(value: str, modifier: str) -> str:
    if modifier == "L":
        return value.lower()
    if modifier == "U":
        return value.upper()
    if modifier == "E":
        return "".join("\\" + ch if ch in "\"'\\" else ch for ch in value)
    if modifier == "R":
        return value[::-1]
    if modifier == "X":
        try:
            return format(int(value, 10), "x")
        except ValueError:
            return "0"
    if modifier == "T":
        return value.rstrip()
    if modifier == "M":
        return hashlib.md5(value.encode("utf-8", "surrogateescape")).hexdigest()
    # "D": LDAP-style domain components
    return ",dc=".join(value.split("."))


def _substring(value: str, offset: int, width: int | None, zero_pad: bool) -> str:
    if offset >= 0:
        value = value[offset:]
    else:
        value = value[max(len(value) + offset, 0):]
    if width is None:
        return value
    if zero_pad:
        return value.rjust(width, "0") if width >= 0 else value
    if width < 0:
        return value[:max(len(value) + width, 0)]
    return value[:width]


def _number(template: str, pos: int) -> tuple[int | None, int]:
    start = pos
    if pos < len(template) and template[pos] == "-":
        pos += 1
    digits = pos
    while pos < len(template) and template[pos].isascii() and template[pos].isdigit():
        pos += 1
    if pos == digits:
        return None, start
    return int(template[start:pos]), pos


def expand(template: str, values: Mapping[str, str | None]) -> str:
    """`template` with every `%` variable replaced; VariableError for unknown or bad ones.

    `values` maps long names (user, username, domain, home...) to their values."""
    out: list[str] = []
    pos = 0
    length = len(template)
    while pos < length:
        percent = template.find("%", pos)
        if percent < 0:
            out.append(template[pos:])
            break
        out.append(template[pos:percent])
        pos = percent + 1
        if pos >= length:
            break  # a lone '%' at the end expands to nothing, as in Dovecot 2.3
        if template[pos] == "%":
            out.append("%")
            pos += 1
            continue
        offset, width, zero_pad = 0, None, False
        first, pos = _number(template, pos)
        if first is not None and pos < length and template[pos] == ".":
            offset = first
            zero_pad = template.startswith("0", pos + 1)
            width, pos = _number(template, pos + 1)  # "%2.u": no width, offset only
        elif first is not None:
            zero_pad = template[percent + 1] == "0"
            width = first
        modifiers = ""
        while pos < length and template[pos] in MODIFIERS:
            modifiers += template[pos]
            pos += 1
        if pos >= length:
            break  # "%L" at the end expands to nothing, as in Dovecot 2.3
        if template[pos] == "{":
            close = template.find("}", pos)
            if close < 0:
                raise VariableError("Unknown variable '%{'")  # Dovecot's words for it
            name = template[pos + 1:close]
            pos = close + 1
        else:
            name = SHORT_NAMES.get(template[pos])
            if name is None:
                raise VariableError(f"Unknown variable '%{template[pos]}'")
            pos += 1
        value = _lookup(name, values)
        for modifier in modifiers:
            value = _modify(value, modifier)
        out.append(_substring(value, offset, width, zero_pad) if first is not None else value)
    return "".join(out)


def check(template: str) -> str | None:
    """The error `expand` would raise for a template whatever the values, else None."""
    try:
        expand(template, {})
    except VariableError as error:
        return str(error)
    return None


def expand_counters(fmt: str, values: Mapping[str, object], short: Mapping[str, str],
                    known: Collection[str], missing: object = "") -> str:
    """A logout format (Dovecot's imap_logout_format, pop3_logout_format): `%x` through the
    `short` letter table, `%{name}`, `%%`; a name in `known` without a value gives `missing`,
    any other unset variable nothing, as Dovecot writes them."""
    out: list[str] = []
    for literal, name in _counter_parts(fmt, tuple(short.items())):
        if literal:
            out.append(literal)
        elif name in values:
            out.append(str(values[name]))
        elif name in known:
            out.append(str(missing))
    return "".join(out)


@functools.lru_cache(maxsize=64)
def _counter_parts(fmt: str, short: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`fmt` split once into (literal text, "") and ("", variable name) parts: a logout line
    is written per session, its format changes only with the configuration."""
    letters = dict(short)
    parts: list[tuple[str, str]] = []
    text: list[str] = []
    position = 0
    while position < len(fmt):
        char = fmt[position]
        if char != "%" or position + 1 >= len(fmt):
            text.append(char)
            position += 1
            continue
        key = fmt[position + 1]
        position += 2
        if key == "%":
            text.append("%")
            continue
        if key == "{":
            end = fmt.find("}", position)
            name = fmt[position:end] if end >= 0 else ""
            position = end + 1 if end >= 0 else len(fmt)
        else:
            name = letters.get(key, "")
        if text:
            parts.append(("".join(text), ""))
            text = []
        parts.append(("", name))
    if text:
        parts.append(("".join(text), ""))
    return tuple(parts)
