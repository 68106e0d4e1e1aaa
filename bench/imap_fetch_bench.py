"""`UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)` on a 100,000-message mailbox, roost vs Dovecot.

Issue 8's goal: at most 2 s after the first open. Both servers serve one private dovecot.conf
(tests/interop/test_imap_dovecot_differential.py's: Debian's Dovecot as root, dropping to uid
5000; roost.net.imap in this process), each on its own user's Maildir holding the same N
messages dropped into new/ as an MDA would. Per server: a first session (SELECT builds the
index, the FETCH reads every file once) and then a second session whose SELECT and FETCH are
timed separately; the second FETCH is the figure. The client reads the response as bytes and
only looks for the tagged end. With --write the "## IMAP: FETCH on a large mailbox" section of
bench/RESULTS.md is replaced. Not part of the test suite.

    sudo .venv/bin/python bench/imap_fetch_bench.py --messages 100000 --write
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import socket
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.interop.test_imap_dovecot_differential import (CONF, MAIL_UID, PASSWORD,  # noqa: E402
                                                          RoostImap)
from tests.net.pop3_harness import RealDovecot, make_certificate, traversable_dir  # noqa: E402
from results import replace_section  # noqa: E402 (bench/results.py)
import inprocess  # noqa: E402 (bench/inprocess.py)

FETCH = b"UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)"
SECTION = "## IMAP: FETCH on a large mailbox"


def message(number: int) -> bytes:
    return (b"Return-Path: <sender%d@example.com>\n"
            b"Received: from mx.example.com by mail.example.org; Mon, 23 Nov 2026 10:00:00 +0000\n"
            b"From: Sender %d <sender%d@example.com>\nTo: Alice <alice@example.org>, bob@example.org\n"
            b"Cc: \"Carol, C.\" <carol@example.net>\nSubject: =?utf-8?q?message_%d_caf=C3=A9?=\n"
            b"Date: Mon, 23 Nov 2026 10:%02d:%02d +0000\nMessage-ID: <m%d@example.com>\n"
            b"In-Reply-To: <m%d@example.com>\nMIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=utf-8\n\n"
            b"Hello, this is message %d.\nSecond line of the body.\n"
            % (number, number, number, number, number // 60 % 60, number % 60, number,
               max(number - 1, 1), number))


def fill_maildir(path: str, count: int) -> None:
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    base = 1700000000
    for number in range(1, count + 1):
        name = os.path.join(path, "new", f"{base + number}.M{number}P1.bench")
        with open(name, "wb") as out:
            out.write(message(number))
        os.utime(name, (base + number, base + number))


def chown_tree(path: str) -> None:
    for root, dirs, files in os.walk(path):
        os.chown(root, MAIL_UID, MAIL_UID)
        for name in files:
            os.chown(os.path.join(root, name), MAIL_UID, MAIL_UID)


class Session:
    def __init__(self, port: int, user: str):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.counter = 0
        self.read_until(b"\r\n")
        self.command(b"LOGIN %s %s" % (user.encode(), PASSWORD.encode()))

    def read_until(self, end: bytes) -> bytes:
        """Until a line starting with `end` (a tag and a space) is complete; b"\r\n": a line."""
        done = re.compile(rb"(?:^|\r\n)" + re.escape(end) + rb"[^\r\n]*\r\n\Z") \
            if end != b"\r\n" else re.compile(rb"\r\n\Z")
        data = bytearray()
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError(bytes(data[-300:]))
            data += chunk
            if data.endswith(b"\r\n") and done.search(bytes(data[-4000:])):
                return bytes(data)

    def command(self, line: bytes) -> tuple[float, bytes]:
        self.counter += 1
        tag = b"b%d" % self.counter
        started = time.perf_counter()
        self.sock.sendall(tag + b" " + line + b"\r\n")
        data = self.read_until(tag + b" ")
        elapsed = time.perf_counter() - started
        status = data[data.rfind(tag + b" "):]
        if not status.startswith(tag + b" OK"):
            raise RuntimeError(status)
        return elapsed, data

    def close(self) -> None:
        try:
            self.command(b"LOGOUT")
        except (OSError, RuntimeError):
            pass
        self.sock.close()


def measure(port: int, user: str, count: int) -> dict:
    out = {}
    first = Session(port, user)
    out["first_select"], _ = first.command(b"SELECT INBOX")
    out["first_fetch"], data = first.command(FETCH)
    out["lines"] = data.count(b" FETCH (")
    first.close()
    second = Session(port, user)
    out["select"], _ = second.command(b"SELECT INBOX")
    out["fetch"], data = second.command(FETCH)
    out["bytes"] = len(data)
    second.close()
    assert out["lines"] == count, (out["lines"], count)
    return out


def markdown(count: int, ours: dict, theirs: dict) -> str:
    when = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    rows = [("first SELECT (builds the index)", "first_select"),
            ("first `UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)` (reads every file)",
             "first_fetch"),
            ("SELECT in a new session", "select"),
            ("**`UID FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE)` in a new session** (goal <= 2 s)",
             "fetch")]
    lines = [SECTION, "",
             f"Measured {when} on {platform.node()}: {cpu}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}, by `bench/imap_fetch_bench.py --messages {count}` "
             f"({count:,} messages of ~700 bytes in one Maildir INBOX, plaintext IMAP on "
             "loopback, the response read whole by the client; roost serves from its thread "
             "in the benchmark process).", "",
             "| measure | roost | Dovecot 2.3 |", "|---|---|---|"]
    for label, key in rows:
        lines.append(f"| {label} | {ours[key]:.2f} s | {theirs[key]:.2f} s |")
    lines.append(f"| response size | {ours['bytes'] / 1e6:.1f} MB | {theirs['bytes'] / 1e6:.1f} MB |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100000)
    parser.add_argument("--port", type=int, default=0, help="Dovecot's port (default: a free one)")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--roost-only", action="store_true", help="skip Dovecot (iterating)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile roost's first session (store work run on the loop thread)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (a private Dovecot instance)", file=sys.stderr)
        return 2
    if not args.port:
        from tests.conftest import free_port_base
        args.port = free_port_base() + 143
    with traversable_dir("roost-fetchbench-") as directory:
        for name in ("run", "state", "mail"):
            (directory / name).mkdir()
        make_certificate(directory)
        (directory / "users").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n"
                                                 for u in ("alice", "bob")))
        conf = directory / "dovecot.conf"
        conf.write_text(CONF.format(dir=directory, uid=MAIL_UID, port=args.port))
        started = time.perf_counter()
        for user in ("alice", "bob"):
            fill_maildir(str(directory / "mail" / user / "Maildir"), args.messages)
        chown_tree(str(directory / "mail"))
        print(f"filled 2 x {args.messages} messages in {time.perf_counter() - started:.1f} s",
              flush=True)
        theirs = {key: float("nan") for key in ("first_select", "first_fetch", "select",
                                                 "fetch", "bytes")}
        if not args.roost_only:
            dovecot = RealDovecot(conf, args.port)
            try:
                theirs = measure(args.port, "alice", args.messages)
                print("Dovecot", theirs, flush=True)
            finally:
                dovecot.close()
        profiler = None
        if args.profile:
            import cProfile

            inprocess.run_threads_inline()
            profiler = cProfile.Profile()
        roost = RoostImap(conf)
        try:
            if profiler is not None:
                roost.loop.call_soon_threadsafe(profiler.enable)
            cpu = time.process_time()
            ours = measure(roost.port, "bob", args.messages)
            ours["cpu"] = time.process_time() - cpu
            if profiler is not None:
                roost.loop.call_soon_threadsafe(profiler.disable)
            print("roost", ours, flush=True)
        finally:
            roost.close()
        if profiler is not None:
            import pstats
            pstats.Stats(profiler).sort_stats("tottime").print_stats(35)
    section = markdown(args.messages, ours, theirs)
    print(section)
    if args.write:
        replace_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
