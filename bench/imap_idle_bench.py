"""Memory per idle IMAP connection: N authenticated sessions in IDLE, roost vs Dovecot 2.3.

Issue 8's goal: the server's memory growth per connection at most 16 KiB (PSS, summed over
/proc/PID/smaps_rollup of every process of the server, minus the idle baseline). roost is a
whole instance (`roost init` + `roost start`, its IMAP listener); Dovecot a private instance
on the same kind of config (passwd-file users, Maildir), each at its own count of clients
(Dovecot runs one imap process per connection, so --dovecot-clients defaults lower). Per
server: baseline PSS after one warm-up login, then N clients LOGIN, SELECT INBOX, IDLE and
stay; PSS again once all are idling; (loaded - baseline) / N. The file-descriptor limit is
raised to the hard limit first (inherited by both servers). With --write the "## IMAP: idle
connections" section of bench/RESULTS.md is replaced. Not part of the test suite.

    sudo .venv/bin/python bench/imap_idle_bench.py --clients 10000 --dovecot-clients 1000 --write
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.conftest import free_port_base, run_roost  # noqa: E402
from tests.interop.test_imap_dovecot_differential import CONF, MAIL_UID  # noqa: E402
from tests.net.pop3_harness import RealDovecot, make_certificate  # noqa: E402
from results import replace_section  # noqa: E402 (bench/results.py)

SECTION = "## IMAP: idle connections"
USER, PASSWORD = "alice@example.test", "Secret-pw1"
DOVECOT_EXTRA = """
default_client_limit = 25000
default_process_limit = 25000
mail_max_userip_connections = 25000
service imap-login {{
  service_count = 0
  process_min_avail = 2
  client_limit = 12000
}}
service imap {{
  process_limit = 25000
}}
"""


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def pss_kib(pids) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def processes_with(text: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                if text.encode() in handle.read():
                    pids.append(int(name))
        except OSError:
            continue
    return pids


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


async def idle_client(port: int, user: str, password: str, gate: asyncio.Semaphore,
                      holders: list) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        for line in (b"a LOGIN %s %s\r\n" % (user.encode(), password.encode()),
                     b"b SELECT INBOX\r\n"):
            writer.write(line)
            tag = line.split(b" ", 1)[0] + b" "
            while True:
                answer = await reader.readline()
                if not answer:
                    raise ConnectionError("closed")
                if answer.startswith(tag):
                    if not answer.startswith(tag + b"OK"):
                        raise RuntimeError(answer)
                    break
        writer.write(b"c IDLE\r\n")
        answer = await reader.readline()
        if not answer.startswith(b"+"):
            raise RuntimeError(answer)
        holders.append((reader, writer))


async def hold(port: int, user: str, password: str, count: int, measure) -> tuple[int, float]:
    holders: list = []
    gate = asyncio.Semaphore(100)
    started = time.perf_counter()
    results = await asyncio.gather(*(idle_client(port, user, password, gate, holders)
                                     for _ in range(count)), return_exceptions=True)
    took = time.perf_counter() - started
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        print(f"{len(errors)} clients failed, first: {errors[0]!r}", flush=True)
    await asyncio.sleep(3)  # let the server settle (threads return, buffers shrink)
    loaded = measure()
    for _reader, writer in holders:
        writer.close()
    return loaded, len(holders), took


def warm_up(port: int, user: str, password: str) -> None:
    async def one():
        holders: list = []
        await idle_client(port, user, password, asyncio.Semaphore(1), holders)
        for _reader, writer in holders:
            writer.write(b"DONE\r\nz LOGOUT\r\n")
            await writer.drain()
            writer.close()
    asyncio.run(one())
    time.sleep(1)


def measure_server(port: int, user: str, password: str, count: int, pids) -> dict:
    warm_up(port, user, password)
    baseline = pss_kib(pids())
    loaded, held, took = asyncio.run(hold(port, user, password, count, lambda: pss_kib(pids())))
    return {"baseline": baseline, "loaded": loaded, "held": held, "setup_s": took,
            "per_conn": (loaded - baseline) / max(held, 1)}


def run_roost_side(count: int) -> dict:
    base_dir = tempfile.mkdtemp(prefix="roost-idlebench-", dir="/tmp")
    os.chmod(base_dir, 0o755)
    directory = os.path.join(base_dir, "roost")
    base = free_port_base()
    done = run_roost("init", directory, "--port-base", str(base), "--user", f"{USER}:{PASSWORD}")
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    with open(os.path.join(directory, "dovecot.conf"), "a") as conf:
        conf.write("auth_failure_delay = 0\nmail_max_userip_connections = 25000\n")
    done = run_roost("-c", directory, "start")
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    try:
        time.sleep(3)
        return measure_server(base + 143, USER, PASSWORD, count,
                              lambda: processes_with(directory))
    finally:
        run_roost("-c", directory, "stop", timeout=60)
        time.sleep(2)
        for pid in processes_with(directory):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["rm", "-rf", base_dir])


def run_dovecot_side(count: int) -> dict:
    base_dir = tempfile.mkdtemp(prefix="roost-idlebench-dc-", dir="/tmp")
    os.chmod(base_dir, 0o755)
    from pathlib import Path
    directory = Path(base_dir)
    for name in ("run", "state", "mail"):
        (directory / name).mkdir()
    make_certificate(directory)
    (directory / "users").write_text(f"alice:{{PLAIN}}{PASSWORD}::::::\n")
    os.chown(directory / "mail", MAIL_UID, MAIL_UID)
    port = free_port_base() + 143
    conf = directory / "dovecot.conf"
    conf.write_text(CONF.format(dir=directory, uid=MAIL_UID, port=port)
                    + DOVECOT_EXTRA.format())
    dovecot = RealDovecot(conf, port)
    try:
        return measure_server(port, "alice", PASSWORD, count,
                              lambda: descendants(dovecot.process.pid))
    finally:
        dovecot.close()
        subprocess.run(["rm", "-rf", base_dir])


def markdown(ours: dict, theirs: dict | None, limit: int) -> str:
    when = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    lines = [SECTION, "",
             f"Measured {when} on {platform.node()}: {platform.machine()}, {os.cpu_count()} "
             f"cores, Python {platform.python_version()}, by `bench/imap_idle_bench.py` "
             f"(RLIMIT_NOFILE raised to {limit}). Each client: LOGIN, SELECT INBOX (empty), IDLE, "
             "then silence. PSS from /proc/PID/smaps_rollup summed over every process of the "
             "server; growth = PSS with all clients idling minus PSS after one warm-up login.",
             "", "| measure | roost | Dovecot 2.3 |", "|---|---|---|"]

    def cell(data, key, fmt):
        return fmt(data[key]) if data else "-"
    rows = [("idle connections held", "held", lambda v: f"{v:,}"),
            ("time to open them (100 at a time)", "setup_s", lambda v: f"{v:.1f} s"),
            ("baseline PSS (all processes)", "baseline", lambda v: f"{v / 1024:.1f} MiB"),
            ("PSS with the connections idling", "loaded", lambda v: f"{v / 1024:.1f} MiB"),
            ("**growth per idle connection** (goal <= 16 KiB)", "per_conn",
             lambda v: f"{v:.1f} KiB")]
    for label, key, fmt in rows:
        lines.append(f"| {label} | {cell(ours, key, fmt)} | {cell(theirs, key, fmt)} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10000)
    parser.add_argument("--dovecot-clients", type=int, default=1000)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (private Dovecot instance, system users)", file=sys.stderr)
        return 2
    limit = raise_fd_limit()
    ours = run_roost_side(args.clients)
    print("roost", ours, flush=True)
    theirs = run_dovecot_side(args.dovecot_clients) if args.dovecot_clients else None
    print("Dovecot", theirs, flush=True)
    section = markdown(ours, theirs, limit)
    print(section)
    if args.write:
        replace_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
