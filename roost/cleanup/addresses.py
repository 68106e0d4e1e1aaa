"""Addresses inside message headers (RFC 5322 section 3.4 address lists), rewritten in place.

`address_spans(value)` finds each addr-spec of an address-list header value: the text in
`<...>` of a name-addr (a route `@a,@b:` is skipped), or the words of a bare addr-spec;
display names, comments (nested, RFC 5322 section 3.2.2), quoted strings (section 3.2.4),
domain literals and group names (`name: a, b;`, section 3.4) are never taken for addresses.
`rewrite_address_list(value, fn)` replaces each addr-spec by `fn(address)` and leaves every
other byte as it was, so a header only changes where an address changed (Postfix rebuilds
the header from tokens; for the usual forms the result is the same text).
`unquote_address` / `quote_address` convert between the header form and the internal form
(local part unquoted), as Postfix's quote_822_local does.

Invariants: pure; any text gives a result, never an exception.
Security: header text is data; nothing is looked up or executed here.
"""

from __future__ import annotations

from typing import Callable

_SPECIALS = set('()<>@,;:\\".[]')
_ATOM_END = _SPECIALS | set(" \t\r\n")


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end): kind is a special char, 'atom', 'qstring', 'comment' or 'literal'."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "(":
            depth, j = 0, i
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                j += 1
                if depth == 0:
                    break
            out.append(("comment", i, min(j, n)))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(("qstring", i, min(j + 1, n)))
            i = j + 1
        elif c == "[":
            j = text.find("]", i)
            j = n if j < 0 else j + 1
            out.append(("literal", i, j))
            i = j
        elif c in _SPECIALS:
            out.append((c, i, i + 1))
            i += 1
        else:
            j = i
            while j < n and text[j] not in _ATOM_END:
                j += 1
            if j == i:  # a lone backslash
                j += 1
            out.append(("atom", i, j))
            i = j
    return out


def address_spans(value: str) -> list[tuple[int, int]]:
    """(start, end) of every addr-spec in an address-list header value."""
    spans: list[tuple[int, int]] = []
    tokens = [t for t in _tokens(value) if t[0] != "comment"]
    item: list[tuple[str, int, int]] = []
    angle: list[tuple[str, int, int]] | None = None
    had_angle = False

    def close_item() -> None:
        nonlocal item, had_angle
        if not had_angle and item:
            words = [t for t in item if t[0] in ("atom", "qstring", "literal", ".", "@")]
            if words:
                spans.append((words[0][1], words[-1][2]))
        item, had_angle = [], False

    for token in tokens:
        kind = token[0]
        if angle is not None:
            if kind == ">":
                route_end = max((i for i, t in enumerate(angle) if t[0] == ":"), default=-1)
                inner = angle[route_end + 1:]
                if inner:
                    spans.append((inner[0][1], inner[-1][2]))
                angle = None
                had_angle = True
            else:
                angle.append(token)
        elif kind == "<":
            angle = []
        elif kind in (",", ";"):
            close_item()
        elif kind == ":":
            item, had_angle = [], False  # a group name is not an address
        else:
            item.append(token)
    if angle:
        spans.append((angle[0][1], angle[-1][2]))
        had_angle = True
    close_item()
    return spans


def unquote_address(text: str) -> str:
    """`"a b"@x` -> `a b@x`; whitespace and comments inside an addr-spec are dropped."""
    out = []
    for kind, start, end in _tokens(text):
        if kind == "comment":
            continue
        piece = text[start:end]
        if kind == "qstring":
            inner, i, chars = piece[1:-1] if piece.endswith('"') and len(piece) > 1 else piece[1:], 0, []
            while i < len(inner):
                if inner[i] == "\\" and i + 1 < len(inner):
                    i += 1
                chars.append(inner[i])
                i += 1
            piece = "".join(chars)
        out.append(piece)
    return "".join(out)


def quote_address(address: str) -> str:
    """Internal form -> header form: quote a local part that is not a dot-atom (RFC 5322 3.4.1)."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    atoms = local.split(".")  # RFC 5322 section 3.4.1: dot-atom, else quoted-string
    if local and all(a and not any(c in _ATOM_END for c in a) for a in atoms):
        quoted = local
    else:
        quoted = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{quoted}@{domain}" if at else quoted


def _items(value: str) -> list[dict] | None:
    """Top-level items: {"kind": "bare"|"angle", "words": [...], "addr": (start, end),
    "comments": [...], "trailing": [...]}; None for forms rebuilt as is (groups, routes)."""
    items: list[dict] = []
    current = {"words": [], "comments": [], "addr": None, "trailing": [], "angle": False}
    angle: list | None = None
    for kind, start, end in _tokens(value):
        text = value[start:end]
        if angle is not None:
            if kind == ">":
                if not angle or any(t[0] == ":" for t in angle):
                    return None
                current["addr"] = (angle[0][1], angle[-1][2])
                current["angle"] = True
                angle = None
            elif kind != "comment":
                angle.append((kind, start, end))
            continue
        if kind == "<":
            angle = []
        elif kind in (":", ";"):
            return None
        elif kind == ",":
            items.append(current)
            current = {"words": [], "comments": [], "addr": None, "trailing": [], "angle": False}
        elif kind == "comment":
            (current["trailing"] if current["angle"] else current["comments"]).append(text)
            if not current["angle"]:
                current["words"].append(("comment", start, end))
        else:
            current["words"].append((kind, start, end))
    if angle is not None:
        return None
    items.append(current)
    return items


def _rebuild(value: str, items: list[dict], rewrite: Callable[[str], str]) -> str:
    """The header value rebuilt from its tokens, as Postfix does once an address changed:
    one space between words, `Name <addr>`, a bare address's comments after it, `, `
    between addresses."""
    parts = []
    for item in items:
        if item["angle"]:
            start, end = item["addr"]
            address = rewrite(unquote_address(value[start:end]))
            words = " ".join(value[s:e] for _k, s, e in item["words"])
            text = f"{words} <{quote_address(address)}>" if words else f"<{quote_address(address)}>"
            parts.append(" ".join([text] + item["trailing"]))
        else:
            spec = [t for t in item["words"] if t[0] != "comment"]
            if not spec:
                if item["comments"]:
                    parts.append(" ".join(item["comments"]))
                continue
            address = rewrite(unquote_address(value[spec[0][1]:spec[-1][2]]))
            parts.append(" ".join([quote_address(address)] + item["comments"]))
    return " " + ", ".join(parts)


def rewrite_address_list(value: str, rewrite: Callable[[str], str]) -> str:
    """`value` with each addr-spec rewritten by `rewrite` (on the unquoted form). Unchanged
    addresses leave the text untouched; once one changes, the whole value is rebuilt from
    its tokens (`_rebuild`); forms that cannot be rebuilt (groups, routes) are edited in place."""
    spans = address_spans(value)
    if not spans:
        return value
    changed = False
    replacements = []
    for start, end in spans:
        original = value[start:end]
        address = unquote_address(original)
        new = rewrite(address)
        if new != address:
            changed = True
        replacements.append((start, end, original if new == address else quote_address(new)))
    if not changed:
        return value
    items = _items(value)
    if items is not None:
        cache: dict[str, str] = {}

        def again(address: str) -> str:
            if address not in cache:
                cache[address] = rewrite(address)
            return cache[address]
        return _rebuild(value, items, again)
    out, last = [], 0
    for start, end, text in replacements:
        out.append(value[last:start])
        out.append(text)
        last = end
    out.append(value[last:])
    return "".join(out)
