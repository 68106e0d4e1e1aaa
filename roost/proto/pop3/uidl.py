"""UIDL strings from Dovecot's `pop3_uidl_format` (RFC 1939 §7 unique-id listing).

Dovecot 2.3's default is `%08Xu%08Xv`: the IMAP UID then UIDVALIDITY, each as 8 hex digits
(lower case, as Dovecot 2.3.19 prints them: `000000016b04b944`); keeping the same format and
the same UIDs (dovecot-uidlist) means clients migrating from Dovecot download nothing again.
Variables (doc.dovecot.org, pop3_uidl_format): %u (UID), %v (UIDVALIDITY), %g (GUID: for
Maildir the file's base name, as in Dovecot), %f (the file's base name); %m (header MD5) is
not supported; long forms (`%{uid}`) are refused, as Dovecot 2.3 refuses them here. Modifiers
as in Dovecot's variable expansion: a width (`%08u`: zero padded, `%8u`: space padded), `X`
(hex), `L`/`U` (lower/upper case).

Invariants: `check_format` accepts exactly what `expand` can expand; `expand` never raises for
a checked format; a RFC 1939 unique-id holds only 0x21..0x7E, so other octets become `?`.
Security: the values come from the store, never from the client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_FORMAT = "%08Xu%08Xv"
_TOKEN = re.compile(r"%(?P<pad>0)?(?P<width>[1-9][0-9]*)?(?P<mods>[XLU]*)"
                    r"(?:\{(?P<long>[a-z_]+)\}|(?P<short>.))", re.S)
_KEYS = {"u": "uid", "v": "uidvalidity", "g": "guid", "f": "filename", "%": "%"}
_SUPPORTED = {"uid", "uidvalidity", "guid", "filename"}


@dataclass(frozen=True)
class UidlValues:
    uid: int
    uidvalidity: int
    guid: str
    filename: str = ""


class UidlFormatError(ValueError):
    pass


def check_format(fmt: str) -> str | None:
    """None when `fmt` can be expanded, else why not (for the configuration check)."""
    position = 0
    used = False
    while True:
        start = fmt.find("%", position)
        if start < 0:
            break
        match = _TOKEN.match(fmt, start)
        if match is None:
            return f"pop3_uidl_format: incomplete variable at the end of {fmt!r}"
        if match.group("long") is not None:
            # Dovecot 2.3 refuses long names here: "Unknown pop3_uidl_format variable: %{"
            return "Unknown pop3_uidl_format variable: %{"
        name = _KEYS.get(match.group("short"))
        if name == "%":
            position = match.end()
            continue
        if name not in _SUPPORTED:
            shown = match.group("long") or match.group("short")
            return f"pop3_uidl_format: variable %{shown} is not supported by roost"
        used = True
        position = match.end()
    return None if used else "pop3_uidl_format: no variable in the format"


def expand(fmt: str, values: UidlValues) -> str:
    def replace(match: re.Match) -> str:
        name = match.group("long") or _KEYS.get(match.group("short"))
        if name == "%":
            return "%"
        if name not in _SUPPORTED:
            raise UidlFormatError(name)
        value = getattr(values, name)
        mods = match.group("mods")
        text = str(value)
        if "X" in mods:
            number = value if isinstance(value, int) else int(text) if text.isdigit() else None
            if number is not None:
                text = f"{number:x}"
        if "L" in mods:
            text = text.lower()
        if "U" in mods:
            text = text.upper()
        if match.group("width"):
            width = int(match.group("width"))
            text = text.rjust(width, "0" if match.group("pad") else " ")
        return text

    result = _TOKEN.sub(replace, fmt)
    return "".join(c if 0x21 <= ord(c) <= 0x7E else "?" for c in result)
