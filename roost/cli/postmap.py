"""`postmap` (and the shared engine of `postalias`): build, query, list and edit tables.

Implements postmap(1) / postalias(1) of Postfix 3.7:
`postmap [-NfinoprsuUvw] [-c config_dir] [-d key] [-q key] [type:]file ...`.
- no -q/-s/-d: compile each `type:file` (hash, btree, lmdb, cdb) into roost's FILE.roostdb
  (see roost.tables.indexed); with -i, add entries read from standard input instead;
- -q key: print the first value found in the listed tables; -q -: keys on stdin, one
  `key<TAB>value` (postalias: `key:<TAB>value`) line per key found;
- -d key / -d -: remove one entry per table; -s: list every entry of the first table;
- -f: no case folding; -r: replace duplicates silently; -w: keep the first silently;
- -N/-n (terminating null), -o, -p, -v: accepted and without effect in roost's format;
- -u: no UTF-8 (smtputf8_enable) processing.
Exit status as Postfix: 0 on success and when a key was found, 1 when not found and on
every error. Diagnostics go to stderr as `postmap: warning: FILE, line N: text`.
Configuration: main.cf in `-c DIR`, else $MAIL_CONFIG, else /etc/roost
(default_database_type, alias_database, smtputf8_enable, compatibility_level).

Invariants: a fatal error stops before any later table is touched, like Postfix.
Security: tables are only written next to their source; keys are never interpreted.
"""

from __future__ import annotations

import getopt
import os
import socket
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from roost.config.diagnostics import Diagnostics
from roost.tables import indexed
from roost.tables.base import LookupTable, TableError, TableOptions
from roost.tables.registry import SUPPORTED_TYPES, open_table, split_reference
from roost.tables.source import decode, encode, parse_entries

DEFAULT_CONFIG_DIR = "/etc/roost"
USAGE = {
    "postmap": "usage: postmap [-bfFhimnNoprsuUvw] [-c config_dir] [-d key] [-q key] [map_type:]file...",
    "postalias": "usage: postalias [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [map_type:]file...",
}
FLAGS = {"postmap": "bc:d:fFhimnNopq:rsuUvw", "postalias": "c:d:fiNnopq:rsuvw"}
UNSUPPORTED_FLAGS = {"-b", "-h", "-m", "-F"}


class Fatal(Exception):
    pass


@dataclass
class Request:
    tool: str
    config_dir: str
    query: str | None = None
    delete: str | None = None
    sequence: bool = False
    incremental: bool = False
    fold: bool = True
    replace: bool = False
    warn_duplicates: bool = True
    utf8_disabled: bool = False
    use_alias_database: bool = False  # newaliases: no table arguments means alias_database
    maps: list[str] = field(default_factory=list)


def read_config(config_dir: str) -> dict[str, str]:
    """The few main.cf values these tools need, expanded, via roost's Settings when the
    foundation provides it, else by a minimal `name = value` reader."""
    names = ("default_database_type", "alias_database", "smtputf8_enable", "compatibility_level")
    path = os.path.join(config_dir, "main.cf")
    try:
        from roost.config.main_cf import parse_main_cf
        from roost.config.settings import Settings

        diags = Diagnostics()
        settings = Settings.from_main_cf(parse_main_cf(path, diags), config_dir, diags)
        return {name: settings.get(name) for name in names}
    except Exception:  # foundation not available yet, or a parameter it does not know
        pass
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            lines = handle.read().split("\n")
    except OSError:
        lines = []
    last = None
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and last:
            values[last] += " " + line.strip()
            continue
        name, sep, value = line.partition("=")
        if sep:
            last = name.strip()
            values[last] = value.strip()
    return values


def utf8_enabled(config: dict[str, str]) -> bool:
    explicit = config.get("smtputf8_enable", "")
    if explicit.lower() in ("yes", "true", "1"):
        return True
    if explicit.lower() in ("no", "false", "0"):
        return False
    level = config.get("compatibility_level", "0").split(".")[0]
    # postconf(5): smtputf8_enable defaults to yes from compatibility_level 1.
    return level.isdigit() and int(level) >= 1


def parse_args(tool: str, argv: list[str]) -> Request:
    try:
        options, maps = getopt.gnu_getopt(argv[1:], FLAGS[tool])
    except getopt.GetoptError as exc:
        raise Fatal(f"{exc.msg}; {USAGE[tool]}") from None
    request = Request(tool, os.environ.get("MAIL_CONFIG") or DEFAULT_CONFIG_DIR, maps=maps)
    modes = 0
    for flag, value in options:
        if flag in UNSUPPORTED_FLAGS:
            raise Fatal(f"option {flag} is not supported by roost")
        if flag == "-c":
            request.config_dir = value
        elif flag == "-q":
            request.query, modes = value, modes + 1
        elif flag == "-d":
            request.delete, modes = value, modes + 1
        elif flag == "-s":
            request.sequence, modes = True, modes + 1
        elif flag == "-i":
            request.incremental = True
        elif flag == "-f":
            request.fold = False
        elif flag == "-r":
            request.replace, request.warn_duplicates = True, False
        elif flag == "-w":
            request.replace, request.warn_duplicates = False, False
        elif flag == "-u":
            request.utf8_disabled = True
    if modes > 1:
        raise Fatal("specify only one of -s -q or -d")
    return request


