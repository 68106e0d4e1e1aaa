"""Durability (DESIGN.md §3, Postfix's contract): SIGKILL every roost process while mail
pours in at concurrency 20, restart, and every message that got `250` is in the Maildir.
The suite runs ROOST_DURABILITY_COUNT messages (default 1,000, ~8 s); `bench/e2e_bench.py
--durability` runs the issue's 2,000."""

from __future__ import annotations

import os

from tests.e2e import durability


def test_sigkill_in_the_middle_loses_no_acknowledged_message():
    count = int(os.environ.get("ROOST_DURABILITY_COUNT", "1000"))
    server = durability.durability_server()
    try:
        server.start()
        report = durability.run(server, count, concurrency=20)
        assert report.killed_pids >= 3        # master, smtpd workers, qmgr...
        assert 0 < report.killed_after < count
        assert len(report.acked) >= count // 2
        assert not report.lost, (f"{len(report.lost)} acknowledged messages lost of "
                                 f"{len(report.acked)}: {sorted(report.lost)[:5]}")
        # duplicates are allowed ("at worst delivered twice"), but only a few (in flight at
        # the kill: at most one per delivery slot), and reported
        print(f"durability: {len(report.acked)} acknowledged, {sum(report.delivered.values())} "
              f"files, {report.duplicates} duplicates, {report.seconds:.1f} s")
        assert report.duplicates <= 50
    finally:
        server.cleanup()
