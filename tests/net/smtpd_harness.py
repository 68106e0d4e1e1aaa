"""A whole smtpd service in-process for tests: config dir from main.cf text, a server thread.

`SmtpdServer(tmp_path, main_cf=..., master_cf=...)` writes the configuration (with a
self-signed certificate when asked), loads it with roost.config.load, binds every smtpd
listener on 127.0.0.1 (port 0 → the kernel picks) and serves them with
roost.net.smtpd.make_service in an event loop on a background thread. `ports[service]` gives
the bound port (ports come from free_port_base: smtp = base+25, submission = base+87,
smtps = base+65 in the master.cf text's {smtp}/{submission}/{smtps}); `log` records every line. Policy and cleanup are real unless stand-ins are
passed (`PermitPolicy` below is the stand-in used where restrictions are not the subject).
"""

from __future__ import annotations

import asyncio
import os
import threading
from types import SimpleNamespace

from roost.config.load import load_config
from roost.master.bind import bind_listener
from roost.net import certs, smtpd
from roost.net.server import BoundSocket, ServiceContext, ServiceServer
from roost.net.tls import postfix_context
from tests.conftest import RecordingLog, free_port_base

BASE_MAIN_CF = """\
myhostname = mail.example.test
mydomain = example.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination = example.test, localhost
queue_directory = {dir}/queue
data_directory = {dir}/data
smtpd_peername_lookup = no
alias_maps =
local_recipient_maps =
"""


class PermitPolicy:
    """Stand-in for roost.policy.SmtpPolicy: permits everything, or rejects at named stages."""

    def __init__(self, settings=None, log=None, *, rejects=None):
        self.rejects = dict(rejects or {})
        self.states = []

    def _result(self, stage, state):
        self.states.append((stage, state))
        return SimpleNamespace(reply=self.rejects.get(stage), actions=(), log=None)

    async def check_connect(self, state):
        return self._result("connect", state)

    async def check_helo(self, state):
        return self._result("helo", state)

    async def check_mail(self, state):
        return self._result("mail", state)

    async def check_rcpt(self, state):
        return self._result("rcpt", state)

    async def check_data(self, state):
        return self._result("data", state)

    async def check_end_of_data(self, state):
        return self._result("end_of_data", state)


class SmtpdServer:
    def __init__(self, tmp_path, *, main_cf: str = "", master_cf: str | None = None, tls: bool = False,
                 policy_factory=None, cleanup_factory=None, tls_context_factory=None):
        self.dir = str(tmp_path)
        os.makedirs(os.path.join(self.dir, "queue"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        text = BASE_MAIN_CF.format(dir=self.dir)
        if tls:
            cert = os.path.join(self.dir, "cert.pem")
            key = os.path.join(self.dir, "key.pem")
            if not os.path.exists(cert):
                certs.write_self_signed(cert, key, "mail.example.test")
            text += f"smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\nsmtpd_tls_security_level = may\n"
        with open(os.path.join(self.dir, "main.cf"), "w") as out:
            out.write(text + main_cf)
        self.base = free_port_base()
        with open(os.path.join(self.dir, "master.cf"), "w") as out:
            # master_cf may use {base}: a base with 100 ports reserved for this test
            out.write((master_cf if master_cf is not None else "127.0.0.1:{smtp} inet n - n - - smtpd\n")
                      .format(base=self.base, smtp=self.base + 25, submission=self.base + 87,
                              smtps=self.base + 65))
        self.config = load_config(self.dir)
        self.log = RecordingLog()
        self.policy_factory = policy_factory if policy_factory is not None else (
            lambda settings, log: PermitPolicy())
        self.cleanup_factory = cleanup_factory
        self.tls_context_factory = tls_context_factory or postfix_context
        self.ports: dict[str, int] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.servers = []

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self):
        for listener in self.config.listeners:
            if listener.handler != "smtpd":
                continue
            context = ServiceContext(listener.service, "smtpd", (listener,), self.config, self.log, None)
            handler = smtpd.make_service(context, policy_factory=self.policy_factory,
                                         cleanup_factory=self.cleanup_factory)
            server = ServiceServer(handler, self.config, self.log)
            sock = bind_listener(listener)
            ssl_context = None
            if listener.settings.get("smtpd_tls_cert_file") or listener.settings.list("smtpd_tls_chain_files"):
                ssl_context = self.tls_context_factory(listener.settings)
            await server.start([BoundSocket(listener, sock, ssl_context)])
            self.servers.append(server)
            self.ports.setdefault(listener.service, sock.getsockname()[1])

    async def _stop(self):
        for server in self.servers:
            server.stop_accepting()
            await server.drain(2)
            await server.cancel_all()

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    @property
    def port(self) -> int:
        return next(iter(self.ports.values()))

    def queue_files(self) -> list[str]:
        found = []
        for root, _dirs, files in os.walk(os.path.join(self.dir, "queue")):
            for name in files:
                if not root.endswith(("pid", "public", "private")):
                    found.append(os.path.join(root, name))
        return found

    def lines(self) -> list[str]:
        return [text for _level, text in self.log.lines]
