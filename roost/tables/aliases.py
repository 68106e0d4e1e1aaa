"""aliases(5) expansion for local(8): chains, lists, `:include:`, files, commands, loops.

A local name is looked up (case-folded) in alias_maps; failing that, when it carries an
extension (`user+foo`, recipient_delimiter), `user` is tried and the unmatched extension
propagated per propagate_unmatched_extensions (`alias`; not in Postfix's default).
With owner_request_special (default yes) and a `-` delimiter, `owner-list` and
`list-request` are never split into user and extension. A result is an address list
(roost.tables.source tokenizer): `|command`, `/file/name`, `:include:/file` (same syntax,
one or more per line, `#` comments), remote or local addresses. Local targets are
expanded recursively; a name that reappears in its own chain (`root: root, backup`, or
`a: b` / `b: a`) stops there and is delivered as a mailbox, the way local(8) delivers a
self-referencing alias, and the loop is reported. Depth is bounded (`max_depth`).

Invariants: expansion terminates on any table content (chain tracking + depth bound +
include stack); each target appears once in the result, in first-seen order.
Security: `|command` and `/file` targets are returned with their origin (`via_include`) so
the caller applies allow_mail_to_commands/allow_mail_to_files; nothing is run here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

from roost.config.diagnostics import Diagnostics
from roost.tables.access import split_extension
from roost.tables.address import split_result_list
from roost.tables.base import LookupTable
from roost.tables.source import decode, fold_key, normalize_address_list

MAX_DEPTH = 100
MAX_INCLUDE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class AliasTarget:
    kind: str         # "mailbox" (local, no further alias), "address" (remote), "file", "command"
    value: str        # local name, address, /file/name or the command after `|`
    via_include: bool = False   # came from a :include: file (allow_mail_to_* "include" class)
    chain: tuple[str, ...] = ()  # aliases expanded to reach it


@dataclass
class Expansion:
    targets: list[AliasTarget] = field(default_factory=list)
    loops: list[tuple[str, ...]] = field(default_factory=list)
    diags: Diagnostics = field(default_factory=Diagnostics)
    found: bool = False  # whether the first name had an alias at all


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == '"' and token[-1] == '"':
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


def lookup_alias(tables: Sequence[LookupTable], name: str, *, recipient_delimiter: str = "",
                 owner_request_special: bool = True,
                 propagate_unmatched_extensions: Sequence[str] = ("canonical", "virtual"),
                 utf8: bool = False) -> list[str] | None:
    """The alias value list for a local name, or None."""
    key = fold_key(name, utf8)
    for table in tables:
        value = table.lookup(key)
        if value is not None:
            return split_result_list(value)
    delimiter = recipient_delimiter
    if owner_request_special and "-" in delimiter and (key.startswith("owner-") or key.endswith("-request")):
        delimiter = delimiter.replace("-", "")
    user, extension = split_extension(key, delimiter)
    if not extension:
        return None
    for table in tables:
        value = table.lookup(user)
        if value is not None:
            results = split_result_list(value)
            if "alias" in propagate_unmatched_extensions:
                results = [_extend(r, extension) for r in results]
            return results
    return None


def _extend(target: str, extension: str) -> str:
    if target.startswith(("|", "/", ":include:", '"|', '"/')):
        return target
    local, at, domain = target.rpartition("@")
    return f"{local}{extension}@{domain}" if at else target + extension


def expand(tables: Sequence[LookupTable], name: str, *, is_local: Callable[[str], bool] | None = None,
           recipient_delimiter: str = "", owner_request_special: bool = True,
           propagate_unmatched_extensions: Sequence[str] = ("canonical", "virtual"),
           max_depth: int = MAX_DEPTH, utf8: bool = False) -> Expansion:
    """Expand local `name` fully. `is_local(address)` says whether an address with a domain
    is local (its local part is then expanded too); bare names are always local."""
    is_local = is_local or (lambda address: False)
    result = Expansion()
    seen: set[tuple[str, str]] = set()

    def emit(target: AliasTarget) -> None:
        if (target.kind, target.value) not in seen:
            seen.add((target.kind, target.value))
            result.targets.append(target)

    def local_name(address: str) -> str | None:
        local, at, domain = address.rpartition("@")
        if not at:
            return address
        return local if is_local(address) else None

    def visit(local: str, chain: tuple[str, ...], via_include: bool, includes: tuple[str, ...]) -> None:
        folded = fold_key(local, utf8)
        if folded in chain:
            result.loops.append(chain + (folded,))
            emit(AliasTarget("mailbox", folded, via_include, chain))
            return
        if len(chain) >= max_depth:
            result.diags.warning("alias_maps", None, f"alias expansion depth limit exceeded for {name}")
            emit(AliasTarget("mailbox", folded, via_include, chain))
            return
        values = lookup_alias(tables, local, recipient_delimiter=recipient_delimiter,
                              owner_request_special=owner_request_special,
                              propagate_unmatched_extensions=propagate_unmatched_extensions, utf8=utf8)
        if values is None:
            emit(AliasTarget("mailbox", folded, via_include, chain))
            return
        if not chain:
            result.found = True
        for value in values:
            handle(value, chain + (folded,), via_include, includes)

    def handle(value: str, chain: tuple[str, ...], via_include: bool, includes: tuple[str, ...]) -> None:
        target = _unquote(value.strip())
        if target.startswith("|"):
            emit(AliasTarget("command", target[1:], via_include, chain))
        elif target.lower().startswith(":include:"):
            include(target[len(":include:"):].strip(), chain, includes)
        elif target.startswith("/"):
            emit(AliasTarget("file", target, via_include, chain))
        else:
            local = local_name(target)
            if local is None:
                emit(AliasTarget("address", target, via_include, chain))
            else:
                visit(local, chain, via_include, includes)

    def include(path: str, chain: tuple[str, ...], includes: tuple[str, ...]) -> None:
        real = os.path.realpath(path)
        if real in includes:
            result.diags.warning(path, None, "include loop: " + " -> ".join(includes + (real,)))
            return
        try:
            with open(path, "rb") as handle_file:
                text = decode(handle_file.read(MAX_INCLUDE_BYTES))
        except OSError as exc:
            result.diags.warning(path, None, f"cannot open include file: {exc.strerror or exc}")
            return
        for line in text.split("\n"):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            for value in split_result_list(normalize_address_list(stripped)):
                handle(value, chain, True, includes + (real,))

    visit(name, (), False, ())
    return result


def owner_alias(tables: Sequence[LookupTable], name: str, utf8: bool = False) -> str | None:
    """`owner-name` when such an alias exists (it becomes the envelope sender of list mail)."""
    owner = "owner-" + fold_key(name, utf8)
    for table in tables:
        if table.lookup(owner) is not None:
            return owner
    return None
