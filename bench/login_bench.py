"""Benchmark: logins with SHA512-CRYPT passwords, roost beside Debian's Dovecot (issue 4).

One users file of N users whose passwords are stored `{SHA512-CRYPT}$6$...` (5000 rounds, as
`doveadm pw -s SHA512-CRYPT` makes them) is read by Dovecot 2.3 and by roost (same file
content, one directory each so neither touches the other's Maildirs). For each of IMAP
(LOGIN, then LOGOUT), POP3 (USER/PASS, then QUIT) and the Dovecot auth client socket (AUTH
PLAIN, the protocol Postfix's SASL uses), N logins are made by C client threads at once;
reported: logins per second (median of R runs). Meanwhile a probe connection, logged in before
the burst, sends NOOP every 5 ms and times each answer: the largest and the median latency
show whether the server stays responsive while the passwords hash (roost hashes in threads,
libxcrypt releases the GIL; Dovecot hashes in its auth process).

roost runs in one child process (roost.net.imap, roost.net.pop3 and roost.net.auth in one
event loop, as one worker), Dovecot as configured by Debian (a login process per connection).
Run as root: .venv/bin/python bench/login_bench.py [--users N] [--clients C] [--runs R]
[--no-write]. Prints a Markdown table and replaces the "## Logins" section of bench/RESULTS.md
(unless --no-write).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.pop3_bench import machine  # noqa: E402
from tests.conftest import free_port_base  # noqa: E402
from tests.net.pop3_harness import (RealDovecot, chown_mail, dovecot_conf, maildir,  # noqa: E402
                                    traversable_dir)
from results import replace_section  # noqa: E402 (bench/results.py)

PASSWORD = "bench-password"
AUTH_LISTENER = """\
mail_max_userip_connections = 1000
service auth {{
  unix_listener {dir}/auth-bench {{
    mode = 0600
  }}
}}
"""


def user_name(number: int) -> str:
    return f"bench{number:03d}"


def write_setup(directory: Path, users_text: str, imap_port: int, pop3_port: int,
                names: list[str]) -> Path:
    for name in ("run", "state", "mail"):
        (directory / name).mkdir(exist_ok=True)
    (directory / "users").write_text(users_text)
    os.chmod(directory / "users", 0o644)
    for name in names:
        maildir(directory, name)
    chown_mail(directory)
    conf = directory / "dovecot.conf"
    conf.write_text(dovecot_conf(directory, {"imap": (imap_port, 0), "pop3": (pop3_port, 0)},
                                 extra=AUTH_LISTENER.format(dir=directory)))
    return conf


# --- clients ---------------------------------------------------------------------------------

class LineClient:
    def __init__(self, port: int | None = None, path: str | None = None):
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(60)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")

    def ask(self, line: bytes, done) -> bytes:
        self.sock.sendall(line + b"\r\n" if not line.endswith(b"\n") else line)
        while True:
            answer = self.file.readline()
            if not answer or done(answer):
                return answer

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def imap_login(port: int, user: str) -> None:
    client = LineClient(port)
    client.file.readline()
    answer = client.ask(f"a LOGIN {user} {PASSWORD}".encode(), lambda a: a.startswith(b"a "))
    assert answer.startswith(b"a OK"), answer
    client.ask(b"b LOGOUT", lambda a: a.startswith(b"b "))
    client.close()


def pop3_login(port: int, user: str) -> None:
    client = LineClient(port)
    client.file.readline()
    client.ask(f"USER {user}".encode(), lambda a: True)
    answer = client.ask(f"PASS {PASSWORD}".encode(), lambda a: True)
    assert answer.startswith(b"+OK"), answer
    client.ask(b"QUIT", lambda a: True)
    client.close()


def auth_handshake(path: str) -> LineClient:
    client = LineClient(path=path)
    client.sock.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % os.getpid())
    while client.file.readline() not in (b"DONE\n", b""):
        pass
    return client


def auth_logins(path: str, users: list[str]) -> None:
    """One auth client connection, its requests all in flight at once (as a login process)."""
    client = auth_handshake(path)
    requests = b"".join(
        b"AUTH\t%d\tPLAIN\tservice=imap\tresp=%s\n"
        % (number + 1, base64.b64encode(b"\0" + user.encode() + b"\0" + PASSWORD.encode()))
        for number, user in enumerate(users))
    client.sock.sendall(requests)
    for _ in users:
        answer = client.file.readline()
        assert answer.startswith(b"OK\t"), answer
    client.close()


class Probe(threading.Thread):
    """A logged-in connection timing a NOOP every 5 ms until stopped."""

    def __init__(self, protocol: str, port: int, user: str):
        super().__init__(daemon=True)
        self.client = LineClient(port)
        self.client.file.readline()
        if protocol == "imap":
            self.client.ask(f"a LOGIN {user} {PASSWORD}".encode(), lambda a: a.startswith(b"a "))
            self.noop, self.done = b"n NOOP", (lambda a: a.startswith(b"n "))
        else:
            self.client.ask(f"USER {user}".encode(), lambda a: True)
            self.client.ask(f"PASS {PASSWORD}".encode(), lambda a: True)
            self.noop, self.done = b"NOOP", (lambda a: True)
        self.latencies: list[float] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            start = time.perf_counter()
            self.client.ask(self.noop, self.done)
            self.latencies.append(time.perf_counter() - start)
            time.sleep(0.005)

    def stop(self) -> list[float]:
        self.stopping.set()
        self.join(10)
        self.client.close()
        return self.latencies


def burst(protocol: str, target, users: list[str], clients: int) -> tuple[float, list[float]]:
    """Seconds for all logins, and the probe's NOOP latencies meanwhile (auth: none)."""
    probe = None
    if protocol != "auth":
        probe = Probe(protocol, target, users[0])
        probe.start()
        time.sleep(0.05)
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        if protocol == "auth":
            shares = [users[i::clients] for i in range(clients)]
            list(pool.map(lambda share: auth_logins(target, share), shares))
        else:
            login = imap_login if protocol == "imap" else pop3_login
            list(pool.map(lambda user: login(target, user), users))
    seconds = time.perf_counter() - start
    return seconds, (probe.stop() if probe else [])