class Tool:
    def __init__(self, request: Request, stdin, stdout, stderr) -> None:
        self.request = request
        self.aliases = request.tool == "postalias"
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.config = read_config(request.config_dir)
        self.utf8 = utf8_enabled(self.config) and not request.utf8_disabled
        self.default_type = self.config.get("default_database_type") or "hash"
        self.options = TableOptions(fold_case=request.fold, utf8=self.utf8)

    def report(self, diags: Diagnostics, skip: str | None = None) -> None:
        for item in diags.items:
            if skip is None or skip not in item.message:
                self.stderr.write(f"{self.request.tool}: {item}\n")
        diags.items.clear()

    def run(self) -> int:
        request = self.request
        if not request.maps and request.use_alias_database:
            request.maps = self.config.get("alias_database", "hash:/etc/aliases").replace(",", " ").split()
        if not request.maps:
            raise Fatal(USAGE[request.tool])
        if request.query is not None:
            return self.query(request.query)
        if request.delete is not None:
            return self.delete(request.delete)
        if request.sequence:
            return self.sequence(request.maps[0])
        for reference in request.maps:
            self.build(reference)
        return 0

    @contextmanager
    def _opened(self, reference: str) -> Iterator[tuple[LookupTable, Diagnostics]]:
        table = open_table(reference, diags := Diagnostics(), options=self.options,
                           aliases=self.aliases, default_type=self.default_type, cache=False)
        try:
            yield table, diags
        finally:
            table.close()

    @contextmanager
    def _consulting(self, diags: Diagnostics) -> Iterator[None]:
        """Report the table's diagnostics; a table that cannot be consulted is fatal, with
        its message said once (not also as a warning)."""
        try:
            yield
        except TableError as exc:
            self.report(diags, skip=str(exc))
            raise Fatal(str(exc)) from None
        self.report(diags)

    def _stdin_text(self) -> str:
        return decode(self.stdin.buffer.read() if hasattr(self.stdin, "buffer") else encode(self.stdin.read()))

    def _keys_from_stdin(self) -> list[str]:
        return [line.rstrip("\r") for line in self._stdin_text().split("\n") if line.rstrip("\r")]

    def query(self, key: str) -> int:
        if key != "-":
            for reference in self.request.maps:
                with self._opened(reference) as (table, diags), self._consulting(diags):
                    value = table.lookup(key)
                if value is not None:
                    self._write(value + "\n")
                    return 0
            return 1
        found = False
        separator = ":\t" if self.aliases else "\t"
        with ExitStack() as stack:
            tables = [stack.enter_context(self._opened(reference)) for reference in self.request.maps]
            for key in self._keys_from_stdin():
                for table, diags in tables:
                    with self._consulting(diags):
                        value = table.lookup(key)
                    if value is not None:
                        self._write(f"{key}{separator}{value}\n")
                        found = True
                        break
        return 0 if found else 1

    def delete(self, key: str) -> int:
        keys = self._keys_from_stdin() if key == "-" else [key]
        found = False
        for reference in self.request.maps:
            kind, name = split_reference(reference, self.default_type)
            if kind not in indexed.INDEXED_TYPES:
                raise Fatal(f"table {kind}:{name}: delete operation is not supported")
            removed, error = indexed.delete(kind, name, keys, fold=self.request.fold, utf8=self.utf8)
            if error:
                raise Fatal(error)
            found = found or removed > 0
        return 0 if found else 1

    def sequence(self, reference: str) -> int:
        with self._opened(reference) as (table, diags):
            items = getattr(table, "items", None)
            if items is None:
                raise Fatal(f"table {table.spec}: sequence operation is not supported")
            separator = ":\t" if self.aliases else "\t"
            with self._consulting(diags):
                for key, value in items():
                    self._write(f"{key}{separator}{value}\n")
        return 0

    def build(self, reference: str) -> None:
        kind, name = split_reference(reference, self.default_type)
        if kind not in indexed.INDEXED_TYPES:
            if kind in SUPPORTED_TYPES:
                raise Fatal(f"unsupported dictionary type: {kind} does not support bulk-mode creation.")
            raise Fatal(f"unsupported dictionary type: {kind}")
        diags = Diagnostics()
        if self.request.incremental:
            entries = list(parse_entries(self._stdin_text(), "-", diags, aliases=self.aliases, utf8=self.utf8))
            ok = indexed.update(kind, name, entries, diags, fold=self.request.fold, utf8=self.utf8,
                                replace=self.request.replace, warn=self.request.warn_duplicates)
        else:
            if not os.path.exists(name):
                raise Fatal(f"open {name}: No such file or directory")
            extra = self.alias_extras() if self.aliases else None
            ok = indexed.build(kind, name, diags, aliases=self.aliases, fold=self.request.fold,
                               utf8=self.utf8, replace=self.request.replace,
                               warn=self.request.warn_duplicates, extra=extra)
        fatals = [d for d in diags.fatals]
        diags.items = [d for d in diags.items if d not in fatals]
        self.report(diags)
        if not ok or fatals:
            raise Fatal(fatals[0].message if fatals else f"cannot build {reference}")

    @staticmethod
    def alias_extras() -> dict[str, str]:
        # Sendmail/NIS compatibility entries that postalias adds to every alias database.
        return {"@": "@", "YP_LAST_MODIFIED": str(int(time.time())), "YP_MASTER_NAME": socket.gethostname()}

    def _write(self, text: str) -> None:
        if hasattr(self.stdout, "buffer"):
            self.stdout.flush()
            self.stdout.buffer.write(encode(text))
            self.stdout.buffer.flush()
        else:
            self.stdout.write(text)


def run_tool(tool: str, argv: list[str], stdin=None, stdout=None, stderr=None,
             use_alias_database: bool = False) -> int:
    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    try:
        request = parse_args(tool, argv)
        request.use_alias_database = use_alias_database
        return Tool(request, stdin, stdout, stderr).run()
    except Fatal as exc:
        stdout.flush()
        stderr.write(f"{tool}: fatal: {exc}\n")
        return 1


def main(argv: list[str]) -> int:
    return run_tool("postmap", argv)
