"""roost postmap/postalias -q answer exactly like Postfix's postmap/postalias -q.

Every corpus table is built by both tools (each in its own directory) and every key is
asked of both, one `-q key` per key, comparing stdout and exit status; `-q -` batches and
`-s` listings are compared too.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.tables.corpus import Case, corpus
from tests.tables.oracle import COMPILED, make_sides, ours, real

CASES = corpus()


def test_corpus_is_large_enough():
    assert len(CASES) >= 20
    assert sum(len(case.keys) for case in CASES) >= 500
    names = {case.name for case in CASES}
    assert {"seed003_access_printed", "seed003_aliases_printed", "seed004_aliases", "generated"} <= names


def _write_source(path, content: bytes) -> None:
    path.write_bytes(content)
    # A source modified within the last second makes the real postmap wait for the clock.
    past = time.time() - 10
    os.utime(path, (past, past))


def _prepare(case: Case, tmp_path, by_name: dict[str, Case]):
    real_side, roost_side = make_sides(tmp_path, case.main_cf)
    for side, run in ((real_side, real), (roost_side, ours)):
        for needed in case.needs:
            other = by_name[needed]
            _write_source(side.directory / other.name, other.content)
            if other.type in COMPILED or other.name == "tricky_map":
                run(other.tool, side, f"hash:{side.path(other.name)}")
        if case.content is not None:
            _write_source(side.directory / case.name, case.content)
            if case.type in COMPILED:
                answer, _err = run(case.tool, side, f"{case.type}:{side.path(case.name)}")
                assert answer.code == 0, _err
    return real_side, roost_side


def _reference(case: Case, side) -> str:
    if case.spec:
        return case.spec.replace("{dir}", str(side.directory))
    return f"{case.type}:{side.path(case.name)}"


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_query_matches_postfix(case: Case, tmp_path):
    by_name = {c.name: c for c in CASES}
    real_side, roost_side = _prepare(case, tmp_path, by_name)
    mismatches = []
    for key in case.keys:
        expected, _ = real(case.tool, real_side, "-q", key, _reference(case, real_side))
        got, err = ours(case.tool, roost_side, "-q", key, _reference(case, roost_side))
        if expected != got:
            mismatches.append((key, expected, got, err))
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("case", [c for c in CASES if c.content is not None][:12],
                         ids=[c.name for c in CASES if c.content is not None][:12])
def test_batch_query_matches_postfix(case: Case, tmp_path):
    real_side, roost_side = _prepare(case, tmp_path, {c.name: c for c in CASES})
    keys = "\n".join(k for k in case.keys if "\n" not in k).encode() + b"\n"
    expected, _ = real(case.tool, real_side, "-q", "-", _reference(case, real_side), stdin=keys)
    got, _ = ours(case.tool, roost_side, "-q", "-", _reference(case, roost_side), stdin=keys)
    assert got == expected


@pytest.mark.parametrize("name", ["seed003_access", "tricky_map", "virtual", "seed004_aliases", "tricky_aliases"])
def test_listing_matches_postfix(name: str, tmp_path):
    case = next(c for c in CASES if c.name == name)
    real_side, roost_side = _prepare(case, tmp_path, {})
    expected, _ = real(case.tool, real_side, "-s", _reference(case, real_side))
    got, _ = ours(case.tool, roost_side, "-s", _reference(case, roost_side))
    volatile = ("YP_LAST_MODIFIED", "YP_MASTER_NAME")
    strip = lambda text: sorted(l for l in text.splitlines() if not l.startswith(volatile))  # noqa: E731
    assert strip(got.stdout) == strip(expected.stdout)
    assert got.code == expected.code
