#!/usr/bin/env python3
"""In-process cost of roost's cleanup path per message (no sockets): CleanupService.open,
add_recipient, write, finish, like smtpd drives it for an smtp-source message.

Reports CPU (process time) and wall per message with fsync on, and optionally a cProfile
of the run. Usage (not run by the test suite):

    .venv/bin/python bench/cleanup_profile.py [--count 2000] [--size 1024] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchdir import BASE_DIR, make_base  # noqa: E402
sys.path.insert(0, REPO)

from roost.cleanup import CleanupService, ClientInfo  # noqa: E402
from roost.config.diagnostics import Diagnostics  # noqa: E402
from roost.config.main_cf import parse_main_cf_text  # noqa: E402
from roost.config.settings import Settings  # noqa: E402


class NullLog:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def smtp_source_message(size: int) -> bytes:
    """What smtp-source sends: a few headers then lines of 'La de da de da N.'-ish text."""
    head = (b"From: <sender@client.test>\r\nTo: <bench@example.test>\r\nDate: Mon, 23 Nov 2026 23:00:00 +0000\r\n"
            b"Message-Id: <1234.5678@client.test>\r\nSubject: test\r\n\r\n")
    body = bytearray()
    line = b"La de da de da 1.\r\n"
    while len(head) + len(body) < size:
        body += line
    return head + bytes(body)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-dir", default=BASE_DIR,
                        help="parent of the private spools (default %(default)s: see bench/benchdir.py)")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    base = make_base("roost-cleanup-prof-", args.base_dir)
    try:
        text = (f"queue_directory = {base}/queue\nmyhostname = mail.example.test\nmydomain = example.test\n"
                "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\nmynetworks = 127.0.0.0/8\n"
                "virtual_mailbox_domains = example.test\n")
        diags = Diagnostics()
        settings = Settings.from_main_cf(parse_main_cf_text(text, f"{base}/main.cf", diags), base, diags)
        service = CleanupService(settings, NullLog())
        client = ClientInfo("unknown", "127.0.0.1", 40000, "client.test", "ESMTP", None, None, None)
        message = smtp_source_message(args.size)

        def one():
            msg = service.open(origin="smtpd", client=client, sender="sender@client.test", envelope={})
            msg.add_recipient("bench@example.test")
            msg.write(message)
            result = msg.finish()
            assert result.reply.code == 250, result
        for _ in range(50):
            one()
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        times0 = os.times()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        for _ in range(args.count):
            one()
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        times1 = os.times()
        print(f"size={args.size} count={args.count}: CPU {cpu / args.count * 1000:.3f} ms/msg "
              f"(user {(times1.user - times0.user) / args.count * 1000:.3f}, "
              f"system {(times1.system - times0.system) / args.count * 1000:.3f}), "
              f"wall {wall / args.count * 1000:.3f} ms/msg")
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