# --- roost, in a child process -----------------------------------------------------------------

def serve_roost(conf_path: str) -> None:
    """The child: roost's IMAP, POP3 and auth socket in one event loop; prints its ports."""
    from roost.config.diagnostics import Diagnostics
    from roost.config.dovecot_conf import parse_dovecot_conf
    from roost.net.auth import build_service
    from roost.net.imap import ImapService
    from roost.net.pop3 import Pop3Service
    from tests.conftest import RecordingLog
    from tests.net.pop3_harness import _Config
    from roost.net.server import Connection, new_session_id

    diags = Diagnostics()
    dovecot = parse_dovecot_conf(conf_path, diags)
    log = RecordingLog()
    auth_path = str(Path(conf_path).parent / "roost-auth")

    async def main() -> None:
        stopping = asyncio.Event()
        imap = ImapService(_Config(dovecot), log, None)
        pop3 = Pop3Service(_Config(dovecot), log, None)
        auth = build_service(dovecot, log)

        def handler(service):
            async def on_client(reader, writer):
                peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
                conn = Connection(reader=reader, writer=writer, listener=None, config=None,
                                  log=log, session_id=new_session_id(), peer_host=peer[0],
                                  peer_port=peer[1], local_host=local[0], local_port=local[1],
                                  tls=False, ssl_context=None, stopping=stopping)
                try:
                    await service.serve(conn)
                except Exception:  # noqa: BLE001 - a benchmark client went away
                    pass
                finally:
                    writer.close()
            return on_client

        async def on_auth(reader, writer):
            try:
                await auth.serve(reader, writer)
            finally:
                writer.close()

        imap_server = await asyncio.start_server(handler(imap), "127.0.0.1", 0)
        pop3_server = await asyncio.start_server(handler(pop3), "127.0.0.1", 0)
        await asyncio.start_unix_server(on_auth, auth_path)
        print(f"ready {imap_server.sockets[0].getsockname()[1]} "
              f"{pop3_server.sockets[0].getsockname()[1]} {auth_path}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class RoostChild:
    def __init__(self, conf: Path):
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(conf)],
                                        stdout=subprocess.PIPE, cwd=str(REPO))
        ready = self.process.stdout.readline().decode().split()
        if not ready or ready[0] != "ready":
            self.close()
            raise RuntimeError("roost did not start")
        self.imap, self.pop3, self.auth = int(ready[1]), int(ready[2]), ready[3]

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process.stdout.close()


