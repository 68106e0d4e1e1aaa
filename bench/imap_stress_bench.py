"""CPU per IMAP command under imaptest's stress mix: roost's IMAP service in this process.

The same handler a worker runs (roost.master.services -> roost.net.imap), on the
configuration bench/imaptest_compare.py builds (the reference Dovecot's dovecot.conf with
roost's paths: 100 users, {PLAIN} passwd-file, Maildir), on a loopback port, while imaptest
runs its default command mix with state checking for SECS seconds. Reports the commands per
second, the process's CPU per command (all threads) and, with --profile, a cProfile of the
event-loop thread (with --inline the store calls asyncio.to_thread would hand to a thread run
on the loop thread instead, so the profile sees them; the CPU figure then lacks the thread
hand-offs). One worker, as on a 1-core machine: compare CPU per command, not rates. Not part
of the test suite; needs root and /opt/imaptest.

    .venv/bin/python bench/imap_stress_bench.py [--secs 10] [--clients 10] [--profile [--inline]]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "bench"))

import imaptest_compare  # noqa: E402
import inprocess  # noqa: E402


def prepare(users: int) -> None:
    """imaptest_compare's roost configuration, without starting roost's master."""
    start_master = imaptest_compare.roost
    imaptest_compare.roost = lambda *args: type("Done", (), {"returncode": 0})()
    imaptest_compare.wait_port = lambda port, timeout=30: None
    try:
        imaptest_compare.start_roost(users)
    finally:
        imaptest_compare.roost = start_master


async def serve_and_stress(args) -> None:
    from roost.config.load import load_config
    from roost.master.plan import plan_services

    config = load_config(os.path.join(imaptest_compare.WORK, "etc"))
    spec = next(s for s in plan_services(config) if s.handler == "imap")
    server, port = await inprocess.serve(config, spec, backlog=1024)

    async def stress(secs: int, label: str) -> tuple[dict[str, float], int]:
        outdir = os.path.join(imaptest_compare.WORK, f"profile-{label}")
        env = dict(os.environ, OUTDIR=outdir, CLIENTS=str(args.clients), USERS=str(args.users))
        proc = await asyncio.create_subprocess_exec(
            "bash", os.path.join(imaptest_compare.SHARED, "run_stress.sh"), "127.0.0.1",
            str(port), "testuser%d", "secret", str(secs), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()
        summary = open(os.path.join(outdir, "summary.md")).read()
        rates = {m.group(1): float(m.group(2))
                 for m in re.finditer(r"^\| (\w+) \| \d+ \| ([\d.]+) \|", summary, re.M)}
        errors = int(re.search(r"Error/Panic/Fatal lines: (\d+)", summary).group(1))
        return rates, errors

    await stress(3, "warmup")
    from roost.store.maildir import dotlock
    locks = [0]
    acquire = dotlock.DotLock.acquire

    def counting_acquire(self):
        locks[0] += 1  # each one creates (and later removes) a lock file: an inode
        return acquire(self)
    dotlock.DotLock.acquire = counting_acquire
    profiler = cProfile.Profile(time.thread_time) if args.profile else None
    import resource
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, times0 = time.process_time(), os.times()
    if profiler:
        profiler.enable()
    rates, errors = await stress(args.secs, "measured")
    if profiler:
        profiler.disable()
    cpu, times1 = time.process_time() - cpu0, os.times()
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    switches = (usage1.ru_nvcsw - usage0.ru_nvcsw) + (usage1.ru_nivcsw - usage0.ru_nivcsw)
    commands = sum(rates.values()) * args.secs
    print(", ".join(f"{name} {rate:.0f}" for name, rate in rates.items()) + f"; errors {errors}")
    print(f"CPU {cpu:.2f} s (user {times1.user - times0.user:.2f}, system "
          f"{times1.system - times0.system:.2f}) for {commands:.0f} commands: "
          f"{1000 * cpu / commands:.3f} ms/command (user "
          f"{1000 * (times1.user - times0.user) / commands:.3f}); "
          f"{switches / commands:.1f} context switches/command; "
          f"{locks[0] / commands:.2f} dotlocks/command")
    if profiler:
        stats = pstats.Stats(profiler).sort_stats(args.sort)
        stats.print_stats(args.lines)
        if args.callers:
            stats.print_callers(args.callers)
        if args.dump:
            stats.dump_stats(args.dump)
    server.stop_accepting()


def experiment(name: str) -> None:
    """Scratch variants of how roost.net.imap hands store work to threads."""
    import concurrent.futures
    import functools
    import roost.net.imap as net_imap

    one = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    writes = {"APPEND", "STORE", "EXPUNGE", "COPY", "MOVE", "CLOSE", "CREATE", "DELETE",
              "RENAME", "SUBSCRIBE", "UNSUBSCRIBE"}

    class Patched:
        def __getattr__(self, attr):
            return getattr(asyncio, attr)

        @staticmethod
        async def to_thread(func, *a, **k):
            if name == "one":
                return await asyncio.get_running_loop().run_in_executor(
                    one, functools.partial(func, *a, **k))
            if name == "mixed":
                command = a[0] if a else None
                if getattr(command, "name", "") not in writes:
                    return func(*a, **k)
                return await asyncio.get_running_loop().run_in_executor(
                    one, functools.partial(func, *a, **k))
            raise SystemExit(f"unknown experiment {name}")

    net_imap.asyncio = Patched()


def main() -> int:
    from roost.net import eventloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secs", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--inline", action="store_true",
                        help="run asyncio.to_thread work on the loop thread (for the profile)")
    parser.add_argument("--experiment", help="one | mixed (see experiment())")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=45)
    parser.add_argument("--callers", help="also print the callers of functions matching this")
    parser.add_argument("--dump", help="write the profile here (pstats format)")
    args = parser.parse_args()
    if args.inline:
        inprocess.run_threads_inline()
    if args.experiment:
        experiment(args.experiment)
    prepare(args.users)
    eventloop.run(serve_and_stress(args), "imap")  # the loop a worker runs (ROOST_EVENT_LOOP=asyncio: asyncio's)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
