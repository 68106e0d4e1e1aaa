"""Shared set-up of the sqlite: tests: the fixture database, configuration files written
into a test's directory, and the check that the real Postfix can read sqlite: tables."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import DATA, require_tool

FIXTURE_SQL = DATA / "tables" / "sqlite_fixture.sql"


def require_postfix_sqlite(config_dir: Path) -> None:
    """Fail (never skip) when Debian's postfix-sqlite plugin is missing."""
    types = subprocess.run([require_tool("postconf"), "-c", str(config_dir), "-m"], capture_output=True,
                           text=True, timeout=60).stdout
    if "sqlite" not in types.split():
        pytest.fail("the real postmap cannot read sqlite: tables: install Debian's postfix-sqlite "
                    "(scripts/setup.sh --test)", pytrace=False)


def make_database(directory: Path) -> Path:
    path = directory / "fixture.db"
    connection = sqlite3.connect(path)
    connection.executescript(FIXTURE_SQL.read_text(encoding="utf-8"))
    connection.commit()
    connection.close()
    return path


def write_config(directory: Path, name: str, body: str | bytes, **values: str) -> Path:
    """A configuration file; `{db}`, `{dir}` and other `values` are filled into str bodies."""
    path = directory / f"{name}.cf"
    if isinstance(body, str):
        for placeholder, value in values.items():
            body = body.replace("{" + placeholder + "}", value)
        body = body.encode("utf-8", "surrogateescape")
    path.write_bytes(body)
    past = time.time() - 10  # the real tools wait when a file changed within the last second
    os.utime(path, (past, past))
    return path
