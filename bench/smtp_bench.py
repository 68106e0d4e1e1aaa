#!/usr/bin/env python3
"""SMTP ingest benchmark: roost's durable accept rate side by side with Debian Postfix's.

Both servers run on this machine in the same run, on loopback high ports, from private
directories under a temporary base (nothing system-wide is touched): roost from a `roost
init` configuration (`start-fg`), Postfix as a private instance (`postfix -c DIR start`, root
needed) configured like roost's demo: virtual mailbox domain example.test delivered into
Maildirs. `smtp-source` (Postfix's load generator) sends COUNT messages of SIZE bytes over
CONC parallel sessions; the rate is COUNT / wall time, and every message counts only after
its `250 ... queued as` (both servers fsync the queue file before that reply). Rounds
alternate the order of the two servers; the table gives medians and the roost/Postfix ratio,
plus CPU per message, from /proc: roost's ingest processes (roost-smtpd: smtpd and cleanup)
during the run, and all processes of each server (queue manager and delivery included)
until its Maildirs hold every message of the run and `--settle` seconds more. The machine
columns count the whole machine over the same span (/proc/stat: the load generator, the
kernel's block and network work done for the server, everything else that ran) and the share
of it left idle while smtp-source ran: where that share is near 0, the rate is bound by CPU
and the ratio of rates follows the ratio of machine CPU per message. Each run starts
only after the previous one's mail is delivered, so neither server's deliveries overlap the
other's run, and at the end the benchmark checks that both servers delivered every message it
sent them (it fails otherwise: a server that does not deliver has less work than one that does).
`--ingest-only` sets `header_checks = static:HOLD` in both servers: each message is still
written, fsynced and answered 250 the same way but lands in hold/, so no delivery competes
with ingest for the CPUs (without it, both queue managers deliver while mail arrives).

Neither server looks up client names (`smtpd_peername_lookup = no`), so DNS latency is not
measured, and neither offers SASL on the measured port (roost's demo enables it; the bench
sets `smtpd_sasl_auth_enable = no` as in the Postfix instance). Usage (not run by the test suite):

    sudo .venv/bin/python bench/smtp_bench.py [--rounds 3] [--sizes 1024 10240 102400]
                                              [--concs 10 50] [--scale 1.0] [--ingest-only]
                                              [--settle 1] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchdir import BASE_DIR, make_base  # noqa: E402
COUNTS = {1024: 1000, 10240: 600, 102400: 200}
CLK = os.sysconf("SC_CLK_TCK")
RCPT = "bench@example.test"
VMAIL_UID = 5000

POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {base}/postfix.log
maillog_file_prefixes = {base}
syslog_name = postfix-bench
myhostname = mail.example.test
mydomain = example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
default_transport = error:bench never relays
virtual_mailbox_domains = example.test
virtual_mailbox_base = {base}/vmail
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
virtual_minimum_uid = {uid}
smtpd_client_connection_count_limit = 0
biff = no
"""

# Ingest only: every message is put on hold by cleanup (the first header matches), so it
# lands durably in hold/ and neither queue manager has anything to deliver.
INGEST_ONLY_MAIN_CF = "header_checks = static:HOLD\n"
# message_size_limit stays at its default (10240000, roost's too): Postfix's virtual(8) refuses
# to start when virtual_mailbox_limit (51200000) is below it, and then Postfix delivers nothing
# while roost delivers everything (the figures before 2026-11-24 05:40 UTC had that flaw).

POSTFIX_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def free_port_base() -> int:
    sys.path.insert(0, REPO)
    from tests.conftest import free_port_base as claim
    return claim()


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(100).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing answers on 127.0.0.1:{port}")


def proc_cpu(pid: str) -> tuple[str, int, float]:
    """(comm, parent pid, CPU seconds including reaped children) of one process."""
    with open(f"/proc/{pid}/stat") as stat:
        head, tail = stat.read().rsplit(")", 1)
    fields = tail.split()
    return head.split("(", 1)[1], int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK


