"""roost postmap / postalias / newaliases flags and exit codes, against the real tools."""

from __future__ import annotations

import os
import time

import pytest
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import run_roost
from tests.tables.oracle import make_sides, ours, real

SOURCE = b"alpha one\nBeta two\ngamma three\nalpha duplicate\n"


def _both(tmp_path, content: bytes = SOURCE, main_cf: str = "", name: str = "map"):
    real_side, roost_side = make_sides(tmp_path, main_cf)
    for side in (real_side, roost_side):
        path = side.directory / name
        path.write_bytes(content)
        past = time.time() - 10
        os.utime(path, (past, past))
    return real_side, roost_side


def _listing(answer) -> list[str]:
    return sorted(answer.stdout.splitlines())


def test_roost_command_line_builds_and_queries(tmp_path):
    real_side, roost_side = _both(tmp_path)
    built = run_roost("postmap", "-c", str(roost_side.directory), f"hash:{roost_side.path('map')}")
    assert built.returncode == 0
    assert f'{roost_side.path("map")}.roostdb: duplicate entry: "alpha"' in built.stderr
    assert not os.path.exists(roost_side.path("map") + ".db")  # never clobbers Postfix's file
    real("postmap", real_side, f"hash:{real_side.path('map')}")
    for key in ("alpha", "BETA", "missing"):
        ours_cli = run_roost("postmap", "-c", str(roost_side.directory), "-q", key, f"hash:{roost_side.path('map')}")
        expected, _ = real("postmap", real_side, "-q", key, f"hash:{real_side.path('map')}")
        assert (ours_cli.stdout, ours_cli.returncode) == (expected.stdout, expected.code)


@pytest.mark.parametrize("flags", [["-r"], ["-w"], ["-f"], ["-N"], ["-n"], ["-f", "-r"]])
def test_build_flags_match_postfix(tmp_path, flags):
    real_side, roost_side = _both(tmp_path)
    for side, run in ((real_side, real), (roost_side, ours)):
        _answer, err = run("postmap", side, *flags, f"hash:{side.path('map')}")
        if "-r" in flags or "-w" in flags:
            assert "duplicate" not in err
    for key in ("alpha", "ALPHA", "Beta", "beta", "gamma"):
        query_flags = ["-f"] if "-f" in flags else []
        expected, _ = real("postmap", real_side, *query_flags, "-q", key, f"hash:{real_side.path('map')}")
        got, _ = ours("postmap", roost_side, *query_flags, "-q", key, f"hash:{roost_side.path('map')}")
        assert got == expected, key


def test_incremental_and_delete_match_postfix(tmp_path):
    real_side, roost_side = _both(tmp_path)
    for side, run in ((real_side, real), (roost_side, ours)):
        run("postmap", side, f"hash:{side.path('map')}")
    addition = b"delta four\nalpha replaced?\nEpsilon five\n"
    results = []
    for side, run in ((real_side, real), (roost_side, ours)):
        ref = f"hash:{side.path('map')}"
        added, err = run("postmap", side, "-i", ref, stdin=addition)
        deleted, _ = run("postmap", side, "-d", "gamma", ref)
        deleted_again, _ = run("postmap", side, "-d", "gamma", ref)
        batch_delete, _ = run("postmap", side, "-d", "-", ref, stdin=b"nothing\nBETA\n")
        listing, _ = run("postmap", side, "-s", ref)
        results.append((added.code, "duplicate entry" in err, deleted.code, deleted_again.code,
                        batch_delete.code, _listing(listing)))
    assert results[0] == results[1]


EXIT_CASES = [
    [], ["-q"], ["-q", "k"], ["-Z", "hash:x"], ["-q", "k", "-s", "hash:x"], ["-q", "k", "-d", "k", "hash:x"],
    ["-q", "k", "hash:nonexistent"], ["hash:nonexistent"], ["regexp:map"], ["nosuchtype:map"],
    ["-q", "k", "nosuchtype:map"], ["-q", "alpha", "static:"], ["-q", "k", "inline:{ a }"],
    ["-q", "k", "inline:{a=b"], ["-q", "k", "static:{x"], ["-q", "k", "fail:x"], ["-d", "k", "hash:nonexistent"],
    ["-q", "alpha", "texthash:map"], ["-q", "nope", "texthash:map"],
]


