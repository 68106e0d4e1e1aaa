#!/usr/bin/env python3
"""CPU cost of the queue manager + delivery per message (qmgr(8) + virtual(8) into a Maildir).

A roost instance is made with `roost init` (virtual mailbox user bench@example.test) in a
temporary directory; the queue manager service (roost.qmgr.make_service, exactly what the
master runs) starts in this process with an empty queue; a child process then writes COUNT
messages of SIZE bytes through cleanup (roost.cleanup.CleanupService, as smtpd does),
announcing each (roost.qmgr.trigger.notify_queued) unless --no-trigger, at --rate
messages/s (0 = as fast as it can); --prefill queues them all first and then asks for one
scan (the backlog case). The run ends when every message is `removed` from the queue;
printed: CPU ms per message of this process (user / system from getrusage: the qmgr and its
threads, not the filler), context switches per message, wall time; with --profile the
cProfile top functions (main thread and delivery threads, thread CPU time), with --strace
the system-call counts of this process (`strace -c -f -p PID` attached after start-up),
with --perf FILE the top symbols of `perf record -g -p PID` (kernel time included).
--lmtp delivers through the own-LMTP shortcut (roost.delivery.store) instead of virtual(8);
--uid UID makes the mailboxes another user's (virtual(8) then forks to write as that user).
The machine is shared: compare runs back to back (A/B), and look at user time and the
system-call counts more than at system time, which file-system load elsewhere inflates.

Usage:  .venv/bin/python bench/qmgr_profile.py [--count 1000] [--size 1024] [--rate 0]
                                              [--prefill | --no-trigger] [--profile] [--strace]
                                              [--perf FILE] [--lmtp] [--uid UID]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchdir import make_base  # noqa: E402  (the spool where smtp_bench.py keeps its own)
RCPT = "bench@example.test"


def thread_times() -> dict:
    """CPU seconds (user + system) of each thread of this process, by thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found: dict = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), f"thread {tid}")
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return found


