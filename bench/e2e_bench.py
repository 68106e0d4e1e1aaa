#!/usr/bin/env python3
"""End-to-end benchmark: SMTP in until the message is in the recipient's Maildir, roost side
by side with Debian Postfix + Dovecot (Postfix → LMTP → Dovecot, the reference stack of
../shared/bench/refstack) in the same run; plus the durability run of issue 7.

Both stacks run on this machine on loopback high ports from private directories under a
temporary base: roost from `roost init` (virtual mailbox user bench@example.test), the
reference stack from refstack/start.sh (user bench@example.test, Maildir via Dovecot LMTP).
For each size (1/10/100 KB) and concurrency (10/50), Postfix's `smtp-source` sends COUNT
messages over CONC parallel sessions to one stack, and the run ends when COUNT files are in
the recipient's Maildir/new; rate = COUNT / that time (the accept rate, until smtp-source is
done, is given too). Rounds alternate the order of the two stacks; the table gives medians
and the roost / Postfix+Dovecot ratio of the end-to-end rates. Both acknowledge only after
fsync (Postfix's queue file; roost's queue file and directory, DESIGN.md §3).

`--durability N` (default 2000) also runs tests/e2e/durability.py at concurrency 20: SIGKILL
of every roost process in the middle, restart, every message that got 250 must be delivered.

Results go into bench/RESULTS.md, section "## End to end" (only that section is replaced).
Usage (root: the reference Postfix needs it; not run by the test suite):

    sudo .venv/bin/python bench/e2e_bench.py [--rounds 3] [--sizes 1024 10240 102400]
                                             [--concs 10 50] [--scale 1.0]
                                             [--durability 2000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from results import replace_section  # noqa: E402 (bench/results.py)
REFSTACK = os.path.join(os.path.dirname(REPO), "shared", "bench", "refstack")
COUNTS = {1024: 1000, 10240: 800, 102400: 300}
RCPT = "bench@example.test"
SECTION = "## End to end"


def count_new(maildir: str) -> int:
    try:
        return len(os.listdir(os.path.join(maildir, "new")))
    except FileNotFoundError:
        return 0


def clear_maildir(maildir: str) -> None:
    for sub in ("new", "cur", "tmp"):
        directory = os.path.join(maildir, sub)
        if os.path.isdir(directory):
            for entry in os.scandir(directory):
                os.unlink(entry.path)


def run_once(port: int, maildir: str, size: int, conc: int, count: int) -> dict:
    clear_maildir(maildir)
    started = time.perf_counter()
    done = subprocess.run(["smtp-source", "-s", str(conc), "-m", str(count), "-l", str(size),
                           "-f", "from@client.example", "-t", RCPT, "-M", "client.example",
                           f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=600)
    accepted = time.perf_counter()
    deadline = started + 300
    while count_new(maildir) < count and time.perf_counter() < deadline:
        time.sleep(0.01)
    finished = time.perf_counter()
    delivered = count_new(maildir)
    return {"accept_rate": count / (accepted - started),
            "e2e_rate": count / (finished - started) if delivered >= count else None,
            "error": done.stderr.strip()[-200:] if done.returncode else
            (None if delivered >= count else f"only {delivered}/{count} delivered")}


def start_refstack(state: str, base: int) -> int:
    """Start the reference stack on base + the standard ports; returns its SMTP port."""
    env = dict(os.environ, SMTP_PORT=str(base + 25), SUBMISSION_PORT=str(base + 587),
               IMAP_PORT=str(base + 143), IMAPS_PORT=str(base + 993), POP3_PORT=str(base + 110),
               LMTP_PORT=str(base + 24))
    done = subprocess.run([os.path.join(REFSTACK, "start.sh"), state], env=env,
                          capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise SystemExit(f"refstack start failed: {done.stdout}{done.stderr}")
    return base + 25


def stop_refstack(state: str) -> None:
    subprocess.run([os.path.join(REFSTACK, "stop.sh"), state], capture_output=True, timeout=120)


def measure(args) -> tuple[list[str], dict]:
    from tests.conftest import free_port_base
    from tests.e2e.server import Server

    base_dir = tempfile.mkdtemp(prefix="roost-e2e-bench-", dir="/tmp")
    os.chmod(base_dir, 0o755)
    state = os.path.join(base_dir, "refstack")
    roost = Server(users=(f"{RCPT}:secret",))
    results: dict = {}
    try:
        roost.init()
        roost.append("main.cf", "smtpd_peername_lookup = no\n")
        roost.start()
        ref_port = start_refstack(state, free_port_base())
        targets = {"roost": (roost.smtp, roost.path("mail/example.test/bench/Maildir")),
                   "postfix+dovecot": (ref_port, os.path.join(state, "mail", "bench", "Maildir"))}
        for name, (port, maildir) in targets.items():   # warm-up, not recorded
            run_once(port, maildir, 1024, 50, 200)
        for rnd in range(args.rounds):
            order = list(targets) if rnd % 2 == 0 else list(reversed(list(targets)))
            for size in args.sizes:
                for conc in args.concs:
                    count = max(50, int(COUNTS.get(size, 300) * args.scale))
                    for name in order:
                        port, maildir = targets[name]
                        row = run_once(port, maildir, size, conc, count)
                        results.setdefault((size, conc, name), []).append(row)
                        print(name, size, conc, {k: (round(v, 1) if isinstance(v, float) else v)
                                                  for k, v in row.items()}, flush=True)
    finally:   # roost is stopped even when the reference stack could not start or stop
        try:
            stop_refstack(state)
        finally:
            roost.cleanup()
            shutil.rmtree(base_dir, ignore_errors=True)
    lines = ["| size | conc | roost e2e msg/s | Postfix+Dovecot e2e msg/s | ratio (goal) "
             "| roost accept msg/s | Postfix accept msg/s |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for size in args.sizes:
        for conc in args.concs:
            def med(name, field):
                values = [r[field] for r in results.get((size, conc, name), []) if r[field]]
                return statistics.median(values) if values else None
            ratios = [a["e2e_rate"] / b["e2e_rate"] for a, b in zip(
                results.get((size, conc, "roost"), []), results.get((size, conc, "postfix+dovecot"), []))
                if a["e2e_rate"] and b["e2e_rate"]]
            goal = "≥ 1×" if size >= 102400 else "≥ 2×"
            ratio = f"{statistics.median(ratios):.2f}× ({goal})" if ratios else "n/a"
            cells = [med("roost", "e2e_rate"), med("postfix+dovecot", "e2e_rate")]
            accepts = [med("roost", "accept_rate"), med("postfix+dovecot", "accept_rate")]
            fmt = lambda v: "n/a" if v is None else f"{v:.0f}"
            lines.append(f"| {size // 1024} KB | {conc} | {fmt(cells[0])} | {fmt(cells[1])} | {ratio} | "
                         f"{fmt(accepts[0])} | {fmt(accepts[1])} |")
    return lines, results


def durability(count: int) -> list[str]:
    from tests.e2e import durability as run

    server = run.durability_server()
    try:
        server.start()
        report = run.run(server, count, concurrency=20)
    finally:
        server.cleanup()
    return [f"Durability (tests/e2e/durability.py, {count} messages at concurrency 20, SIGKILL of "
            f"every roost process ({report.killed_pids} processes) after {report.killed_after} "
            f"acknowledgements, restart): {len(report.acked)} messages got 250, "
            f"{len(report.acked) - len(report.lost)} of them delivered, **{len(report.lost)} lost**, "
            f"{report.duplicates} duplicates, {sum(report.delivered.values())} files in the Maildir "
            f"(messages cut off before their 250 may be delivered too), {report.seconds:.1f} s."]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 10240, 102400])
    parser.add_argument("--concs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--durability", type=int, default=2000, help="0 to skip")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    lines, _results = measure(args)
    load_after = os.getloadavg()[0]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    head = (f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.node()}: "
            f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, by "
            f"`bench/e2e_bench.py --rounds {args.rounds} --scale {args.scale}` (medians; "
            "smtp-source, one connection per message, until COUNT files are in the recipient's "
            "Maildir/new; roost: virtual(8) into the Maildir; reference: Postfix 3.7 → LMTP → "
            "Dovecot 2.3, ../shared/bench/refstack). The machine is shared: compare ratios "
            f"(load average {load_before:.1f} before, {load_after:.1f} after).")
    text = head + "\n\n" + "\n".join(lines)
    if args.durability:
        text += "\n\n" + "\n".join(durability(args.durability))
    print(text)
    if not args.no_write:
        replace_section(f"{SECTION}\n\n{text.strip()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
