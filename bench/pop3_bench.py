"""Benchmark: POP3 download throughput, roost beside Debian's Dovecot on the same Maildir.

One Maildir of N messages of S bytes (default 1,000 × 10 KB, text lines, some starting with
a dot so byte-stuffing is exercised) is served by Dovecot 2.3's pop3 and by roost.net.pop3
(in a process running as the mail user, as a roost worker does); both read the same files.
A client on this machine logs in, asks UIDL and LIST, RETRs every message one command at a
time and QUITs without deleting; the time of that whole session is measured, alternating
servers, and the median of several runs is reported with the ratio roost/Dovecot (> 1: roost
is faster). A first session on each server (not measured) lets both build their indexes.

Run as root (Dovecot drops to its own users): .venv/bin/python bench/pop3_bench.py
[--count N] [--size BYTES] [--runs N] [--no-write]
Also reported: the serving process's CPU time per RETR (utime + stime from /proc between
LIST and QUIT: roost's process, Dovecot's pop3 process). Prints a Markdown table and
replaces the "## POP3" section of bench/RESULTS.md (unless --no-write). Not a test:
tests/net/test_pop3_bench.py only checks it runs (tiny count).
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import free_port_base  # noqa: E402
from tests.net.pop3_harness import (PASSWORD, RealDovecot, RoostPop3Process,  # noqa: E402
                                    chown_mail, put_message, traversable_dir, write_setup)
from results import replace_section  # noqa: E402 (bench/results.py)

RECV = 256 * 1024


def make_message(number: int, size: int) -> bytes:
    head = (f"From: bench@example.test\nTo: alice@example.test\nSubject: bench {number}\n"
            f"Message-ID: <{number}@bench.example.test>\n\n").encode()
    lines = []
    total = len(head)
    line = 0
    while total < size:
        text = (b"." if line % 17 == 0 else b"") + \
            b"line %d of message %d, some text to fill the message up to size\n" % (line, number)
        lines.append(text)
        total += len(text)
        line += 1
    return (head + b"".join(lines))[:size - 1] + b"\n"


class Client:
    """A lean POP3 client: one command at a time, replies read in large chunks."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = b""
        self.line()

    def _fill(self) -> None:
        data = self.sock.recv(RECV)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _sep, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def multiline(self) -> bytes:
        """The body up to the terminating `.` line (the status line already read)."""
        while True:
            if self.buffer.startswith(b".\r\n"):
                self.buffer = self.buffer[3:]
                return b""
            end = self.buffer.find(b"\r\n.\r\n")
            if end >= 0:
                body, self.buffer = self.buffer[:end + 2], self.buffer[end + 5:]
                return body
            self._fill()

    def command(self, text: str, multi: bool = False) -> tuple[bytes, bytes]:
        self.sock.sendall(text.encode() + b"\r\n")
        status = self.line()
        if not status.startswith(b"+OK"):
            raise RuntimeError(f"{text}: {status!r}")
        return status, self.multiline() if multi else b""


def download(port: int, count: int, server_cpu=None) -> tuple[float, int]:
    """Seconds for a whole session fetching every message, and the octets received;
    `server_cpu()` (the serving processes' CPU seconds) is called after LIST and before QUIT,
    and the difference, the CPU of the RETRs alone, is added to CPU_USED."""
    start = time.perf_counter()
    client = Client(port)
    client.command("USER alice")
    client.command(f"PASS {PASSWORD}")
    _status, uidls = client.command("UIDL", multi=True)
    assert uidls.count(b"\r\n") == count, uidls[:200]
    client.command("LIST", multi=True)
    cpu_before = server_cpu() if server_cpu else 0.0
    received = 0
    for number in range(1, count + 1):
        _status, body = client.command(f"RETR {number}", multi=True)
        received += len(body)
    if server_cpu:
        CPU_USED.append(server_cpu() - cpu_before)
    client.command("QUIT")
    client.sock.close()
    return time.perf_counter() - start, received


CPU_USED: list[float] = []


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) used so far by process `pid`."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dovecot_pop3_cpu(master_pid: int) -> float:
    """CPU seconds of Dovecot's pop3 processes (children of the master named `pop3`)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        if name == "pop3" and int(fields[1]) == master_pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip().split(" ")[0:2]
                    cpu = " ".join(cpu)
                    break
    except OSError:
        pass
    return (f"{platform.node()}: {cpu}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, Linux {platform.release()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("run as root: Dovecot is started with a private configuration", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]  # other work on the machine when the runs start
    times: dict[str, list[float]] = {"roost": [], "Dovecot": []}
    octets = {}
    with traversable_dir("roost-pop3-bench-") as directory:
        base = free_port_base()
        conf = write_setup(directory, pop3_port=base + 110, pop3s_port=base + 995, lock="no",
                           extra="mail_max_userip_connections = 100")
        for number in range(args.count):
            put_message(directory, f"{1700000000 + number}.M{number}P1.bench",
                        make_message(number, args.size))
        chown_mail(directory)
        dovecot = RealDovecot(conf, base + 110)
        roost = None
        try:
            roost = RoostPop3Process(conf)
            ports = {"Dovecot": dovecot.port, "roost": roost.port}
            for name, port in ports.items():  # warm-up: index building is not measured
                download(port, args.count)
            meters = {"roost": lambda: process_cpu(roost.process.pid),
                      "Dovecot": lambda: dovecot_pop3_cpu(dovecot.process.pid)}
            cpu = {"roost": 0.0, "Dovecot": 0.0}
            for _run in range(args.runs):
                for name, port in ports.items():
                    CPU_USED.clear()
                    seconds, octets[name] = download(port, args.count, meters[name])
                    times[name].append(seconds)
                    cpu[name] += sum(CPU_USED)
        finally:
            if roost is not None:
                roost.close()
            dovecot.close()
    if octets["roost"] != octets["Dovecot"]:
        print(f"warning: roost sent {octets['roost']} octets, Dovecot {octets['Dovecot']}",
              file=sys.stderr)
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["Dovecot"] / median["roost"]
    megabytes = octets["roost"] / 1e6
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for name in ("roost", "Dovecot"):
        seconds = median[name]
        per_retr = cpu[name] / (args.runs * args.count) * 1e6
        rows.append(f"| {name} | {seconds:.3f} s | {args.count / seconds:,.0f} msg/s | "
                    f"{megabytes / seconds:.1f} MB/s | {per_retr:.0f} µs |")
    text = "\n".join([
        "## POP3",
        "",
        f"Measured {when} on {machine()} (load average {load:.1f} at the start)"
        " by `bench/pop3_bench.py`: one session RETRs "
        f"{args.count:,} messages of {args.size:,} bytes from the same Maildir, median of "
        f"{args.runs} runs per server (alternating), Dovecot 2.3 pop3 vs roost.net.pop3 "
        "(one process).",
        "",
        "| server | session time | messages/s | throughput | server CPU per RETR |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Ratio roost/Dovecot (throughput): **{ratio:.2f}** (goal ≥ 1.0). Server CPU: user + "
        "system time of the serving process (roost's one process; Dovecot's pop3 process, "
        "without its login process) between LIST and QUIT, from /proc, 10 ms clock ticks.",
        "",
    ])
    print(text)
    if not args.no_write:
        replace_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
