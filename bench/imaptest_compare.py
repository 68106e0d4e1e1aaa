"""imaptest side by side: roost's IMAP server and Debian's Dovecot 2.3, same machine, same run.

Needs imaptest built by ../shared/bench/imaptest/build.sh (/opt/imaptest) and root (the
reference Dovecot of ../shared/bench/imaptest/dovecot_ref runs as a private instance). Both
servers get the same users (testuser1..testuserN, {PLAIN} "secret", as the reference
config has it), the same kind of Maildir store and plaintext LOGIN; roost reads the
reference's own dovecot.conf template, with its paths and port moved.

Runs: the compliance scripts (run_compliance.sh) against each, then stress runs with state
checking (run_stress.sh, default command mix) at each client count, alternating servers
(--rounds N: N runs each, the order alternating between rounds, medians per command);
prints a Markdown section and, with --write, replaces the "## IMAP (imaptest)" section of
bench/RESULTS.md. Each stress run also reports the server's CPU per command (user+system of
all its processes from /proc, finished children included: the machine is shared, so CPU per
command is steadier than rates). --skip-compliance and --only are for iterating. Not part of
the test suite.

    sudo .venv/bin/python bench/imaptest_compare.py --secs 30 --clients 10,50 --write
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from results import replace_section  # noqa: E402 (bench/results.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "bench", "imaptest")
WORK = "/tmp/roost-imaptest"
REF_DIR = "/tmp/imaptest-dovecot"
DOVECOT_PORT = 3143
ROOST_PORT = 3243
COMMANDS = ("Logi", "List", "Stat", "Sele", "Fetc", "Fet2", "Stor", "Dele", "Expu", "Appe", "Logo")


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, text=True, capture_output=True, **kwargs)


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing answers on port {port}")


def start_dovecot(users: int) -> None:
    env = dict(os.environ, FRESH="1", NUSERS=str(users), IMAP_PORT=str(DOVECOT_PORT))
    done = run(["sh", os.path.join(SHARED, "dovecot_ref", "start.sh")], env=env)
    if done.returncode != 0:
        raise SystemExit(done.stdout + done.stderr)


def stop_dovecot() -> None:
    run(["sh", os.path.join(SHARED, "dovecot_ref", "stop.sh")])


def roost(*args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "roost", "-c", os.path.join(WORK, "etc"), *args],
               cwd=ROOT, timeout=120)


def start_roost(users: int) -> None:
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    init = run([sys.executable, "-m", "roost", "init", os.path.join(WORK, "etc"), "--port-base",
                "22000", "--user", "nobody@example.test:unused"], cwd=ROOT, timeout=120)
    if init.returncode != 0:
        raise SystemExit(init.stderr)
    rundir = os.path.join(WORK, "run")
    os.makedirs(os.path.join(rundir, "home"))
    with open(os.path.join(rundir, "passwd"), "w") as passwd:
        for number in range(1, users + 1):
            passwd.write(f"testuser{number}:{{PLAIN}}secret::::::\n")
    nobody = pwd.getpwnam("nobody")  # the reference's mail user
    os.chown(os.path.join(rundir, "home"), nobody.pw_uid, nobody.pw_gid)
    template = open(os.path.join(SHARED, "dovecot_ref", "dovecot.conf.in")).read()
    conf = (template.replace("@RUNDIR@", rundir).replace("@IMAP_PORT@", str(ROOST_PORT))
            .replace("@POP3_PORT@", "0").replace("@MAIL_UID@", str(nobody.pw_uid))
            .replace("@MAIL_GID@", str(nobody.pw_gid)))
    conf = conf.replace(f"base_dir = {rundir}/run", f"base_dir = {WORK}/etc/run/dovecot")
    with open(os.path.join(WORK, "etc", "dovecot.conf"), "w") as out:
        out.write(conf)
    started = roost("start")
    if started.returncode != 0:
        raise SystemExit(started.stderr)
    wait_port(ROOST_PORT)


def stop_roost() -> None:
    roost("stop")


def compliance(port: int, label: str) -> tuple[str, dict[str, str]]:
    outdir = os.path.join(WORK, f"compliance-{label}")
    env = dict(os.environ, OUTDIR=outdir)
    done = run(["bash", os.path.join(SHARED, "run_compliance.sh"), "127.0.0.1", str(port),
                "testuser1", "secret"], env=env, timeout=900)
    text = done.stdout
    totals = " ".join(line.strip() for line in text.splitlines()
                      if line.startswith(("base protocol", "extensions")))
    per_file = {}
    summary_path = os.path.join(outdir, "summary.md")
    summary = open(summary_path).read() if os.path.exists(summary_path) else ""
    for match in re.finditer(r"^\| (\S+) \| (PASS|FAIL|SKIP|ERROR) \|", summary, re.M):
        per_file[match.group(1)] = match.group(2)
    return totals, per_file


def server_pids(label: str) -> list[int]:
    """Every process of one server: roost's master and workers (their command line names
    WORK), or the reference Dovecot's (its binaries run from /usr/lib/dovecot or sbin)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if label == "roost" and "roost" in cmdline and WORK in cmdline:
            pids.append(int(entry))
        elif label == "dovecot" and ("dovecot" in cmdline or "imap" in cmdline.split(" ")[0]):
            try:
                exe = os.readlink(f"/proc/{entry}/exe")
            except OSError:
                continue
            if "dovecot" in exe or exe.startswith("/usr/lib/dovecot"):
                pids.append(int(entry))
    return pids


def cpu_seconds(label: str) -> float:
    """user+system CPU of the server's processes, their finished children included."""
    total = 0
    for pid in server_pids(label):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


