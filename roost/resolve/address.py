"""SMTP envelope addresses: the path as sent (RFC 5321 §4.1.2) to Postfix's internal form, and back.

`internal_form('<@a,@b:"u@x"@host>')` → `u@x@host`:
- the angle brackets go (and surrounding whitespace);
- a source route (`@a,@b:` A-d-l, RFC 5321 §4.1.1.3 and Appendix C: "SHOULD ignore") is
  stripped, as Postfix's smtpd does before any policy decision (its reply then names
  `<u@x>`, observed with Postfix 3.7);
- the local part is dequoted (RFC 5321 §4.1.2 Quoted-string: the quotes go and `\\c` becomes
  `c`), which is Postfix's "internal" form: `"u@ext"@local` becomes `u@ext@local`, so the
  extra `@` stays visible to the address resolver (resolve_dequoted_address).
`external_form(internal)` quotes the local part again when it needs it (RFC 5322 §3.4.1
specials), as Postfix prints `to=<"u@ext"@local>` in its log lines.
`split_address(internal)` splits on the *last* `@` (the domain is after the rightmost `@`).

Invariants: pure string functions; never raise on any input; internal_form is idempotent on
its own output for addresses without quote characters.
Security: the result is data; a quoted local part never changes which domain is chosen
unless resolve_dequoted_address says so (roost.resolve.classes).
"""

from __future__ import annotations

import re

_SPECIALS = set('()<>@,;:\\".[] \t')


def strip_brackets(path: str) -> str:
    text = path.strip()
    if text.startswith("<") and text.endswith(">") and len(text) >= 2:
        text = text[1:-1].strip()
    return text


def strip_source_route(path: str) -> str:
    """`@a,@b:user@domain` → `user@domain` (RFC 5321 §4.1.1.3: the A-d-l is ignored)."""
    if not path.startswith("@"):
        return path
    colon = _unquoted_index(path, ":")
    return path[colon + 1:] if colon >= 0 else path


def _unquoted_index(text: str, wanted: str) -> int:
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == wanted and not quoted:
            return index
    return -1


def dequote(text: str) -> str:
    """Remove the quoting of RFC 5321 Quoted-strings anywhere in `text` (Postfix's internal form)."""
    out: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            continue
        else:
            out.append(char)
    if escaped:
        out.append("\\")
    return "".join(out)


_NEEDS_INTERNAL = re.compile(r'[<>"\\ \t]')


def internal_form(path: str) -> str:
    """The envelope address as Postfix's policy code sees it (module docstring)."""
    if _NEEDS_INTERNAL.search(path) is None and not path.startswith("@"):
        return path  # already internal: the common case, kept cheap (one C-level scan)
    return dequote(strip_source_route(strip_brackets(path)))


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain) split on the rightmost `@`; no `@` gives an empty domain."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain


def needs_quoting(local: str) -> bool:
    if not local:
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return True
    return any(char in _SPECIALS and char != "." for char in local) or any(ord(c) < 32 for c in local)


def external_form(address: str) -> str:
    """`u@ext@local` → `"u@ext"@local` (RFC 5322 §3.4.1 quoting of the local part)."""
    local, domain = split_address(address)
    if "@" not in address:
        local, domain = address, None  # type: ignore[assignment]
    if needs_quoting(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return local if domain is None else f"{local}@{domain}"
