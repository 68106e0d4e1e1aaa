"""`open_table("type:name")`: the one place a Postfix table reference becomes a table.

Types (postconf -m): hash, btree, lmdb, cdb (compiled, roost.tables.indexed), texthash,
inline, static, fail (roost.tables.memory), regexp, pcre (roost.tables.regexp), cidr
(roost.tables.cidr), sqlite (roost.tables.sqlite), unionmap:{t1, t2} (every table's
answers joined with ","), and pipemap:{t1, t2} (each answer is the next table's key).
`proxy:type:name` opens type:name directly, since roost has no proxymap(8) process. A
name without `type:` uses `default_database_type` as postmap(1) does (the caller passes
it).

Invariants: open_table never raises on a bad reference: it records a fatal diagnostic and
returns a table whose lookups raise TableError with the same message, so a mistyped map
makes mail defer (as Postfix does) instead of being silently ignored. Opened tables are
cached per (reference, options), so every caller shares one reload-watching instance.
Security: a table type selects among a fixed set of classes, never an import path.
"""

from __future__ import annotations

import threading

from roost.config.diagnostics import Diagnostics
from roost.tables.base import LookupTable, TableError, TableOptions
from roost.tables.cidr import CidrTable
from roost.tables.indexed import INDEXED_TYPES, IndexedTable
from roost.tables.memory import FailTable, InlineTable, StaticTable, TextHashTable, split_braced_list
from roost.tables.regexp import RegexpTable
from roost.tables.sqlite import SqliteTable

# Types whose class is built from (type, name, options, diags) alone.
_FILE_AND_SPEC_TYPES: dict[str, type[LookupTable]] = {
    "texthash": TextHashTable, "inline": InlineTable, "static": StaticTable, "fail": FailTable,
    "regexp": RegexpTable, "pcre": RegexpTable, "cidr": CidrTable, "sqlite": SqliteTable,
}
SUPPORTED_TYPES = tuple(sorted({*INDEXED_TYPES, *_FILE_AND_SPEC_TYPES, "unionmap", "pipemap"}))

_cache: dict[tuple, LookupTable] = {}
_cache_lock = threading.Lock()


class BrokenTable(LookupTable):
    """Stands in for a reference that could not be opened."""

    def __init__(self, type: str, name: str, message: str, diags: Diagnostics | None = None) -> None:
        self.message = message
        super().__init__(type, name, None, diags)

    def _get(self, key: str) -> str | None:
        raise TableError(self.message)


class CompositeTable(LookupTable):
    """unionmap:{...} and pipemap:{...}."""

    def __init__(self, type: str, name: str, members: list[LookupTable],
                 options: TableOptions | None = None, diags: Diagnostics | None = None) -> None:
        self.members = members
        self.fixed_keys = all(member.fixed_keys for member in members)
        super().__init__(type, name, options, diags)

    def _get(self, key: str) -> str | None:
        if self.type == "unionmap":
            answers = [a for a in (m.lookup(key) for m in self.members) if a is not None]
            return ",".join(answers) if answers else None
        value: str | None = key
        for member in self.members:
            value = member.lookup(value)
            if value is None:
                return None
        return value


def split_reference(reference: str, default_type: str = "hash") -> tuple[str, str]:
    """`type:name` → (type, name); a bare name gets `default_type`."""
    kind, sep, name = reference.partition(":")
    if not sep or "/" in kind or "{" in kind:
        return default_type, reference
    return kind, name


def open_table(reference: str, diags: Diagnostics | None = None, *,
               options: TableOptions | None = None, aliases: bool = False,
               default_type: str = "hash", cache: bool = True) -> LookupTable:
    """Open (or share) the table `reference`, e.g. "hash:/etc/postfix/access".
    `aliases`: the source is in aliases(5) syntax (matters for the rebuild hint only)."""
    options = options or TableOptions()
    diags = diags if diags is not None else Diagnostics()
    key = (reference, options, aliases, default_type)
    if cache:
        with _cache_lock:
            table = _cache.get(key)
        if table is not None:
            return table
    table = _open_uncached(reference, diags, options, aliases, default_type, depth=0)
    if cache:
        with _cache_lock:
            table = _cache.setdefault(key, table)
    return table


def clear_cache() -> None:
    with _cache_lock:
        tables = list(_cache.values())
        _cache.clear()
    for table in tables:
        table.close()


def _open_uncached(reference: str, diags: Diagnostics, options: TableOptions, aliases: bool,
                   default_type: str, depth: int) -> LookupTable:
    kind, name = split_reference(reference.strip(), default_type)
    while kind == "proxy":
        kind, name = split_reference(name, default_type)
    if not name:
        return _broken(kind, name, f'open dictionary: expecting "type:name" form instead of "{reference}"', diags)
    if kind in INDEXED_TYPES:
        return IndexedTable(kind, name, options, diags, aliases=aliases)
    table_class = _FILE_AND_SPEC_TYPES.get(kind)
    if table_class is not None:
        return table_class(kind, name, options, diags)
    if kind in ("unionmap", "pipemap"):
        return _open_composite(kind, name, diags, options, aliases, default_type, depth)
    return _broken(kind, name, f"unsupported dictionary type: {kind}", diags)


def _open_composite(kind: str, name: str, diags: Diagnostics, options: TableOptions, aliases: bool,
                    default_type: str, depth: int) -> LookupTable:
    spec = name.strip()
    bad = f'bad syntax: "{kind}:{name}"; need "{kind}:{{type:name...}}"'
    if depth > 10:
        return _broken(kind, name, f'{kind}:{name}: tables nested too deeply', diags)
    if not (spec.startswith("{") and spec.endswith("}")):
        return _broken(kind, name, bad, diags)
    references = split_braced_list(spec[1:-1])
    if not references:
        return _broken(kind, name, bad, diags)
    members = [_open_uncached(ref, diags, options, aliases, default_type, depth + 1) for ref in references]
    return CompositeTable(kind, name, members, options, diags)


def _broken(kind: str, name: str, message: str, diags: Diagnostics) -> LookupTable:
    diags.fatal(f"{kind}:{name}", None, message)
    return BrokenTable(kind, name, message, diags)
