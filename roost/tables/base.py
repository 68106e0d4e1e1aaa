"""The lookup-table interface every `type:name` table implements (DATABASE_README).

A table answers `lookup(key) -> str | None` (None: not found) and raises `TableError` when
it cannot be consulted at all (Postfix's DICT_ERR_RETRY: the caller defers, e.g. `451 4.3.0
Temporary lookup failure`). File-backed tables re-read themselves when a watched file
changes; the check costs one stat() per watched file at most once per second per table.
Tables whose look-ups cost real work (the compiled `hash:` family: an SQLite probe with its
locking syscalls) remember their answers, found and not found, in a bounded per-table cache
(`result_cache_size`) that is replaced on every reload, so an answer is never older than
the staleness the file check already allows (RELOAD_INTERVAL).

Invariants: `lookup` never raises anything but `TableError`; a table that failed to load
keeps answering from its last good content when it has one.
Security: keys are data, never interpreted; file paths come from configuration only.
"""

from __future__ import annotations

import abc
import os
import time
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics

RELOAD_INTERVAL = 1.0  # seconds between stat() checks of a table's files
_MISSING = object()


class TableError(Exception):
    """The table cannot be consulted (missing or unreadable file, bad syntax)."""


@dataclass(frozen=True)
class TableOptions:
    """How a table is opened. `fold_case`: lowercase lookup keys of fixed-string tables
    (postmap without -f); `utf8`: smtputf8_enable (full Unicode case folding, UTF-8 checks)."""

    fold_case: bool = True
    utf8: bool = False


def file_signature(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class LookupTable(abc.ABC):
    """Base class. Subclasses implement `_get` and, when file backed, `watched_files`
    and `_load`; they set their own attributes before calling `super().__init__`."""

    fixed_keys = True  # Postfix DICT_FLAG_FIXED: also asked partial keys (parent domains...)
    # answers remembered between reloads (0: none); only for tables whose _get depends on
    # the key and the watched files alone
    result_cache_size = 0

    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        self.type = type
        self.name = name
        self.options = options or TableOptions()
        self.diags = diags if diags is not None else Diagnostics()
        self._signatures: dict[str, tuple | None] = {}
        self._next_check = 0.0
        self._load_error: str | None = None
        self._results: dict[str, str | None] = {}
        self._reload()

    @property
    def spec(self) -> str:
        return f"{self.type}:{self.name}"

    # --- subclass hooks -------------------------------------------------------------
    def watched_files(self) -> tuple[str, ...]:
        return ()

    def _load(self) -> None:
        """(Re)read the table; raise TableError when it cannot be read."""

    @abc.abstractmethod
    def _get(self, key: str) -> str | None:
        """The value stored for exactly `key`, or None."""

    # --- public ---------------------------------------------------------------------
    def lookup(self, key: str) -> str | None:
        self.refresh()
        if self._load_error is not None:
            raise TableError(self._load_error)
        if not self.result_cache_size:
            return self._get(key)
        results = self._results  # a reload replaces the dict: a racing old answer lands in the old one
        value = results.get(key, _MISSING)
        if value is _MISSING:
            value = self._get(key)  # TableError is not remembered: the next look-up retries
            if len(results) >= self.result_cache_size:
                results.clear()
            results[key] = value
        return value

    def refresh(self, force: bool = False) -> bool:
        """Reload when a watched file changed; returns True when a reload happened."""
        now = time.monotonic()
        if not force and now < self._next_check:  # checked first: the common case costs nothing else
            return False
        files = self.watched_files()
        if not files:
            return False
        self._next_check = now + RELOAD_INTERVAL
        current = {path: self._signature(path) for path in files}
        if not force and current == self._signatures:
            return False
        self._reload()
        return True

    def _signature(self, path: str) -> tuple | None:
        """What must change when `path` changes (subclasses may add to the stat triple)."""
        return file_signature(path)

    def _reload(self) -> None:
        self._results = {}
        self._signatures = {path: self._signature(path) for path in self.watched_files()}
        self._next_check = time.monotonic() + RELOAD_INTERVAL
        try:
            self._load()
            self._load_error = None
        except TableError as exc:
            self._load_error = str(exc)
            self.diags.warning(self.spec, None, str(exc))

    def close(self) -> None:
        """Release files; the table may not be used afterwards."""
