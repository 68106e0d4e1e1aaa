"""Benchmark: LMTP deliveries per second into Maildir, roost beside Debian's Dovecot LMTP.

Both servers run on this machine in the same run: roost from a `roost init` configuration,
Dovecot from a private configuration (its own base_dir, a passwd-file user, Maildir), each
on a loopback high port. The same client (this script: one LMTP connection per worker
thread, one transaction per message) sends the same message (default 2,000 x 10 KB) at
concurrency 1 and 4; each measurement is repeated and the median kept. Prints a Markdown
table (deliveries/s and the roost/Dovecot ratio).

Run: .venv/bin/python bench/lmtp_bench.py [--count N] [--size BYTES] [--concurrency 1,4]
                                          [--repeat 3]
Not a test (tests/net/test_lmtp_bench.py only checks that it runs with a tiny count).
Needs root (Dovecot's master) and Dovecot installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DOVECOT_CONF = """\
base_dir = {base}/dovecot/run
state_dir = {base}/dovecot/state
log_path = {base}/dovecot/dovecot.log
protocols = lmtp
ssl = no
mail_location = maildir:{base}/dovecot/mail/%u
mail_uid = 65534
mail_gid = 65534
lmtp_add_received_header = yes
passdb {{
  driver = passwd-file
  args = {base}/dovecot/users
}}
userdb {{
  driver = passwd-file
  args = {base}/dovecot/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_base() -> int:
    """A port base N with N+0..N+99 free (roost init uses N + standard ports)."""
    for base in range(30000, 60000, 100):
        if all(_free(base + offset) for offset in (24, 25, 110, 143, 465, 587, 993, 995)):
            return base
    raise RuntimeError("no free port base")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def make_message(size: int) -> bytes:
    head = b"From: bench@example.org\r\nTo: bench@example.test\r\nSubject: bench\r\n\r\n"
    line = b"x" * 76 + b"\r\n"
    body = line * max(1, (size - len(head)) // len(line))
    return head + body


def _reply(file) -> str:
    while True:
        line = file.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return line.decode()


def client(port: int, recipient: str, message: bytes, count: int, errors: list) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        file = sock.makefile("rb")
        _reply(file)
        sock.sendall(b"LHLO bench.client\r\n")
        _reply(file)
        data = message + b".\r\n"
        for _ in range(count):
            sock.sendall(b"MAIL FROM:<bench@example.org>\r\n"
                         + f"RCPT TO:<{recipient}>\r\n".encode() + b"DATA\r\n")
            for _reply_index in range(3):
                _reply(file)
            sock.sendall(data)
            result = _reply(file)
            if not result.startswith("250"):
                errors.append(result)
        sock.sendall(b"QUIT\r\n")


def measure(port: int, recipient: str, message: bytes, count: int, concurrency: int) -> float:
    errors: list[str] = []
    shares = [count // concurrency + (1 if n < count % concurrency else 0)
              for n in range(concurrency)]
    threads = [threading.Thread(target=client, args=(port, recipient, message, share, errors))
               for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} deliveries failed, first: {errors[0]}")
    return count / elapsed


class Roost:
    def __init__(self, base: str):
        self.dir = os.path.join(base, "roost")
        port_base = free_base()
        self.port = port_base + 24
        run([sys.executable, "-m", "roost", "init", self.dir, "--port-base", str(port_base),
             "--user", "bench:Bench-pw1"])
        with open(os.path.join(self.dir, "dovecot.conf"), "a") as handle:
            handle.write("\nfirst_valid_gid = 0\n")

    def start(self) -> None:
        run([sys.executable, "-m", "roost", "-c", self.dir, "start"])
        wait_port(self.port)

    def stop(self) -> None:
        subprocess.run([sys.executable, "-m", "roost", "-c", self.dir, "stop"],
                       capture_output=True, timeout=60)


class Dovecot:
    def __init__(self, base: str):
        self.base = base
        self.port = free_port()
        root = os.path.join(base, "dovecot")
        os.makedirs(os.path.join(root, "mail"), exist_ok=True)
        os.chmod(os.path.join(root, "mail"), 0o777)
        self.conf = os.path.join(root, "dovecot.conf")
        with open(os.path.join(root, "users"), "w") as handle:
            handle.write(f"bench:{{PLAIN}}pw::::{root}/home/bench::\n")
        with open(self.conf, "w") as handle:
            handle.write(DOVECOT_CONF.format(base=base, port=self.port))

    def start(self) -> None:
        with open(os.path.join(self.base, "dovecot-start.log"), "w") as errors:
            subprocess.run(["dovecot", "-c", self.conf], stdin=subprocess.DEVNULL, stdout=errors,
                           stderr=errors, timeout=30, check=True)
        wait_port(self.port)

    def stop(self) -> None:
        pid_file = os.path.join(self.base, "dovecot", "run", "master.pid")
        try:
            pid = int(open(pid_file).read().split()[0])
        except (OSError, ValueError):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)


def run(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=10 * 1024)
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    levels = [int(word) for word in args.concurrency.split(",") if word]
    message = make_message(args.size)
    base = tempfile.mkdtemp(prefix="roost-lmtp-bench-", dir="/tmp")
    os.chmod(base, 0o755)
    roost, dovecot = Roost(base), Dovecot(base)
    rows = []
    try:
        roost.start()
        dovecot.start()
        for level in levels:
            results = {"roost": [], "dovecot": []}
            for _ in range(args.repeat):
                results["roost"].append(measure(roost.port, "bench", message, args.count, level))
                results["dovecot"].append(measure(dovecot.port, "bench", message, args.count,
                                                  level))
            rows.append((level, statistics.median(results["roost"]),
                         statistics.median(results["dovecot"])))
    finally:
        roost.stop()
        dovecot.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"## LMTP deliveries into Maildir ({args.count} x {len(message)} bytes, median of "
          f"{args.repeat}; {platform.node()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()})\n")
    print("| concurrency | roost (msg/s) | Dovecot (msg/s) | roost / Dovecot |")
    print("|---:|---:|---:|---:|")
    for level, ours, theirs in rows:
        print(f"| {level} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
