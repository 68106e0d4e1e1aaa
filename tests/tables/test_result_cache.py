"""The per-table answer cache of compiled (hash:) tables (roost.tables.base): answers, found
and not found, are remembered until the next reload, so repeated look-ups cost no SQLite
probe; a rebuilt table and an in-place `postmap -i` / `postmap -d` update are seen at the
next file check (RELOAD_INTERVAL), even when the update leaves size and mtime alike."""

from __future__ import annotations

import os
import sqlite3

import pytest

from roost.config.diagnostics import Diagnostics
from roost.tables import indexed
from roost.tables.base import TableError
from roost.tables.indexed import IndexedTable


def _build(tmp_path, text: str) -> str:
    source = tmp_path / "map"
    source.write_text(text)
    assert indexed.build("hash", str(source), Diagnostics())
    return str(source)


class CountingTable(IndexedTable):
    probes = 0

    def _get(self, key):
        type(self).probes += 1
        return super()._get(key)


@pytest.fixture
def counting():
    CountingTable.probes = 0
    return CountingTable


def test_repeated_lookups_hit_the_cache_found_and_not_found(tmp_path, counting):
    table = counting("hash", _build(tmp_path, "alice@example.test ok\n"))
    for _ in range(5):
        assert table.lookup("alice@example.test") == "ok"
        assert table.lookup("nobody@example.test") is None
    assert counting.probes == 2


def test_rebuilt_table_is_seen_at_the_next_check(tmp_path, counting, monkeypatch):
    source = _build(tmp_path, "alice@example.test ok\n")
    table = counting("hash", source)
    assert table.lookup("alice@example.test") == "ok"
    assert table.lookup("bob@example.test") is None
    _build(tmp_path, "bob@example.test ok\n")
    monkeypatch.setattr("roost.tables.base.RELOAD_INTERVAL", 0.0)
    table._next_check = 0.0
    assert table.lookup("alice@example.test") is None
    assert table.lookup("bob@example.test") == "ok"


@pytest.mark.parametrize("change", ["insert", "delete"])
def test_in_place_update_with_same_size_and_mtime_is_seen(tmp_path, counting, change):
    """postmap -i / -d change the compiled file in place; SQLite's change counter is part of
    the signature, so even a change that keeps size and mtime (restored here) is noticed."""
    source = _build(tmp_path, "alice@example.test ok\nbob@example.test ok\n")
    compiled = indexed.compiled_path(source)
    table = counting("hash", source)
    assert table.lookup("carol@example.test") is None
    assert table.lookup("bob@example.test") == "ok"
    before = os.stat(compiled)
    if change == "insert":
        assert indexed.update("hash", source, [(1, "carol@example.test", "ok")], Diagnostics())
    else:
        removed, error = indexed.delete("hash", source, ["bob@example.test"])
        assert (removed, error) == (1, None)
    os.utime(compiled, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(compiled).st_size == before.st_size
    table._next_check = 0.0  # the once-a-second check is due
    if change == "insert":
        assert table.lookup("carol@example.test") == "ok"
    else:
        assert table.lookup("bob@example.test") is None


def test_no_check_before_the_interval_keeps_answers(tmp_path, counting):
    source = _build(tmp_path, "alice@example.test ok\n")
    table = counting("hash", source)
    assert table.lookup("alice@example.test") == "ok"
    connection = sqlite3.connect(indexed.compiled_path(source))
    connection.execute("DELETE FROM entries")
    connection.commit()
    connection.close()
    table._next_check = float("inf")  # within RELOAD_INTERVAL: the remembered answer stands
    assert table.lookup("alice@example.test") == "ok"
    table._next_check = 0.0
    assert table.lookup("alice@example.test") is None


def test_cache_is_bounded(tmp_path, counting, monkeypatch):
    monkeypatch.setattr(CountingTable, "result_cache_size", 8)
    table = counting("hash", _build(tmp_path, "alice@example.test ok\n"))
    for index in range(100):
        assert table.lookup(f"user{index}@example.test") is None
    assert len(table._results) <= 8


def test_lookup_failure_is_not_remembered(tmp_path, counting, monkeypatch):
    table = counting("hash", _build(tmp_path, "alice@example.test ok\n"))
    real_get = IndexedTable._get
    failures = iter([TableError("read database: disk I/O error")])

    def flaky(self, key):
        for failure in failures:
            raise failure
        return real_get(self, key)

    monkeypatch.setattr(IndexedTable, "_get", flaky)
    with pytest.raises(TableError):
        table.lookup("alice@example.test")
    assert table.lookup("alice@example.test") == "ok"
