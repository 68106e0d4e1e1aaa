#!/usr/bin/env python3
"""Profile roost's smtpd service in one process (no master, no qmgr): the same handler a
worker runs (roost.master.services -> roost.net.smtpd), on a loopback port, under cProfile
(event-loop thread) while `smtp-source` sends COUNT messages. Reports the process CPU per
message (all threads: the loop and the to_thread pool that runs cleanup) and the profile.

    .venv/bin/python bench/smtpd_profile.py [--count 2000] [--size 1024] [--conc 10] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchdir import BASE_DIR, make_base  # noqa: E402
import inprocess  # noqa: E402
sys.path.insert(0, REPO)


async def serve_and_send(args, base: str) -> None:
    from roost.config.load import load_config
    from roost.master.plan import plan_services
    from tests.conftest import free_port_base

    port_base = free_port_base()
    subprocess.run([sys.executable, "-m", "roost", "init", f"{base}/roost", "--port-base", str(port_base),
                    "--user", "bench@example.test:pw"], check=True, capture_output=True, cwd=REPO)
    with open(f"{base}/roost/main.cf", "a", encoding="utf-8") as main_cf:
        # as bench/smtp_bench.py configures the measured port (no auth server runs here)
        main_cf.write("smtpd_peername_lookup = no\nsmtpd_client_connection_count_limit = 0\n"
                      "smtpd_sasl_auth_enable = no\n")
        if args.ingest_only:  # as smtp_bench.py --ingest-only: every message lands in hold/
            main_cf.write("header_checks = static:HOLD\n")
    config = load_config(f"{base}/roost")
    spec = next(s for s in plan_services(config) if s.handler == "smtpd" and s.listeners[0].port == port_base + 25)
    server, port = await inprocess.serve(config, spec)

    async def source(conc: int, count: int) -> float:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "smtp-source", "-s", str(conc), "-m", str(count), "-l", str(args.size), "-f", "sender@client.test",
            "-t", "bench@example.test", "-M", "client.test", f"127.0.0.1:{port}")
        await proc.wait()
        return time.perf_counter() - started

    await source(5, 50)
    profiler = cProfile.Profile(time.thread_time) if args.profile else None  # CPU of the loop thread
    times0 = os.times()
    cpu0 = time.process_time()
    if profiler:
        profiler.enable()
    elapsed = await source(args.conc, args.count)
    if profiler:
        profiler.disable()
    cpu = time.process_time() - cpu0
    times1 = os.times()
    user, system = times1.user - times0.user, times1.system - times0.system
    print(f"size={args.size} conc={args.conc} count={args.count}: {args.count / elapsed:.0f} msg/s, "
          f"CPU {cpu / args.count * 1000:.3f} ms/msg (smtpd+cleanup, all threads; "
          f"user {user / args.count * 1000:.3f}, system {system / args.count * 1000:.3f}); "
          f"one file create here costs {create_cost(config) * 1000:.3f} ms system (see bench/benchdir.py)")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.lines)


def create_cost(config, count: int = 500) -> float:
    """System CPU seconds of one file creation in the queue's incoming directory now (ext4
    without a journal: what recently deleted inodes nearby cost every create, the server's
    and Postfix's alike). The probe files stay until the base directory goes."""
    incoming = os.path.join(config.main.get("queue_directory"), "incoming")
    before = os.times().system
    for index in range(count):
        path = os.path.join(incoming, f"probe.{index}")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (os.times().system - before) / count


def main() -> int:
    from roost.net import eventloop

    parser = argparse.ArgumentParser()
    parser.add_argument("--base-dir", default=BASE_DIR,
                        help="parent of the private spools (default %(default)s: see bench/benchdir.py)")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--conc", type=int, default=10)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--ingest-only", action="store_true",
                        help="header_checks = static:HOLD, as smtp_bench.py --ingest-only")
    parser.add_argument("--inline", action="store_true",
                        help="experiment: run asyncio.to_thread work on the loop thread (blocks it in fsync)")
    parser.add_argument("--switch", type=float, help="experiment: sys.setswitchinterval(SECONDS)")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=40)
    args = parser.parse_args()
    if args.inline:
        inprocess.run_threads_inline()
    if args.switch:
        sys.setswitchinterval(args.switch)
    base = make_base("roost-smtpd-prof-", args.base_dir)
    try:
        eventloop.run(serve_and_send(args, base), "smtpd")  # the loop a worker runs (ROOST_EVENT_LOOP=asyncio: asyncio's)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
