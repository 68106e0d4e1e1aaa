"""Run the real Postfix postmap/postalias and roost's in-process equivalents side by side.

Each side gets its own directory with its own main.cf, so the real tools write their
.db/.lmdb/.cdb files and roost its .roostdb files without seeing each other's.
"""

from __future__ import annotations

import io
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from roost.cli.postmap import run_tool
from tests.conftest import require_tool

COMPILED = ("hash", "btree", "lmdb", "cdb")


@dataclass(frozen=True)
class Answer:
    stdout: str
    code: int


@dataclass
class Side:
    directory: Path

    def path(self, name: str) -> str:
        return str(self.directory / name)


def make_sides(tmp_path: Path, main_cf: str = "") -> tuple[Side, Side]:
    sides = []
    for label in ("real", "roost"):
        directory = tmp_path / label
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "main.cf").write_text(main_cf)
        # The real tools wait up to 2 s when main.cf was modified within the last seconds.
        past = time.time() - 10
        os.utime(directory / "main.cf", (past, past))
        sides.append(Side(directory))
    return sides[0], sides[1]


def real(tool: str, side: Side, *args: str, stdin: bytes | None = None) -> tuple[Answer, str]:
    binary = require_tool(tool)
    proc = subprocess.run([binary, "-c", str(side.directory), *args], input=stdin or b"",
                          capture_output=True, timeout=60)
    return (Answer(proc.stdout.decode("utf-8", "surrogateescape"), proc.returncode),
            proc.stderr.decode("utf-8", "surrogateescape"))


def real_many(tool: str, side: Side, runs: list[tuple[str, ...]]) -> list[tuple[Answer, str]]:
    """`real` for many argument lists at once: a real tool that fails sleeps a second
    before it exits, so failing runs are waited for side by side."""
    with ThreadPoolExecutor(max_workers=32) as pool:
        return list(pool.map(lambda args: real(tool, side, *args), runs))


class _Stdin(io.StringIO):
    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.buffer = io.BytesIO(data)


def ours(tool: str, side: Side, *args: str, stdin: bytes | None = None) -> tuple[Answer, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_tool(tool, [tool, "-c", str(side.directory), *args], stdin=_Stdin(stdin or b""),
                    stdout=out, stderr=err)
    return Answer(out.getvalue(), code), err.getvalue()
