"""Fixtures of the lookup-table tests."""

from __future__ import annotations

import pytest

from tests.tables.oracle import make_sides, ours, real
from tests.tables.sqlite_cases import make_database, require_postfix_sqlite


@pytest.fixture
def sqlite_sides(tmp_path):
    """(real side, roost side, database path, shared file directory) for one test."""
    real_side, roost_side = make_sides(tmp_path)
    require_postfix_sqlite(real_side.directory)
    shared = tmp_path / "shared"
    shared.mkdir()
    database = make_database(shared)
    (shared / "domains.txt").write_text("# domains looked up in SQL\nlisted.org\nother.org  third.org\n")
    (shared / "domtab").write_text("tabled.net OK\n")
    for side, run in ((real_side, real), (roost_side, ours)):
        answer, err = run("postmap", side, f"hash:{shared / 'domtab'}")
        assert answer.code == 0, err
    return real_side, roost_side, database, shared