def stress(port: int, label: str, clients: int, secs: int, users: int) -> tuple[dict, int]:
    outdir = os.path.join(WORK, f"stress-{label}-{clients}")
    env = dict(os.environ, OUTDIR=outdir, CLIENTS=str(clients), USERS=str(users))
    server = "roost" if port == ROOST_PORT else "dovecot"
    cpu_before = cpu_seconds(server)
    run(["bash", os.path.join(SHARED, "run_stress.sh"), "127.0.0.1", str(port), "testuser%d",
         "secret", str(secs)], env=env, timeout=secs + 200)
    cpu = cpu_seconds(server) - cpu_before
    summary = open(os.path.join(outdir, "summary.md")).read()
    rates = {m.group(1): float(m.group(2))
             for m in re.finditer(r"^\| (\w+) \| \d+ \| ([\d.]+) \|", summary, re.M)}
    errors = int(re.search(r"Error/Panic/Fatal lines: (\d+)", summary).group(1))
    commands = sum(rates.values()) * secs
    rates["cpu ms/cmd"] = 1000 * cpu / commands if commands else 0.0
    print(f"{label} {clients} clients: " + ", ".join(f"{k} {v:.0f}" for k, v in rates.items()
                                                     if k in COMMANDS)
          + f"; CPU {cpu:.1f} s = {rates['cpu ms/cmd']:.2f} ms/command; errors {errors}",
          file=sys.stderr)
    return rates, errors


def medians(runs: list[tuple[dict, int]]) -> tuple[dict, int]:
    """Per command, the median rate of the rounds (and of CPU per command); errors summed."""
    if not runs:
        return {}, 0
    names = {name for rates, _errors in runs for name in rates}
    return ({name: statistics.median(rates.get(name, 0.0) for rates, _errors in runs) for name in names},
            sum(errors for _rates, errors in runs))


def markdown(args, results, comp) -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    lines = ["## IMAP (imaptest)", "",
             f"Measured {now} on {platform.node()}: {os.cpu_count()} cores ({cpu}), Python "
             f"{platform.python_version()}, by `bench/imaptest_compare.py` (imaptest 924f619, "
             f"users={args.users}, {args.secs} s per run, default command mix with state "
             "checking; both servers on plaintext LOGIN, {PLAIN} passwd-file, Maildir; "
             f"{args.rounds} round(s) per client count in alternating order, medians, errors "
             "summed over the rounds). The machine is shared: compare ratios within one run.", ""]
    lines += ["### Compliance", "", "| server | failed commands |", "|---|---|"]
    for label, (totals, _files) in comp.items():
        lines.append(f"| {label} | {totals} |")
    failed = sorted(name for name, state in comp["roost"][1].items() if state == "FAIL")
    lines += ["", f"roost per-file: {sum(1 for s in comp['roost'][1].values() if s == 'PASS')} "
                  f"PASS, {len(failed)} FAIL ({', '.join(failed) or 'none'}), "
                  f"{sum(1 for s in comp['roost'][1].values() if s == 'SKIP')} SKIP "
                  "(capability not advertised).", ""]
    lines += ["### Stress (commands per second, roost / Dovecot)", "",
              "| clients | " + " | ".join(COMMANDS) + " | errors (roost/Dovecot) | server CPU "
              "ms/command (roost/Dovecot) |",
              "|---|" + "---|" * len(COMMANDS) + "---|---|"]
    for clients in args.client_counts:
        ours, our_errors = results[("roost", clients)]
        theirs, their_errors = results[("dovecot", clients)]
        cells = []
        for name in COMMANDS:
            a, b = ours.get(name, 0.0), theirs.get(name, 0.0)
            ratio = f"{a / b:.2f}x" if b else "-"
            cells.append(f"{a:.0f} / {b:.0f} ({ratio})")
        cpu = f"{ours.get('cpu ms/cmd', 0.0):.2f} / {theirs.get('cpu ms/cmd', 0.0):.2f}"
        lines.append(f"| {clients} | " + " | ".join(cells)
                     + f" | {our_errors} / {their_errors} | {cpu} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secs", type=int, default=30)
    parser.add_argument("--clients", default="10,50")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1,
                        help="stress runs per server and client count (order alternates; medians)")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--skip-compliance", action="store_true",
                        help="stress runs only (while iterating)")
    parser.add_argument("--only", choices=("roost", "dovecot"),
                        help="stress one server only (while iterating)")
    args = parser.parse_args()
    args.client_counts = [int(n) for n in args.clients.split(",")]
    if not os.path.exists("/opt/imaptest/bin/imaptest"):
        print("imaptest is not built: IMAPTEST_MIRROR=<git dir> ../shared/bench/imaptest/build.sh",
              file=sys.stderr)
        return 2
    start_dovecot(args.users)
    try:
        start_roost(args.users)
        try:
            skipped = ("not run", {})
            comp = {"roost": skipped, "Dovecot 2.3": skipped} if args.skip_compliance else {
                "roost": compliance(ROOST_PORT, "roost"),
                "Dovecot 2.3": compliance(DOVECOT_PORT, "dovecot")}
            runs: dict[tuple[str, int], list] = {}
            servers = (("roost", ROOST_PORT), ("dovecot", DOVECOT_PORT))
            for clients in args.client_counts:
                for round_number in range(args.rounds):
                    # the order alternates, so neither server always runs on a warmer machine
                    for label, port in servers if round_number % 2 == 0 else servers[::-1]:
                        if args.only in (None, label):
                            runs.setdefault((label, clients), []).append(
                                stress(port, label, clients, args.secs, args.users))
            results = {key: medians(runs.get(key, [])) for key in
                       ((label, clients) for clients in args.client_counts for label, _ in servers)}
        finally:
            stop_roost()
    finally:
        stop_dovecot()
    section = markdown(args, results, comp)
    print(section)
    if args.write:
        replace_section(section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