def make_instance(base: str, lmtp: bool = False, uid: int | None = None) -> str:
    directory = os.path.join(base, "roost")
    done = subprocess.run([sys.executable, "-m", "roost", "init", directory, "--port-base", "47000",
                           "--user", f"{RCPT}:secret"], capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise SystemExit(done.stderr)
    if uid is not None:   # mailboxes owned by another user: virtual(8) writes as that user
        with open(os.path.join(directory, "main.cf"), "a", encoding="utf-8") as main_cf:
            main_cf.write(f"virtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{uid}\n"
                          f"virtual_minimum_uid = {min(uid, 100)}\n")
        os.chown(os.path.join(directory, "mail"), uid, uid)
        for path in (base, directory):   # that user must reach its mailboxes
            os.chmod(path, 0o755)
    if lmtp:   # a Postfix + Dovecot configuration: roost's own LMTP, delivered straight to the store
        with open(os.path.join(directory, "main.cf"), "a", encoding="utf-8") as main_cf:
            main_cf.write("virtual_transport = lmtp:unix:private/dovecot-lmtp\n")
    return directory


def message_bytes(size: int, number: int) -> bytes:
    head = (f"From: <from@client.example>\r\nTo: <{RCPT}>\r\nSubject: test {number}\r\n"
            f"Message-Id: <{number}.{os.getpid()}@client.example>\r\n\r\n").encode()
    line = b"La de da de da 1.\r\n"
    body = (line * (size // len(line) + 1))[:max(0, size - len(head) - 2)]
    return head + body + b"\r\n"


def fill(config_dir: str, count: int, size: int, rate: float, trigger: bool) -> None:
    """The child: COUNT messages through cleanup, as smtpd hands them over."""
    from roost.cleanup import ClientInfo, CleanupService
    from roost.config.load import load_config
    from roost.log import LogSetup, LogSink

    config = load_config(config_dir)
    settings = config.main
    if not trigger:   # cleanup announces every file it queues (roost.cleanup.service): not now
        import roost.cleanup.service as cleanup_service
        cleanup_service.notify_queued = lambda *_args: False
    log = LogSetup(LogSink(path=os.path.join(config_dir, "fill.log"))).postfix("cleanup")
    service = CleanupService(settings, log)
    client = ClientInfo("localhost", "127.0.0.1", 40000, "client.example", "ESMTP", None, None, None)
    sys.stdin.readline()  # the parent says when (after strace attached, which must not follow us)
    started = time.perf_counter()
    for number in range(count):
        if rate:
            delay = started + number / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        message = service.open(origin="smtpd", client=client, sender="from@client.example",
                               envelope={})
        message.add_recipient(RCPT)
        message.write(message_bytes(size, number))
        message.finish()   # cleanup announces the file (trigger `I:ID`) unless --no-trigger


class CountingLog:
    """The qmgr's logger, counting `removed` lines."""

    def __init__(self, inner, on_removed):
        self.inner = inner
        self.on_removed = on_removed

    def info(self, text: str) -> None:
        self.inner.info(text)
        if text.endswith(": removed"):
            self.on_removed()

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def run_qmgr(config_dir: str, args) -> dict:
    from roost.config.load import load_config
    from roost.log import LogSetup, LogSink
    from roost.net.server import ServiceContext
    import roost.qmgr

    config = load_config(config_dir)
    log_setup = LogSetup(LogSink(path=os.path.join(config_dir, "qmgr.log")))
    removed = 0
    all_removed = asyncio.Event()

    def on_removed():
        nonlocal removed
        removed += 1
        if removed >= args.count:
            all_removed.set()

    log = CountingLog(log_setup.postfix("qmgr"), on_removed)
    profiler = cProfile.Profile(time.process_time) if args.profile else None
    thread_profilers: list = []
    if profiler:  # the delivery threads (asyncio.to_thread) are profiled too, each on its own
        def start_in_thread(*_args):
            own = cProfile.Profile(time.thread_time)
            thread_profilers.append(own)
            own.enable()
        threading.setprofile(start_in_thread)
    if args.prefill:   # no timed scan may take files before the measured one
        import roost.qmgr.manager
        roost.qmgr.manager.INCOMING_SCAN_INTERVAL = 3600.0
    context = ServiceContext("qmgr", "qmgr", (), config, log, log_setup)
    handle = roost.qmgr.make_service(context)
    stopping = asyncio.Event()
    background = asyncio.ensure_future(handle.background(stopping))
    await asyncio.sleep(0.5)  # start-up (recovery, trigger socket) is not measured
    filler = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--fill", config_dir,
                               "--count", str(args.count), "--size", str(args.size),
                               "--rate", str(args.rate)] + (["--no-trigger"] if args.no_trigger or args.prefill else []),
                              stdin=subprocess.PIPE)
    await asyncio.sleep(0.5)
    strace = None
    if args.strace:
        strace = subprocess.Popen(["strace", "-c", "-f", "-p", str(os.getpid())],
                                  stderr=subprocess.PIPE, text=True)
        await asyncio.sleep(0.5)
    perf = None
    if args.perf:
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "1999", "-g", "-o", args.perf,
                                 "-p", str(os.getpid())], stderr=subprocess.DEVNULL)
        await asyncio.sleep(0.5)
    threads_before = thread_times()
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter()
    filler.stdin.write(b"go\n")
    filler.stdin.close()
    if args.prefill:   # the whole queue first, then one `I` request: the manager's batch case
        while filler.poll() is None:
            await asyncio.sleep(0.05)
        from roost.qmgr.trigger import send_request
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.perf_counter()
        send_request(config.main.get("queue_directory"), "I")
    if profiler:
        profiler.enable()
    try:
        await asyncio.wait_for(all_removed.wait(), timeout=120)
    finally:
        if profiler:
            profiler.disable()
        after = resource.getrusage(resource.RUSAGE_SELF)
        threads_after = thread_times()
        wall = time.perf_counter() - wall
        filler.wait()
        stopping.set()
        await background
    report = {"user_ms": (after.ru_utime - before.ru_utime) * 1000 / args.count,
              "sys_ms": (after.ru_stime - before.ru_stime) * 1000 / args.count,
              "wall_s": wall,
              "threads": {name: (spent - threads_before.get(name, 0.0)) * 1000 / args.count
                          for name, spent in threads_after.items()},
              "switches": (after.ru_nvcsw - before.ru_nvcsw + after.ru_nivcsw - before.ru_nivcsw) / args.count}
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
        done = subprocess.run(["perf", "report", "-i", args.perf, "--no-children", "--stdio",
                               "--sort", "dso,sym", "-g", "none"], capture_output=True, text=True)
        report["perf"] = "\n".join(line for line in done.stdout.splitlines()
                                   if line.strip() and not line.startswith("#"))[:6000]
    if strace:
        strace.send_signal(signal.SIGINT)
        report["strace"] = strace.communicate(timeout=30)[1]
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        for own in thread_profilers:
            try:
                stats.add(own)
            except (TypeError, ValueError):
                pass
        stats.sort_stats("cumulative").print_stats(args.top)
        report["profile"] = out.getvalue()
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats("tottime").print_stats(args.top)
        report["profile_tottime"] = out.getvalue()
    delivered = len(os.listdir(os.path.join(config_dir, "mail", "example.test", "bench", "Maildir", "new")))
    report["delivered"] = delivered
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--strace", action="store_true")
    parser.add_argument("--perf", metavar="FILE", help="perf record -g into FILE; print the top symbols")
    parser.add_argument("--no-trigger", action="store_true")
    parser.add_argument("--uid", type=int, help="virtual_uid_maps = static:UID (root: one fork per delivery)")
    parser.add_argument("--lmtp", action="store_true",
                        help="virtual_transport = lmtp:unix:private/dovecot-lmtp (the own-LMTP shortcut)")
    parser.add_argument("--prefill", action="store_true",
                        help="queue all messages first (not announced), then request one scan")
    parser.add_argument("--fill", metavar="CONFIG_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill:
        fill(args.fill, args.count, args.size, args.rate, not args.no_trigger)
        return 0
    base = make_base("roost-qmgr-profile-")
    try:
        config_dir = make_instance(base, args.lmtp, args.uid)
        report = asyncio.run(run_qmgr(config_dir, args))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for key in ("strace", "perf", "profile", "profile_tottime"):
        if key in report:
            print(report.pop(key))
    load = os.getloadavg()[0]
    print(f"count={args.count} size={args.size} rate={args.rate or 'max'} "
          f"delivered={report['delivered']} cpu/msg: user {report['user_ms']:.3f} ms + sys "
          f"{report['sys_ms']:.3f} ms = {report['user_ms'] + report['sys_ms']:.3f} ms; "
          f"{report['switches']:.1f} context switches/msg; wall {report['wall_s']:.2f} s; load {load:.2f}")
    print("by thread (ms/msg): " + ", ".join(f"{name} {spent:.3f}" for name, spent
                                             in sorted(report["threads"].items()) if spent > 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