# --- main ------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_roost(args.serve)
        return 0
    if os.geteuid() != 0:
        print("run as root: Dovecot is started with a private configuration", file=sys.stderr)
        return 2
    from roost.auth.schemes_crypt import crypt_hash, crypt_setting

    load = os.getloadavg()[0]  # other work on the machine when the runs start
    names = [user_name(number) for number in range(args.users)]
    def stored() -> str:
        return "{SHA512-CRYPT}" + crypt_hash(PASSWORD.encode(), crypt_setting("$6$"))

    users_text = "".join(f"{name}:{stored()}::::::\n" for name in names)
    results: dict[tuple[str, str], list[tuple[float, list[float]]]] = {}
    with traversable_dir("roost-login-bench-") as theirs_dir, \
            traversable_dir("roost-login-bench-") as ours_dir:
        base = free_port_base()
        dovecot = RealDovecot(write_setup(theirs_dir, users_text, base + 143, base + 110, names),
                              base + 143)
        roost = None
        try:
            roost = RoostChild(write_setup(ours_dir, users_text, 0, 0, names))
            targets = {"Dovecot": {"imap": base + 143, "pop3": base + 110,
                                   "auth": str(theirs_dir / "auth-bench")},
                       "roost": {"imap": roost.imap, "pop3": roost.pop3, "auth": roost.auth}}
            for server, where in targets.items():  # warm-up (Maildir creation not measured)
                for protocol in ("imap", "pop3"):
                    burst(protocol, where[protocol], names, args.clients)
            for _run in range(args.runs):
                for protocol in ("imap", "pop3", "auth"):
                    for server, where in targets.items():
                        results.setdefault((server, protocol), []).append(
                            burst(protocol, where[protocol], names, args.clients))
        finally:
            if roost is not None:
                roost.close()
            dovecot.close()
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    for protocol in ("imap", "pop3", "auth"):
        for server in ("roost", "Dovecot"):
            runs = results[(server, protocol)]
            seconds = statistics.median(run[0] for run in runs)
            latencies = [latency for run in runs for latency in run[1]]
            probe = (f"{statistics.median(latencies) * 1e3:.1f} ms / "
                     f"{max(latencies) * 1e3:.1f} ms" if latencies else "-")
            label = {"imap": "IMAP LOGIN", "pop3": "POP3 USER/PASS",
                     "auth": "auth socket AUTH PLAIN"}[protocol]
            rows.append(f"| {label} | {server} | {seconds:.2f} s | "
                        f"{args.users / seconds:,.0f} logins/s | {probe} |")
    text = "\n".join([
        "## Logins",
        "",
        f"Measured {when} on {machine()} (load average {load:.1f} at the start)"
        f" by `bench/login_bench.py`: {args.users} logins with "
        f"SHA512-CRYPT passwords (5000 rounds), {args.clients} clients at once, median of "
        f"{args.runs} runs; the probe is a logged-in connection sending NOOP every 5 ms during "
        "the burst (median / largest answer time). roost: one process (IMAP, POP3, auth "
        "socket in one event loop, hashing in threads); Dovecot 2.3 as Debian configures it.",
        "",
        "| logins over | server | burst time | rate | probe NOOP latency (median / max) |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])
    print(text)
    if not args.no_write:
        replace_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
