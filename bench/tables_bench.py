"""Benchmark: a 1,000,000-entry `hash:` table — build time of `roost postmap` beside Postfix's
`postmap` on the same source, and median in-process lookup latency of roost's table.

Run: .venv/bin/python bench/tables_bench.py [--entries N] [--lookups N] [--no-write]
Writes (replaces) the "## Tables" section of bench/RESULTS.md with date and machine.
Not a test: it takes about a minute and needs Postfix's postmap installed for the comparison.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from roost.tables import open_table  # noqa: E402
from results import replace_section  # noqa: E402 (bench/results.py)


def write_source(path: Path, entries: int) -> list[str]:
    keys = []
    with open(path, "w") as out:
        for i in range(entries):
            key = f"user{i}@example{i % 1000}.com" if i % 2 else f"host{i}.example{i % 977}.net"
            keys.append(key)
            out.write(f"{key}\tOK entry {i}\n")
    past = time.time() - 60
    os.utime(path, (past, past))
    return keys


def prepare_config(directory: Path) -> None:
    (directory / "main.cf").write_text("")
    past = time.time() - 60
    os.utime(directory / "main.cf", (past, past))  # Postfix waits when main.cf is brand new


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tables-bench-"))
    try:
        roost_dir, postfix_dir = work / "roost", work / "postfix"
        roost_dir.mkdir()
        postfix_dir.mkdir()
        keys = write_source(roost_dir / "big", args.entries)
        shutil.copy2(roost_dir / "big", postfix_dir / "big")
        for directory in (roost_dir, postfix_dir):
            prepare_config(directory)
        roost_build = timed([sys.executable, "-m", "roost", "postmap", "-c", str(roost_dir), f"hash:{roost_dir / 'big'}"])
        postmap = shutil.which("postmap") or "/usr/sbin/postmap"
        postfix_build = None
        if os.access(postmap, os.X_OK):
            postfix_build = timed([postmap, "-c", str(postfix_dir), f"hash:{postfix_dir / 'big'}"])
        table = open_table(f"hash:{roost_dir / 'big'}", cache=False)
        rng = random.Random(1)
        probes = [rng.choice(keys) if i % 4 else f"missing{i}.example.org" for i in range(args.lookups)]
        for key in probes[:1000]:
            table.lookup(key)
        samples = []
        clock = time.perf_counter_ns
        for key in probes:
            start = clock()
            table.lookup(key)
            samples.append(clock() - start)
        samples.sort()
        median_us = statistics.median(samples) / 1000
        p99_us = samples[int(len(samples) * 0.99)] / 1000
        compiled_mb = os.path.getsize(roost_dir / "big.roostdb") / 1e6
        postfix_mb = os.path.getsize(postfix_dir / "big.db") / 1e6 if postfix_build else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ratio = f" ({roost_build / postfix_build:.1f}x Postfix)" if postfix_build else ""
    section = [
        "## Tables",
        "",
        f"Measured {when} on {machine()} by `bench/tables_bench.py` "
        f"({args.entries:,} entries, {args.lookups:,} lookups, 3 of 4 hits).",
        "",
        "| measure | roost | Postfix 3.7 |",
        "|---|---|---|",
        f"| `postmap hash:FILE` build, {args.entries:,} entries (wall, whole command) | {roost_build:.2f} s{ratio} | "
        + (f"{postfix_build:.2f} s |" if postfix_build else "not installed |"),
        f"| compiled file size | {compiled_mb:.0f} MB (FILE.roostdb, SQLite) | "
        + (f"{postfix_mb:.0f} MB (FILE.db, Berkeley DB hash) |" if postfix_mb else "- |"),
        f"| in-process lookup latency, median | {median_us:.1f} µs (target < 50 µs) | - |",
        f"| in-process lookup latency, 99th percentile | {p99_us:.1f} µs | - |",
        "",
    ]
    text = "\n".join(section)
    print(text)
    if not args.no_write:
        replace_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
