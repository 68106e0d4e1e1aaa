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
plus roost's CPU per message (all its processes, from /proc).

Neither server looks up client names (`smtpd_peername_lookup = no`), so DNS latency is not
measured. Usage (not run by the test suite):

    sudo .venv/bin/python bench/smtp_bench.py [--rounds 3] [--sizes 1024 10240 102400]
                                              [--concs 10 50] [--scale 1.0] [--out FILE.md]
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
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
message_size_limit = 52428800
smtpd_client_connection_count_limit = 0
biff = no
"""

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


class RoostServer:
    def __init__(self, base_dir: str, port_base: int):
        self.dir = os.path.join(base_dir, "roost")
        self.port = port_base + 25
        python = sys.executable
        done = subprocess.run([python, "-m", "roost", "init", self.dir, "--port-base", str(port_base),
                               "--user", f"{RCPT}:pw"], capture_output=True, text=True, cwd=REPO)
        if done.returncode != 0:
            raise SystemExit(f"roost init failed: {done.stderr}")
        with open(os.path.join(self.dir, "main.cf"), "a", encoding="utf-8") as main_cf:
            main_cf.write("smtpd_peername_lookup = no\nsmtpd_client_connection_count_limit = 0\n")
        self.log = open(os.path.join(base_dir, "roost.log"), "wb")
        self.process = subprocess.Popen([python, "-m", "roost", "-c", self.dir, "start-fg"], cwd=REPO,
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_port(self.port)

    def cpu_seconds(self) -> float:
        """CPU of every process in roost's session (master, workers, their reaped children)."""
        total = 0.0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.process.pid:
                total += sum(int(x) for x in fields[11:15]) / CLK
        return total

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
    def __init__(self, base_dir: str, port: int):
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
        with open(os.path.join(self.etc, "master.cf"), "w", encoding="utf-8") as out:
            out.write(POSTFIX_MASTER_CF.format(port=port))
        with open(os.path.join(self.etc, "vmailbox"), "w", encoding="utf-8") as out:
            out.write(f"{RCPT} example.test/bench/\n")
        for action in ("check", "start"):
            done = subprocess.run(["postfix", "-c", self.etc, action], capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"postfix {action}: {done.stdout}{done.stderr}")
        wait_port(port)

    def stop(self) -> None:
        subprocess.run(["postfix", "-c", self.etc, "stop"], capture_output=True)


def smtp_source(port: int, concurrency: int, count: int, size: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(["smtp-source", "-s", str(concurrency), "-m", str(count), "-l", str(size),
                           "-f", "sender@client.test", "-t", RCPT, "-M", "client.test", f"127.0.0.1:{port}"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"smtp-source against {port} failed: {done.stderr.strip()[-300:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 10240, 102400])
    parser.add_argument("--concs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the message counts")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the private Postfix's master starts as root")
    for tool in ("smtp-source", "postfix"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            raise SystemExit(f"{tool} is not installed")
    base_dir = tempfile.mkdtemp(prefix="roost-smtp-bench-", dir="/tmp")
    port_base = free_port_base()
    roost = postfix = None
    rows = []
    try:
        roost = RoostServer(base_dir, port_base)
        postfix = PostfixServer(base_dir, port_base + 26)
        smtp_source(roost.port, 5, 50, 1024)  # warm-up: imports, table caches
        smtp_source(postfix.port, 5, 50, 1024)
        for size in args.sizes:
            count = max(10, int(COUNTS.get(size, 300) * args.scale))
            for concurrency in args.concs:
                rates = {"roost": [], "postfix": []}
                cpu = []
                for round_number in range(args.rounds):
                    order = [("roost", roost), ("postfix", postfix)]
                    if round_number % 2:
                        order.reverse()
                    for name, server in order:
                        before = roost.cpu_seconds() if name == "roost" else 0.0
                        elapsed = smtp_source(server.port, concurrency, count, size)
                        rates[name].append(count / elapsed)
                        if name == "roost":
                            cpu.append((roost.cpu_seconds() - before) / count * 1000)
                        time.sleep(1)  # let the queue managers settle between runs
                roost_rate = statistics.median(rates["roost"])
                postfix_rate = statistics.median(rates["postfix"])
                rows.append((size, concurrency, count, roost_rate, postfix_rate, roost_rate / postfix_rate,
                             statistics.median(cpu)))
                print(f"size={size} conc={concurrency}: roost {roost_rate:.0f}/s postfix {postfix_rate:.0f}/s",
                      file=sys.stderr)
    finally:
        if roost is not None:
            roost.stop()
        if postfix is not None:
            postfix.stop()
        shutil.rmtree(base_dir, ignore_errors=True)
    load = open("/proc/loadavg").read().split()[:3]
    lines = [f"SMTP durable accept rate, {args.rounds} rounds, medians (nproc={os.cpu_count()}, "
             f"loadavg {' '.join(load)} at the end)", "",
             "| size | concurrency | messages | roost msg/s | Postfix msg/s | roost/Postfix | roost CPU ms/msg |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for size, concurrency, count, roost_rate, postfix_rate, ratio, cpu_ms in rows:
        lines.append(f"| {size // 1024} KB | {concurrency} | {count} | {roost_rate:.0f} | {postfix_rate:.0f} | "
                     f"{ratio:.2f} | {cpu_ms:.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as out:
            out.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
