"""FETCH attributes and modifiers (RFC 3501 §6.4.5, RFC 9051 §6.4.5, RFC 3516 BINARY,
RFC 7162 §3.1.4 CHANGEDSINCE / §3.2.6 VANISHED, RFC 7162 §3.1.2 MODSEQ item).

Macros ALL, FAST, FULL expand per RFC 3501 §6.4.5. Sections: part numbers (nz-number
dotted) then HEADER, HEADER.FIELDS (list), HEADER.FIELDS.NOT (list), TEXT, or MIME (only
after a part number); BINARY sections are part numbers only (RFC 3516 §4.1). Partial
`<origin.length>`; length must be non-zero (RFC 3501 §9 nz-number). The echoed label follows
RFC 3501 §7.4.2: BODY.PEEK answers as BODY, a partial as `<origin>`.
Invariants: raises only ArgError. Security: at most MAX_ITEMS attributes and MAX_FIELDS
header names per command.
"""

from __future__ import annotations

import re

from roost.proto.imap.args import ArgError, Args
from roost.proto.imap.commands import FetchItem, Section
from roost.proto.imap.lexer import Atom, LexError, ListArg, tokenize

MAX_ITEMS = 1000
MAX_FIELDS = 1000
SIMPLE = {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "UID", "RFC822",
          "RFC822.HEADER", "RFC822.TEXT", "BODY", "MODSEQ", "SAVEDATE", "EMAILID", "THREADID"}
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SECTIONED = re.compile(r"\A(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)\[(.*)\](?:<(\d+)(?:\.(\d+))?>)?\Z",
                        re.S | re.I)
_PART = re.compile(r"\A\d{1,9}(?:\.\d{1,9})*")  # Dovecot accepts 0 (the part is then empty)
_FIELD_NAME = re.compile(r"\A[!-9;-~]+\Z")  # RFC 5322 §3.6.8 ftext


def _section(text: str) -> Section:
    match = _PART.match(text)
    part: tuple[int, ...] = ()
    rest = text
    if match:
        part = tuple(int(n) for n in match.group(0).split("."))
        rest = text[match.end():]
        if rest.startswith("."):
            rest = rest[1:]
        elif rest:
            raise ArgError("Invalid BODY[..] parameter")
    if not rest:
        return Section(part)
    upper = rest.upper()
    if upper in ("HEADER", "TEXT") or (upper == "MIME" and part):
        return Section(part, upper)
    for kind in ("HEADER.FIELDS.NOT", "HEADER.FIELDS"):
        if upper.startswith(kind + " "):
            return Section(part, kind, _field_names(rest[len(kind) + 1:]))
    raise ArgError("Invalid BODY[..] parameter")


def _field_names(text: str) -> tuple[str, ...]:
    try:
        args = tokenize([text.encode("latin-1")], [])
    except LexError as error:
        raise ArgError(str(error)) from None
    if len(args) != 1 or not isinstance(args[0], ListArg) or not args[0].items:
        raise ArgError("Invalid BODY[..] parameter")
    names = []
    reader = Args(args[0].items)
    while reader.more():
        name = reader.string_bytes().decode("latin-1")
        if not _FIELD_NAME.match(name) or len(names) >= MAX_FIELDS:
            raise ArgError("Invalid BODY[..] parameter")
        names.append(name)
    return tuple(names)


def _section_label(section: Section) -> str:
    parts = [".".join(str(n) for n in section.part)] if section.part else []
    if section.text:
        text = section.text
        if section.fields:
            text += " (" + " ".join(f.upper() for f in section.fields) + ")"
        parts.append(text)
    return ".".join(parts)


def parse_item(atom: str) -> list[FetchItem]:
    upper = atom.upper()
    if upper in MACROS:
        return [FetchItem(n, label=n) for n in MACROS[upper]]
    if upper in SIMPLE:
        return [FetchItem(upper, label=upper)]
    match = _SECTIONED.match(atom)
    if not match:
        raise ArgError(f"Unknown parameter: {upper}")
    kind = match.group(1).upper()
    peek = kind.endswith(".PEEK")
    base = kind.replace(".PEEK", "")
    section = _section(match.group(2))  # BINARY[HEADER] too: Dovecot accepts it (observed)
    partial = None
    if match.group(3) is not None:  # <origin> alone and a zero length pass in Dovecot too
        origin = int(match.group(3))
        length = int(match.group(4)) if match.group(4) is not None else None
        if base == "BINARY.SIZE" or origin > 2**32 - 1 or (length or 0) > 2**32 - 1:
            raise ArgError("Invalid partial")
        partial = (origin, length)
    label = f"{base}[{_section_label(section)}]" + (f"<{partial[0]}>" if partial else "")
    return [FetchItem(base, section, partial, peek, label)]


def parse_items(args: Args) -> tuple[FetchItem, ...]:
    """The attribute argument: one attribute/macro atom, or a parenthesised list (no macros)."""
    item = args.next()
    if isinstance(item, Atom):
        return tuple(parse_item(item.value))
    if not isinstance(item, ListArg) or not item.items:
        raise ArgError("Invalid arguments")
    out: list[FetchItem] = []
    for sub in item.items:
        if not isinstance(sub, Atom):
            raise ArgError("Invalid arguments")
        if sub.value.upper() in MACROS:
            raise ArgError(f"Unknown parameter: {sub.value.upper()}")
        out.extend(parse_item(sub.value))
        if len(out) > MAX_ITEMS:
            raise ArgError("Too many fetch attributes")
    return tuple(out)


def parse_modifiers(args: Args) -> tuple[int | None, bool]:
    """Optional `(CHANGEDSINCE n [VANISHED])` (RFC 7162 §3.1.4.1, §3.2.6)."""
    if not args.more():
        return None, False
    mods = args.list()
    args.end()
    changedsince, vanished = None, False
    while mods.more():
        name = mods.atom().upper()
        if name == "CHANGEDSINCE":
            changedsince = mods.number64()
        elif name == "VANISHED":
            vanished = True
        else:
            raise ArgError(f"Unknown FETCH modifier: {name}")
    if vanished and changedsince is None:
        raise ArgError("VANISHED used without CHANGEDSINCE")
    return changedsince, vanished
