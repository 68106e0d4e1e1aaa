"""Indexed tables `hash:`, `btree:`, `lmdb:`, `cdb:` compiled by `postmap`/`postalias`.

Postfix compiles `type:FILE` into FILE.db, FILE.lmdb or FILE.cdb. roost keeps its own
compiled form in **FILE.roostdb** for all four types, so a real Postfix database next to
the same source is never clobbered and both can coexist. FILE.roostdb is an SQLite file
(stdlib `sqlite3`) with one WITHOUT ROWID table `entries(k BLOB PRIMARY KEY, v BLOB)`:
one B-tree probe per lookup. Keys are stored case-folded unless built with `-f`.

What matches Postfix: the source syntax (roost.tables.source), the answers, duplicate
handling (first entry wins and a warning names the database, `-r` replaces, `-w` keeps
silently) and the workflow: a lookup in a table whose compiled file is missing fails with
a message naming the file and the command to run; an older compiled file gives a warning.

Invariants: a rebuild is written to a temporary file in the same directory, fsynced and
renamed over FILE.roostdb, so readers see the old or the new table, never a mix;
incremental updates (`-i`, `-d`) run in one SQLite transaction. Readers notice a rebuilt
file (new inode) or an updated one within a second (see roost.tables.base).
Security: the database is opened read-only for lookups; SQL is parameterized.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Iterable, Iterator

from roost.config.diagnostics import Diagnostics
from roost.tables.base import LookupTable, TableError, TableOptions, file_signature
from roost.tables.source import decode, encode, fold_key, parse_entries

COMPILED_SUFFIX = ".roostdb"
INDEXED_TYPES = ("hash", "btree", "lmdb", "cdb")
FORMAT_VERSION = "1"


def compiled_path(source: str) -> str:
    return source + COMPILED_SUFFIX


def rebuild_hint(table_type: str, source: str, aliases: bool) -> str:
    tool = "postalias" if aliases else "postmap"
    return f'run "roost {tool} {table_type}:{source}"'


def duplicate_label(table_type: str, source: str) -> str:
    """How Postfix names the database in its duplicate-entry warning, with roost's file."""
    if table_type == "lmdb":
        return f"lmdb:{source}"
    if table_type == "cdb":
        return source
    return compiled_path(source)


