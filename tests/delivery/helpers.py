"""Shared pieces of the delivery tests: settings from main.cf text, requests, a fake
resolver, and real smtp-sink processes on loopback ports (stopped by pid)."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf_text
from roost.config.settings import Settings
from roost.delivery import DeliveryRequest, Recipient
from roost.net.dns import FakeResolver as DnsFakeResolver
from tests.conftest import require_tool

MESSAGE = (b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: test\r\n"
           b"Message-ID: <m1@example.org>\r\n\r\nHello.\r\n.leading dot\r\n")


def settings_of(text: str = "", directory: str = "/etc/roost") -> Settings:
    diags = Diagnostics()
    main_cf = parse_main_cf_text("myhostname = mx.roost.test\ncompatibility_level = 3.6\n" + text,
                                 os.path.join(directory, "main.cf"), diags)
    return Settings.from_main_cf(main_cf, directory, diags)


def request(*recipients, sender="alice@example.org", transport="smtp", nexthop="", message=MESSAGE,
            envelope=None, queue_id="4ABCDEF12") -> DeliveryRequest:
    rcpts = tuple(r if isinstance(r, Recipient) else Recipient(r, original=r) for r in recipients)
    return DeliveryRequest(queue_id=queue_id, sender=sender, recipients=rcpts, transport=transport,
                           nexthop=nexthop, arrival_time=time.time() - 1.5,
                           content=lambda: io.BytesIO(message), envelope=envelope or {})


# The resolver contract's own fake (roost.net.dns): zone {(name, rrtype): ["10 mx.test"] | "tempfail"}
FakeResolver = DnsFakeResolver


def wait_port(host: str, port: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


class Sink:
    """A real Postfix smtp-sink on host:port dumping each message into directory."""

    def __init__(self, host: str, port: int, *args: str):
        tool = require_tool("smtp-sink")
        # smtp-sink drops to `nobody` when root: its dump directory must be reachable by it,
        # which pytest's tmp_path (mode 0700 parents) is not.
        directory = tempfile.mkdtemp(prefix="roost-sink-")
        os.chmod(directory, 0o777)
        self.directory = directory
        self.host, self.port = host, port
        privs = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen([tool, *privs, "-h", "sink.test", "-d", os.path.join(directory, "%M%S."),
                                         *args, f"{host}:{port}", "10"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not wait_port(host, port):
            self.stop()
            raise AssertionError(f"smtp-sink did not start: {self.process.stderr.read()!r}")

    def messages(self) -> list[bytes]:
        out = []
        for name in sorted(os.listdir(self.directory)):
            with open(os.path.join(self.directory, name), "rb") as handle:
                out.append(handle.read())
        return out

    def stop(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