def test_exit_codes_match_postfix(tmp_path):
    real_side, roost_side = _both(tmp_path)
    for tool in ("postmap", "postalias"):
        # The real tools sleep a second after a fatal error: ask them all at once.
        with ThreadPoolExecutor(len(EXIT_CASES)) as pool:
            expected = list(pool.map(
                lambda args: real(tool, real_side, *[a.replace("map", real_side.path("map")) for a in args])[0],
                EXIT_CASES))
        for args, want in zip(EXIT_CASES, expected):
            got, err = ours(tool, roost_side, *[a.replace("map", roost_side.path("map")) for a in args])
            assert got == want, (tool, args)
            if got.code and not (args and args[-1].startswith("texthash")):
                assert err.startswith(f"{tool}: "), err


def test_missing_or_stale_compiled_file_names_file_and_command(tmp_path):
    _real_side, roost_side = _both(tmp_path)
    ref = f"hash:{roost_side.path('map')}"
    answer, err = ours("postmap", roost_side, "-q", "alpha", ref)
    assert answer.code == 1
    assert f"{roost_side.path('map')}.roostdb: No such file or directory" in err
    assert f'run "roost postmap {ref}"' in err
    ours("postmap", roost_side, ref)
    future = time.time() + 5
    os.utime(roost_side.path("map"), (future, future))
    answer, err = ours("postmap", roost_side, "-q", "alpha", ref)
    assert answer.stdout == "one\n"
    assert "is older than source file" in err and f'run "roost postmap {ref}"' in err


def test_newaliases_builds_alias_database(tmp_path):
    content = b"mailer-daemon: postmaster\npostmaster: root\nList: a, b,\n  c\n"
    real_side, roost_side = make_sides(tmp_path)
    for side in (real_side, roost_side):
        (side.directory / "aliases").write_bytes(content)
        (side.directory / "main.cf").write_text(f"alias_database = hash:{side.path('aliases')}\n")
        past = time.time() - 10
        for name in ("aliases", "main.cf"):
            os.utime(side.directory / name, (past, past))
    real("postalias", real_side, f"hash:{real_side.path('aliases')}")
    from roost.cli import newaliases

    assert newaliases.main(["newaliases", "-c", str(roost_side.directory)]) == 0
    for key in ("MAILER-DAEMON", "list", "root", "@"):
        expected, _ = real("postalias", real_side, "-q", key, f"hash:{real_side.path('aliases')}")
        got, _ = ours("postalias", roost_side, "-q", key, f"hash:{roost_side.path('aliases')}")
        assert got == expected, key
    batch = b"list\nnone\npostmaster\n"
    expected, _ = real("postalias", real_side, "-q", "-", f"hash:{real_side.path('aliases')}", stdin=batch)
    got, _ = ours("postalias", roost_side, "-q", "-", f"hash:{roost_side.path('aliases')}", stdin=batch)
    assert got == expected


def test_multiple_tables_first_answer_wins(tmp_path):
    real_side, roost_side = _both(tmp_path)
    for side in (real_side, roost_side):
        (side.directory / "second").write_bytes(b"alpha from-second\nzeta z\n")
    for side, run in ((real_side, real), (roost_side, ours)):
        run("postmap", side, f"hash:{side.path('map')}", f"hash:{side.path('second')}")
    for key in ("alpha", "zeta", "none"):
        expected, _ = real("postmap", real_side, "-q", key, f"hash:{real_side.path('map')}",
                           f"hash:{real_side.path('second')}")
        got, _ = ours("postmap", roost_side, "-q", key, f"hash:{roost_side.path('map')}",
                      f"hash:{roost_side.path('second')}")
        assert got == expected