def _connect_for_writing(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    return conn


def _create_schema(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS entries (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID")
    conn.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (FORMAT_VERSION,))


def _fsync_directory(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dedupe(entries: Iterable[tuple[int, str, str]], label: str, diags: Diagnostics, *,
           fold: bool, utf8: bool, replace: bool, warn: bool) -> dict[bytes, bytes]:
    """Entries keyed by stored key; first wins (warning) unless `replace` (-r)."""
    table: dict[bytes, bytes] = {}
    for _line, key, value in entries:
        stored = encode(fold_key(key, utf8) if fold else key)
        if stored in table:
            if warn:
                diags.warning(label, None, f'duplicate entry: "{fold_key(key, utf8) if fold else key}"')
            if not replace:
                continue
        table[stored] = encode(value)
    return table


def build(table_type: str, source: str, diags: Diagnostics, *, aliases: bool = False,
          fold: bool = True, utf8: bool = False, replace: bool = False, warn: bool = True,
          extra: dict[str, str] | None = None) -> bool:
    """Compile `source` into FILE.roostdb atomically. False (with a diagnostic) on failure."""
    try:
        with open(source, "rb") as handle:
            text = decode(handle.read())
    except OSError as exc:
        diags.fatal(source, None, f"open {source}: {exc.strerror or exc}")
        return False
    label = duplicate_label(table_type, source)
    entries = dedupe(parse_entries(text, source, diags, aliases=aliases, utf8=utf8), label, diags,
                     fold=fold, utf8=utf8, replace=replace, warn=warn)
    for key, value in (extra or {}).items():
        entries[encode(key)] = encode(value)
    target = compiled_path(source)
    temporary = f"{target}.tmp.{os.getpid()}"
    try:
        if os.path.exists(temporary):
            os.unlink(temporary)
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("PRAGMA cache_size=-262144")
            conn.execute("BEGIN")
            _create_schema(conn)
            conn.executemany("INSERT INTO entries VALUES (?, ?)", sorted(entries.items()))
            conn.execute("COMMIT")
        finally:
            conn.close()
        _copy_permissions(source, temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_directory(target)
    except (OSError, sqlite3.Error) as exc:
        diags.fatal(target, None, f"cannot write {target}: {exc}")
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False
    return True


def _copy_permissions(source: str, target: str) -> None:
    # Like postmap: the result gets the source file's group and other read permissions.
    try:
        mode = os.stat(source).st_mode & 0o644
        os.chmod(target, mode | 0o600)
    except OSError:
        pass


def update(table_type: str, source: str, entries: Iterable[tuple[int, str, str]], diags: Diagnostics, *,
           fold: bool = True, utf8: bool = False, replace: bool = False, warn: bool = True) -> bool:
    """`postmap -i`: add entries to an existing (or new) compiled table in one transaction."""
    target = compiled_path(source)
    label = duplicate_label(table_type, source)
    try:
        conn = _connect_for_writing(target)
        try:
            conn.execute("BEGIN IMMEDIATE")
            _create_schema(conn)
            for _line, key, value in entries:
                stored_text = fold_key(key, utf8) if fold else key
                stored = encode(stored_text)
                if replace:
                    conn.execute("INSERT OR REPLACE INTO entries VALUES (?, ?)", (stored, encode(value)))
                    continue
                cursor = conn.execute("INSERT OR IGNORE INTO entries VALUES (?, ?)", (stored, encode(value)))
                if cursor.rowcount == 0 and warn:
                    diags.warning(label, None, f'duplicate entry: "{stored_text}"')
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        diags.fatal(target, None, f"cannot update {target}: {exc}")
        return False
    return True


def delete(table_type: str, source: str, keys: Iterable[str], *, fold: bool = True,
           utf8: bool = False) -> tuple[int, str | None]:
    """`postmap -d`: remove one entry per key; (number removed, error or None)."""
    target = compiled_path(source)
    if not os.path.exists(target):
        return 0, f"open database {target}: No such file or directory"
    removed = 0
    try:
        conn = _connect_for_writing(target)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for key in keys:
                stored = encode(fold_key(key, utf8) if fold else key)
                removed += conn.execute("DELETE FROM entries WHERE k = ?", (stored,)).rowcount
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return removed, f"cannot update {target}: {exc}"
    return removed, None


class IndexedTable(LookupTable):
    """A compiled table; `name` is the source file path, as in `hash:/etc/postfix/access`."""

    result_cache_size = 4096  # answers kept between reloads (roost.tables.base)

    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None, aliases: bool = False) -> None:
        self.aliases = aliases
        self._conn: sqlite3.Connection | None = None
        super().__init__(type, name, options, diags)

    @property
    def compiled(self) -> str:
        return compiled_path(self.name)

    def watched_files(self) -> tuple[str, ...]:
        return (self.name, self.compiled)

    def _signature(self, path: str) -> tuple | None:
        """The compiled file's signature includes SQLite's file change counter (header bytes
        24-27, bumped by every committed transaction in rollback-journal mode, which
        postmap -i/-d use): two in-place updates within one timestamp tick that leave the
        size alike still differ."""
        signature = file_signature(path)
        if signature is None or path != self.compiled:
            return signature
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return signature
        try:
            return signature + (os.pread(fd, 4, 24),)
        except OSError:
            return signature
        finally:
            os.close(fd)

    def _load(self) -> None:
        self.close()
        hint = rebuild_hint(self.type, self.name, self.aliases)
        if not os.path.exists(self.compiled):
            raise TableError(f"open database {self.compiled}: No such file or directory; {hint}")
        try:
            self._conn = sqlite3.connect(f"file:{_uri_path(self.compiled)}?mode=ro", uri=True,
                                         check_same_thread=False)
            self._query = "SELECT v FROM entries WHERE k = ?"
            self._conn.execute(self._query, (b"",)).fetchone()
        except sqlite3.Error as exc:
            self.close()
            raise TableError(f"open database {self.compiled}: {exc}; {hint}") from None
        try:
            if os.stat(self.compiled).st_mtime < os.stat(self.name).st_mtime:
                self.diags.warning(self.spec, None,
                                   f"database {self.compiled} is older than source file {self.name}; {hint}")
        except OSError:
            pass

    def _get(self, key: str) -> str | None:
        if self._conn is None:
            raise TableError(f"open database {self.compiled}: not open")
        stored = fold_key(key, self.options.utf8) if self.options.fold_case else key
        try:
            row = self._conn.execute(self._query, (encode(stored),)).fetchone()
        except sqlite3.Error as exc:
            raise TableError(f"read database {self.compiled}: {exc}") from None
        return None if row is None else decode(row[0])

    def items(self) -> Iterator[tuple[str, str]]:
        """Every (key, value) in database order (`postmap -s`)."""
        self.refresh()
        if self._conn is None:
            raise TableError(self._load_error or f"open database {self.compiled}: not open")
        for key, value in self._conn.execute("SELECT k, v FROM entries"):
            yield decode(key), decode(value)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))
