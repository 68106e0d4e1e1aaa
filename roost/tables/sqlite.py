"""`sqlite:` tables (sqlite_table(5) of Postfix 3.7): a configuration file names an SQLite
database and a query; each lookup runs the query for the key.

The configuration file has main.cf syntax (`name = value`, `#` comments, continuation
lines; no `$name` expansion) and these parameters: `dbpath`, `query` (see
roost.tables.sqlite_query for its `%` expansions and how they become bound
parameters), `result_format` (default `%s`), `domain` (only keys `user@domain` with a
non-empty user and a domain in this list are looked up; the list holds domain names
compared whole and case-insensitively, `!name` to exclude, `/file/name` for the words
of a file, `type:table` for a table's keys; first match wins), `expansion_limit`
(default 0, no limit; more values than that make the lookup fail temporarily) and, when
`query` is empty, the legacy `select_field`, `table`, `where_field` and
`additional_conditions`, which make `SELECT select_field FROM table WHERE
where_field='%s' additional_conditions`.
A lookup folds the key like other fixed-key tables, then answers the first column of
every row, skipping NULLs and (with Postfix's warning) empty strings, each formatted by
`result_format` and joined with commas; no row: not found. Numbers read as SQLite
prints them (`1.0e+20`); a NUL ends a value, as in Postfix's C strings.
Errors as Postfix words them, as TableError (temporary failure): the file's first
fatal problem (a line without `=`, empty `dbpath`, a bad number, an invalid template),
any other problem is a `FILE, line N:` warning; unknown parameters are warned about
(Postfix ignores them silently). SQL errors become `dict_sqlite_lookup: FILE: SQL
prepare failed: ...`.
Differences from Postfix: the database is opened read-only (`file:...?mode=ro`) and a
missing one is an error (Postfix's SQLite creates an empty file); only reading
statements run (an authorizer refuses ATTACH, PRAGMA and every write); a key that is
not valid UTF-8 finds nothing; main.cf-style parameters (`sqlite:name` with
`name_dbpath` in main.cf) are not supported: the name must be a path starting with `/`
or `.`.

Invariants: parsing never raises on bad input; one connection per table, used under a
lock; the configuration, its domain files and the database file are watched, and a
change reloads the table (a replaced database file is reopened).
Security: key data reaches SQLite only as bound parameters; the connection cannot
write or attach other files.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import urllib.parse
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostic, Diagnostics, Severity
from roost.tables.base import LookupTable, TableError, TableOptions, file_signature
from roost.tables.source import WHITESPACE, decode, fold_key, is_valid_utf8, logical_lines, printable
from roost.tables.sqlite_query import (AddressParts, ResultFormat, SqlQuery, parse_template,
                                       translate_query)

PARAMETERS = ("dbpath", "query", "result_format", "domain", "expansion_limit",
              "select_field", "table", "where_field", "additional_conditions")
BUSY_TIMEOUT = 1.0  # seconds to wait for a writer's lock before failing the lookup
RUNTIME_WARNING_LIMIT = 100  # lookup-time warnings kept until the owner drains them
MAX_NESTING = 5  # sqlite tables in the domain lists of sqlite tables (a loop must end)
_nesting = threading.local()
_ATTRIBUTE_NAME = re.compile(f"[^{re.escape(WHITESPACE)}=]*")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_READ_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                           getattr(sqlite3, "SQLITE_RECURSIVE", 33)})


@dataclass(frozen=True)
class Setting:
    value: str
    line: int


@dataclass(frozen=True)
class SqliteConfig:
    dbpath: str
    query: SqlQuery
    query_text: str
    result_format: ResultFormat
    domain: str
    expansion_limit: int


def _problem(file: str, line: int | None, message: str) -> Diagnostic:
    return Diagnostic(Severity.WARNING, file, line, message)


def read_settings(text: str, path: str, diags: Diagnostics) -> tuple[dict[str, Setting], list[Diagnostic]]:
    """`name = value` lines, last one wins; returns the settings and the fatal problems
    (in file order, Postfix stops at the first)."""
    settings: dict[str, Setting] = {}
    fatal: list[Diagnostic] = []
    for line in logical_lines(text, path, diags):
        content = line.text.split("\0", 1)[0]  # Postfix reads C strings
        name = _ATTRIBUTE_NAME.match(content).group()  # type: ignore[union-attr]
        rest = content[len(name):].lstrip(WHITESPACE)
        if not name:
            fatal.append(_problem(path, line.line, f'missing attribute name: "{printable(content, 100)}"'))
            continue
        if not rest.startswith("="):
            fatal.append(_problem(path, line.line, f"missing '=' after attribute name: "
                                                   f'"{printable(content, 100)}"'))
            continue
        value = rest[1:].strip(WHITESPACE)
        if name not in PARAMETERS:
            diags.warning(path, line.line,
                          f'unknown sqlite_table(5) parameter "{printable(name, 100)}": ignored')
        elif name in settings:
            earlier = printable(settings[name].value, 100)
            diags.warning(path, line.line, f"overriding earlier entry: {name}={earlier}")
        settings[name] = Setting(value, line.line)
    return settings, fatal


def parse_config(text: str, path: str, diags: Diagnostics) -> SqliteConfig:
    """The table's configuration; TableError with the first fatal problem (in the order
    Postfix checks them), every further one recorded as a warning."""
    settings, fatal = read_settings(text, path, diags)

    def value(name: str, default: str = "") -> str:
        return settings[name].value if name in settings else default

    def required(name: str, default: str = "") -> str:
        if not value(name, default):
            fatal.append(_problem(path, None, f"bad string length 0 < 1: {name} = "))
        return value(name, default)

    dbpath = required("dbpath")
    query_text = value("query")
    if not query_text:
        table, select_field, where_field = (required(name) for name in ("table", "select_field", "where_field"))
        conditions = value("additional_conditions")
        query_text = f"SELECT {select_field} FROM {table} WHERE {where_field}='%s' {conditions}"
    result_text = required("result_format", "%s")
    limit_text = value("expansion_limit", "0")
    limit = 0
    if len(limit_text) < 16 and _INTEGER.fullmatch(limit_text) and -2**31 <= int(limit_text) < 2**31:
        limit = int(limit_text)
    else:
        fatal.append(_problem(path, None,
                              f"bad numerical configuration: expansion_limit = {printable(limit_text, 100)}"))
    query_template = parse_template(query_text)
    query = SqlQuery("", (), frozenset(), (), "invalid")
    if query_template is None:
        fatal.append(_problem(f"db_common_parse: {path}", None,
                              f"Invalid query template: {printable(query_text, 200)}"))
    else:
        query = translate_query(query_template)
        query_line = settings["query"].line if "query" in settings else None
        if query.error:
            fatal.append(_problem(path, query_line, query.error))
        for note in query.notes:
            diags.warning(path, query_line, note)
    result_template = parse_template(result_text) if result_text else ()
    if result_template is None:
        fatal.append(_problem(f"db_common_parse: {path}", None,
                              f"Invalid result template: {printable(result_text, 200)}"))
    if fatal:
        diags.items.extend(fatal[1:])
        raise TableError(f"{fatal[0].where()}: {fatal[0].message}")
    return SqliteConfig(dbpath, query, query_text, ResultFormat(result_template or ()), value("domain"), limit)


class DomainList:
    """The `domain` parameter as a Postfix match list of whole names; `error` tells
    why it could not be read (a missing file)."""

    MAX_DEPTH = 10  # nested /file references

    def __init__(self, text: str, utf8: bool, diags: Diagnostics) -> None:
        self.utf8 = utf8
        self.diags = diags
        self.patterns: list[tuple[bool, str | LookupTable]] = []
        self.files: list[str] = []
        self.error: str | None = None
        self._add(text, 0)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def _add(self, text: str, depth: int) -> None:
        for word in split_list(text):
            if self.error is not None:
                return
            negated = False
            while word.startswith("!"):
                negated, word = not negated, word[1:]
            if word.startswith("/"):
                content = self._read_file(word, depth)
                if content is not None:
                    self._add(content, depth + 1)
            elif re.match(r"[A-Za-z0-9_-]+:", word):
                from roost.tables.registry import open_table

                table = open_table(word, self.diags, options=TableOptions(fold_case=False, utf8=self.utf8),
                                   cache=False)
                self.patterns.append((negated, table))
            elif word:
                self.patterns.append((negated, fold_key(word, self.utf8)))

    def _read_file(self, path: str, depth: int) -> str | None:
        if depth >= self.MAX_DEPTH:
            self.error = f"{path}: domain list files nested too deeply"
            return None
        self.files.append(path)
        try:
            with open(path, "rb") as handle:
                text = decode(handle.read())
        except OSError as exc:
            self.error = f"open file {path}: {exc.strerror or exc}"
            return None
        return "\n".join(line for line in text.split("\n") if not line.lstrip(WHITESPACE).startswith("#"))

    def matches(self, domain: str) -> bool:
        folded = fold_key(domain, self.utf8)
        for negated, pattern in self.patterns:
            hit = pattern.lookup(domain) is not None if isinstance(pattern, LookupTable) else pattern == folded
            if hit:
                return not negated
        return False

    def close(self) -> None:
        for _negated, pattern in self.patterns:
            if isinstance(pattern, LookupTable):
                pattern.close()


def split_list(text: str) -> list[str]:
    """Words separated by commas or whitespace; braces (`inline:{a, b}`) hold together."""
    words: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if depth == 0 and (char == "," or char in WHITESPACE):
            if current:
                words.append("".join(current))
                current = []
            continue
        if char == "{":
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        current.append(char)
    if current:
        words.append("".join(current))
    return words


def _authorize(action: int, *_details: object) -> int:
    return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY


def open_read_only(dbpath: str) -> sqlite3.Connection:
    """A read-only connection that cannot attach other files; TableError on failure."""
    path = os.path.abspath(dbpath)
    try:
        os.stat(path)
        uri = "file:" + urllib.parse.quote(os.fsencode(path)) + "?mode=ro"
        connection = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None,
                                     check_same_thread=False)
    except (OSError, sqlite3.Error, ValueError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TableError(f"open database {dbpath}: {reason}") from None
    connection.set_authorizer(_authorize)
    connection.text_factory = decode
    return connection


@dataclass
class _Loaded:
    config: SqliteConfig
    domains: DomainList
    connection: sqlite3.Connection

    def close(self) -> None:
        self.domains.close()
        self.connection.close()


class SqliteTable(LookupTable):
    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()
        self._watched: tuple[str, ...] = (name,) if name.startswith(("/", ".")) else ()
        super().__init__(type, name, options, diags)

    def watched_files(self) -> tuple[str, ...]:
        return self._watched

    def _load(self) -> None:
        if not self.name.startswith(("/", ".")):
            raise TableError(f"{self.spec}: roost reads sqlite parameters from a file only "
                             f"(main.cf parameters such as {self.name}_dbpath are not supported); "
                             f"use a path starting with / or .")
        try:
            with open(self.name, "rb") as handle:
                text = decode(handle.read())
        except OSError as exc:
            raise TableError(f"open {self.name}: {exc.strerror or exc}") from None
        config = parse_config(text, self.name, self.diags)
        if getattr(_nesting, "depth", 0) >= MAX_NESTING:
            raise TableError(f"{self.spec}: sqlite tables nested too deeply in domain lists")
        _nesting.depth = getattr(_nesting, "depth", 0) + 1
        try:
            domains = DomainList(config.domain, self.options.utf8, self.diags)
        finally:
            _nesting.depth -= 1
        try:
            if domains.error is not None:
                raise TableError(domains.error)
            connection = open_read_only(config.dbpath)
        except TableError:
            domains.close()
            self._watch(config.dbpath, *domains.files)
            raise
        with self._lock:
            previous, self._loaded = self._loaded, _Loaded(config, domains, connection)
            if previous is not None:
                previous.close()
        self._watch(config.dbpath, *domains.files)

    def _watch(self, *paths: str) -> None:
        self._watched = (self.name, *paths)
        for path in paths:
            self._signatures.setdefault(path, file_signature(path))

    def _runtime_warning(self, where: str, message: str) -> None:
        # Lookups run for the server's lifetime: keep what nobody drains bounded.
        if len(self.diags.items) < RUNTIME_WARNING_LIMIT:
            self.diags.warning(where, None, message)

    def _get(self, key: str) -> str | None:
        if not key:
            self._runtime_warning(f'table "{self.spec}"', "empty query string -- ignored")
            return None
        folded = fold_key(key, self.options.utf8) if self.options.fold_case else key
        if not is_valid_utf8(folded):
            self._runtime_warning(f'table "{self.spec}"',
                                  f'non-UTF-8 key "{printable(folded, 100)}": not found')
            return None
        with self._lock:  # one statement at a time per connection; no reload midway
            if self._loaded is None:
                raise TableError(f"{self.spec}: table is closed")
            return self._answer(self._loaded, folded)

    def _answer(self, loaded: _Loaded, folded: str) -> str | None:
        parts = AddressParts.of(folded)
        config = loaded.config
        if loaded.domains and not (parts.local and parts.domain and loaded.domains.matches(parts.domain)):
            return None
        parameters = config.query.bind(parts)
        key_parts_missing = any(parts.expand(letter) is None for letter in config.result_format.key_letters)
        if parameters is None or key_parts_missing:
            return None
        values: list[str] = []
        for value in self._rows(loaded, parameters):
            if value == "":
                self._runtime_warning(f'table "{self.spec}"',
                                      f'empty lookup result for: "{printable(folded, 100)}" -- ignored')
                continue
            formatted = config.result_format.render(value, parts)
            if formatted is None:
                continue
            values.append(formatted)
            if 0 < config.expansion_limit < len(values):
                self._runtime_warning(f"dict_sqlite_lookup: {self.name}",
                                      f"Expansion limit exceeded for key '{printable(folded, 100)}'")
                raise TableError(f"table {self.spec}: query error: "
                                 f"expansion_limit {config.expansion_limit} exceeded")
        return ",".join(values) if values else None

    def _rows(self, loaded: _Loaded, parameters: tuple[str, ...]) -> list[str]:
        """The first column of every row as text; NULLs left out."""
        sql, connection = loaded.config.query.sql, loaded.connection
        if not sql:
            raise TableError(f"dict_sqlite_lookup: {self.name}: SQL step failed for query "
                             f"'{printable(loaded.config.query_text, 200)}': empty statement")
        try:
            cursor = connection.execute(sql, parameters)
        except (sqlite3.Error, OverflowError, ValueError) as exc:
            raise TableError(f"dict_sqlite_lookup: {self.name}: SQL prepare failed: {exc}") from None
        try:
            texts = (_as_text(connection, row[0] if row else None) for row in cursor)
            return [text for text in texts if text is not None]
        except (sqlite3.Error, OverflowError, ValueError) as exc:
            raise TableError(f"dict_sqlite_lookup: {self.name}: SQL step failed: {exc}") from None

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, None
            if loaded is not None:
                loaded.close()


def _as_text(connection: sqlite3.Connection, value: object) -> str | None:
    """A column value as SQLite's sqlite3_column_text gives it to Postfix."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = decode(value)
    elif isinstance(value, int):
        text = str(value)
    else:  # REAL: SQLite's own rendering (1.0e+20, 0.3), not Python's
        text = connection.execute("SELECT CAST(? AS TEXT)", (value,)).fetchone()[0]
    return text.split("\0", 1)[0]