def tree_cpu(root_pid: int, by_session: bool) -> dict[str, float]:
    """CPU seconds per process name (comm) of every process under root_pid (its session when
    by_session, else its direct children) and root_pid itself."""
    totals: dict[str, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm, ppid, cpu = proc_cpu(entry)
            if by_session:
                with open(f"/proc/{entry}/stat") as stat:
                    member = int(stat.read().rsplit(")", 1)[1].split()[3]) == root_pid
            else:
                member = ppid == root_pid or int(entry) == root_pid
        except (OSError, IndexError, ValueError):
            continue
        if member:
            totals[comm] = totals.get(comm, 0.0) + cpu
    return totals


class RoostServer:
    def __init__(self, base_dir: str, port_base: int, ingest_only: bool = False):
        self.dir = os.path.join(base_dir, "roost")
        self.port = port_base + 25
        python = sys.executable
        done = subprocess.run([python, "-m", "roost", "init", self.dir, "--port-base", str(port_base),
                               "--user", f"{RCPT}:pw"], capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"roost init failed: {done.stderr}")
        with open(os.path.join(self.dir, "main.cf"), "a", encoding="utf-8") as main_cf:
            # as the Postfix instance: no SASL on port 25 (roost init enables it for the demo,
            # which costs an auth-server connection per session); submission keeps its -o override
            main_cf.write("smtpd_peername_lookup = no\nsmtpd_client_connection_count_limit = 0\n"
                          "smtpd_sasl_auth_enable = no\n")
            if ingest_only:
                main_cf.write(INGEST_ONLY_MAIN_CF)
        self.log = open(os.path.join(base_dir, "roost.log"), "wb")
        self.process = subprocess.Popen([python, "-m", "roost", "-c", self.dir, "start-fg"], cwd=REPO,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU per process name of every process in roost's session (master, workers, their
        reaped children): roost-smtpd is smtpd + cleanup, roost-qmgr the queue manager."""
        return tree_cpu(self.process.pid, by_session=True)

    def delivered(self) -> int:
        return count_delivered(self.dir)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.log.close()


class PostfixServer:
    def __init__(self, base_dir: str, port: int, ingest_only: bool = False):
        self.base = os.path.join(base_dir, "postfix")
        self.etc = os.path.join(self.base, "etc")
        self.port = port
        spool, data, vmail = (os.path.join(self.base, name) for name in ("spool", "data", "vmail"))
        for path in (self.etc, spool, data, vmail):
            os.makedirs(path, exist_ok=True)
        os.chmod(base_dir, 0o755)
        os.chmod(self.base, 0o755)
        postfix = pwd.getpwnam("postfix")
        os.chown(data, postfix.pw_uid, postfix.pw_gid)
        os.chown(vmail, VMAIL_UID, VMAIL_UID)
        with open(os.path.join(self.etc, "main.cf"), "w", encoding="utf-8") as out:
            out.write(POSTFIX_MAIN_CF.format(etc=self.etc, spool=spool, data=data, base=self.base, uid=VMAIL_UID))
            if ingest_only:
                out.write(INGEST_ONLY_MAIN_CF)
        with open(os.path.join(self.etc, "master.cf"), "w", encoding="utf-8") as out:
            out.write(POSTFIX_MASTER_CF.format(port=port))
        self.spool = spool
        with open(os.path.join(self.etc, "vmailbox"), "w", encoding="utf-8") as out:
            out.write(f"{RCPT} example.test/bench/\n")
        for action in ("check", "start"):
            done = subprocess.run(["postfix", "-c", self.etc, action], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"postfix {action}: {done.stdout}{done.stderr}")
        wait_port(port)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU per process name of Postfix's master and its children (reaped ones included
        through the master's child times)."""
        try:
            with open(os.path.join(self.spool, "pid", "master.pid")) as pid_file:
                master = int(pid_file.read().split()[0])
        except (OSError, ValueError, IndexError):
            return {}
        return tree_cpu(master, by_session=False)

    def delivered(self) -> int:
        return count_delivered(os.path.join(self.base, "vmail"))

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)


def count_delivered(root: str) -> int:
    """Messages in the Maildirs under root (files in every new/ and cur/)."""
    total = 0
    for directory, _subdirs, files in os.walk(root):
        if os.path.basename(directory) in ("new", "cur"):
            total += len(files)
    return total


def await_delivery(servers: dict, expected: int, timeout: float = 120.0) -> dict[str, int]:
    """Wait until every server's Maildirs hold `expected` messages (or timeout); the counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = {name: server.delivered() for name, server in servers.items()}
        if all(count >= expected for count in counts.values()) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def smtp_source(port: int, concurrency: int, count: int, size: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(["smtp-source", "-s", str(concurrency), "-m", str(count), "-l", str(size),
                           "-f", "sender@client.test", "-t", RCPT, "-M", "client.test", f"127.0.0.1:{port}"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"smtp-source against {port} failed: {done.stderr.strip()[-300:]}")
    return elapsed


# roost's smtpd workers live as long as the server; Postfix's smtpd and cleanup processes exit
# after max_use clients and their CPU moves to the master's child times, so only Postfix's
# whole-tree figure is meaningful (its per-role split is computed but not shown).
INGEST_PROCESSES = {"roost": ("roost-smtpd",), "postfix": ("smtpd", "cleanup", "trivial-rewrite")}


def machine_jiffies() -> tuple[int, int]:
    """(busy, all) clock ticks of the whole machine since boot, from /proc/stat: busy is
    everything but idle and iowait (user, system, softirq... of every process and of the
    kernel's own workers, the load generator included)."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def cpu_ms(before: dict, after: dict, count: int, names=None) -> float:
    """CPU milliseconds per message between two tree_cpu() snapshots (only `names` if given)."""
    total = sum(after.get(name, 0.0) - before.get(name, 0.0) for name in after if names is None or name in names)
    return total / count * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-dir", default=BASE_DIR,
                        help="parent of the private spools (default %(default)s: see bench/benchdir.py)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 10240, 102400])
    parser.add_argument("--concs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the message counts")
    parser.add_argument("--ingest-only", action="store_true",
                        help="header_checks = static:HOLD in both servers: every message is accepted "
                             "durably into hold/, so no delivery competes with ingest for the CPUs")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds after each run's mail is delivered (or after the run, with --ingest-only) "
                             "before the CPU totals are read")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the private Postfix's master starts as root")
    for tool in ("smtp-source", "postfix"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is not installed")
    base_dir = make_base("roost-smtp-bench-", args.base_dir)
    port_base = free_port_base()
    roost = postfix = None
    rows = []
    sent = {"roost": 0, "postfix": 0}  # messages each server acknowledged
    delivered: dict[str, int] = {}
    try:
        roost = RoostServer(base_dir, port_base, args.ingest_only)
        postfix = PostfixServer(base_dir, port_base + 26, args.ingest_only)
        for name, server in (("roost", roost), ("postfix", postfix)):
            smtp_source(server.port, 5, 50, 1024)  # warm-up: imports, table caches
            sent[name] += 50
        time.sleep(args.settle)
        for size in args.sizes:
            count = max(10, int(COUNTS.get(size, 300) * args.scale))
            for concurrency in args.concs:
                # per server: rate, ingest / total / machine CPU ms per message, idle share of the run
                samples = {"roost": defaultdict(list), "postfix": defaultdict(list)}
                for round_number in range(args.rounds):
                    order = [("roost", roost), ("postfix", postfix)]
                    if round_number % 2:
                        order.reverse()
                    for name, server in order:
                        before = server.cpu_seconds()
                        busy_before, all_before = machine_jiffies()
                        elapsed = smtp_source(server.port, concurrency, count, size)
                        busy_run, all_run = machine_jiffies()
                        taken = samples[name]
                        taken["idle"].append(1 - (busy_run - busy_before) / max(1, all_run - all_before))
                        sent[name] += count
                        taken["rate"].append(count / elapsed)
                        taken["ingest"].append(cpu_ms(before, server.cpu_seconds(), count, INGEST_PROCESSES[name]))
                        if not args.ingest_only:  # the next run starts only once this one's mail is delivered
                            await_delivery({name: server}, sent[name])
                        time.sleep(args.settle)  # let the queue managers finish before the next run
                        taken["total"].append(cpu_ms(before, server.cpu_seconds(), count))
                        taken["machine"].append((machine_jiffies()[0] - busy_before) / CLK / count * 1000)
                row = dict(size=size, concurrency=concurrency, count=count)
                for name, taken in samples.items():
                    for measure, values in taken.items():
                        row[f"{name}_{measure}"] = statistics.median(values)
                rows.append(row)
                print(f"size={size} conc={concurrency}: roost {row['roost_rate']:.0f}/s "
                      f"postfix {row['postfix_rate']:.0f}/s",
                      file=sys.stderr)
        if not args.ingest_only:  # a server that delivered nothing had it easy: the comparison is void
            delivered = await_delivery({"roost": roost, "postfix": postfix}, sent["roost"])
    finally:
        if roost is not None:
            roost.stop()
        if postfix is not None:
            postfix.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
    load = open("/proc/loadavg").read().split()[:3]
    mode = "ingest only (header_checks = static:HOLD in both)" if args.ingest_only else "queue managers delivering meanwhile"
    lines = [f"SMTP durable accept rate, {mode}, {args.rounds} rounds, medians (nproc={os.cpu_count()}, "
             f"loadavg {' '.join(load)} at the end)", "",
             "| size | conc | messages | roost msg/s | Postfix msg/s | roost/Postfix | roost smtpd+cleanup CPU ms/msg "
             "| roost all CPU ms/msg | Postfix all CPU ms/msg | machine CPU ms/msg roost / Postfix "
             "| machine idle in run roost / Postfix |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    if delivered:
        lines[0] += (f"; delivered into the Maildirs at the end: roost {delivered['roost']}, "
                     f"Postfix {delivered['postfix']} of {sent['roost']} each")
    for row in rows:
        lines.append(f"| {row['size'] // 1024} KB | {row['concurrency']} | {row['count']} | {row['roost_rate']:.0f} | "
                     f"{row['postfix_rate']:.0f} | {row['roost_rate'] / row['postfix_rate']:.2f} | "
                     f"{row['roost_ingest']:.2f} | "
                     f"{row['roost_total']:.2f} | {row['postfix_total']:.2f} | "
                     f"{row['roost_machine']:.2f} / {row['postfix_machine']:.2f} | "
                     f"{row['roost_idle']:.0%} / {row['postfix_idle']:.0%} |")
    table = "\n".join(lines) + "\n"
    print(table)
    short = [name for name, count in delivered.items() if count < sent[name]]
    if short:
        print(f"error: not every message was delivered by {', '.join(short)}: the rates are not comparable",
              file=sys.stderr)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(table)
    return 1 if short else 0


if __name__ == "__main__":
    sys.exit(main())
