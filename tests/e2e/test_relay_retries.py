"""Relay and retries through the whole queue manager: real queue files, the real smtp(8) agent,
a fake resolver pointing MX records at Postfix's smtp-sink on 127.0.0.x (one answering 4xx,
one 5xx, one down, one good) and at a private Debian Postfix that only takes mail after
STARTTLS; the clock is injected, so retry times and the queue lifetime are tested exactly.
Bounces are the real RFC 3464 reports, queued through cleanup and delivered back to the local
sender. A real Postfix used as `relayhost` receives roost's mail.
"""

from __future__ import annotations

import asyncio
import email
import json
import os
import re
import subprocess
import time
from functools import partial

import pytest

from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf_text
from roost.config.settings import Settings
from roost.delivery import RecipientResult
from roost.delivery import smtp as smtp_agent
from roost.qmgr.manager import QueueManager
from roost.queue import QueueFileWriter, QueueLayout
from roost.tables import clear_cache
from tests.cleanup.postfix_ref import PostfixRef
from tests.conftest import RecordingLog, free_port_base, require_tool
from tests.delivery.helpers import FakeResolver, Sink

SENDER = "alice@sender.test"
BODY = (b"From: Alice <alice@sender.test>\nTo: bob@far.test\nSubject: relay test\n"
        b"Message-ID: <relay-1@sender.test>\n\nHello over the relay.\n")


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class LocalInbox:
    """The local transport: keeps what is delivered to the sender's domain (bounces)."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def __call__(self, request, settings, *, resolver, log):
        with request.content() as stream:
            data = stream.read()
        self.messages.append((request.sender, [r.address for r in request.recipients], data))
        return [RecipientResult(r, "sent", "2.0.0", "delivered to mailbox", "local")
                for r in request.recipients]


def make_settings(tmp_path, port: int, extra: str = "") -> Settings:
    diags = Diagnostics()
    text = (f"queue_directory = {tmp_path / 'queue'}\nmyhostname = mx.roost.test\n"
            "mydomain = roost.test\nmydestination = sender.test\ncompatibility_level = 3.6\n"
            f"smtp_tcp_port = {port}\nminimal_backoff_time = 300s\nmaximal_backoff_time = 4000s\n"
            "queue_run_delay = 300s\nmaximal_queue_lifetime = 1h\nbounce_queue_lifetime = 1h\n"
            "smtp_connect_timeout = 5s\nsmtp_helo_timeout = 10s\nsmtp_mx_session_limit = 5\n"
            "smtp_tls_security_level = may\n" + extra)
    return Settings.from_main_cf(parse_main_cf_text(text, str(tmp_path / "main.cf"), diags),
                                 str(tmp_path), diags)


def make_manager(settings, resolver, clock):
    inbox = LocalInbox()
    log = RecordingLog()
    agents = {"smtp": (partial(smtp_agent.deliver, lmtp=False), settings, log),
              "local": (inbox, settings, log)}
    manager = QueueManager(settings, log, agent_for=agents.get, resolver=resolver, clock=clock)
    manager.recover()
    return manager, inbox, log


def enqueue(settings, *recipients: str, body: bytes = BODY) -> str:
    layout = QueueLayout.from_settings(settings)
    layout.ensure()
    writer = QueueFileWriter(layout)
    writer.sender(SENDER)
    for recipient in recipients:
        writer.recipient(recipient)
    writer.start_content()
    writer.content(body)
    writer.finish()
    return writer.queue_id


async def cycle(manager) -> None:
    """One queue run: scan, start deliveries, wait until every one is back."""
    manager.scan()
    manager.dispatch()
    while manager.tasks:
        await asyncio.gather(*list(manager.tasks))


def lines(log, pattern: str) -> list[str]:
    return [text for _level, text in log.lines if re.search(pattern, text)]


def report_of(data: bytes):
    """(the notice, its message/delivery-status blocks) as RFC 3464 §2 lays them out."""
    notice = email.message_from_bytes(data.replace(b"\r\n", b"\n"))
    assert notice.get_content_type() == "multipart/report"
    assert notice.get_param("report-type") == "delivery-status"
    parts = notice.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    assert parts[2].get_content_type() in ("message/rfc822", "text/rfc822-headers")
    return notice, parts[1].get_payload()


@pytest.fixture
def sinks():
    started = []

    def start(host, port, *args):
        sink = Sink(host, port, *args)
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


def zone(**hosts) -> dict:
    return {(f"{name.replace('_', '-')}.test", "A"): [address] for name, address in hosts.items()}


def test_mx_order_retry_on_schedule_and_bounces(tmp_path, sinks):
    port = free_port_base() + 25
    good = sinks("127.0.0.4", port)
    sinks("127.0.0.3", port, "-r", "RCPT")   # 4xx to every RCPT
    sinks("127.0.0.5", port, "-f", "RCPT")   # 5xx to every RCPT
    # 127.0.0.2: nobody listens
    resolver = FakeResolver({
        ("far.test", "MX"): ["30 mx-good.test", "10 mx-down.test", "20 mx-soft.test"],
        ("slow.test", "MX"): ["10 mx-soft.test"],
        ("hard.test", "MX"): ["10 mx-hard.test"],
        **zone(mx_down="127.0.0.2", mx_soft="127.0.0.3", mx_good="127.0.0.4", mx_hard="127.0.0.5")})
    settings = make_settings(tmp_path, port)
    clock = Clock()
    manager, inbox, log = make_manager(settings, resolver, clock)
    first = enqueue(settings, "bob@far.test")
    slow = enqueue(settings, "carol@slow.test")
    hard = enqueue(settings, "dave@hard.test")
    asyncio.run(cycle(manager))

    # far.test: down (10) and soft (20) tried first, in preference order, then good (30)
    connects = [q for q in resolver.queries if q[1] == "A"]
    assert connects.index(("mx-down.test", "A")) < connects.index(("mx-soft.test", "A")) < \
        connects.index(("mx-good.test", "A"))
    assert lines(log, rf"^{first}: to=<bob@far.test>, relay=mx-good.test\[127.0.0.4\]:{port}, .*"
                      r"status=sent")
    assert [m for m in good.messages() if b"Message-ID: <relay-1@sender.test>" in m]
    assert lines(log, rf"^{first}: removed$")

    # slow.test: deferred, its retry time is minimal_backoff_time away
    assert lines(log, rf"^{slow}: to=<carol@slow.test>, relay=mx-soft.test.*status=deferred")
    deferred = os.path.join(settings.get("queue_directory"), "deferred")
    [slow_path] = [os.path.join(d, f) for d, _s, files in os.walk(deferred) for f in files if f == slow]
    assert abs(os.stat(slow_path).st_mtime - (clock.now + 300)) < 1

    # hard.test: bounced at once; the sender gets an RFC 3464 report
    assert lines(log, rf"^{hard}: to=<dave@hard.test>, relay=mx-hard.test.*dsn=5\.\d\.\d+, "
                      r"status=bounced")
    assert lines(log, rf"^{hard}: sender non-delivery notification: \w+$")
    asyncio.run(cycle(manager))   # the notice itself is delivered locally
    [(notice_sender, notice_rcpts, data)] = inbox.messages
    assert notice_sender == "" and notice_rcpts == [SENDER]
    notice, blocks = report_of(data)
    assert notice["Subject"] == "Undelivered Mail Returned to Sender"
    assert "MAILER-DAEMON" in notice["From"]
    assert blocks[0]["Reporting-MTA"] == "dns; mx.roost.test"
    assert blocks[0]["X-Postfix-Queue-ID"] == hard
    assert blocks[1]["Final-Recipient"] == "rfc822; dave@hard.test"
    assert blocks[1]["Action"] == "failed" and blocks[1]["Status"].startswith("5.")
    assert blocks[1]["Remote-MTA"] == "dns; mx-hard.test"
    assert blocks[1]["Diagnostic-Code"].startswith("smtp; 5")

    # before the retry time nothing happens; the MX is repaired and the retry delivers
    clock.now += 299
    asyncio.run(cycle(manager))
    assert not lines(log, rf"^{slow}: to=<carol@slow.test>, .*status=sent")
    resolver.zone[("slow.test", "MX")] = ("10 mx-good.test",)
    clock.now += 2
    asyncio.run(cycle(manager))
    assert lines(log, rf"^{slow}: to=<carol@slow.test>, relay=mx-good.test.*status=sent")
    assert lines(log, rf"^{slow}: removed$")
    assert not os.path.exists(slow_path)


def test_lifetime_expiry_returns_the_message(tmp_path, sinks):
    port = free_port_base() + 25
    sinks("127.0.0.6", port, "-r", "RCPT")
    resolver = FakeResolver({("slow.test", "MX"): ["10 mx-soft.test"], **zone(mx_soft="127.0.0.6")})
    settings = make_settings(tmp_path, port)
    clock = Clock()
    manager, inbox, log = make_manager(settings, resolver, clock)
    queue_id = enqueue(settings, "carol@slow.test")
    asyncio.run(cycle(manager))
    assert lines(log, rf"^{queue_id}: to=<carol@slow.test>, .*status=deferred")
    # the retry interval doubles with the message's age (qmgr(8)), capped at maximal_backoff_time
    attempts = [clock.now]
    while not lines(log, rf"^{queue_id}: from=<{SENDER}>, status=expired, returned to sender$"):
        [path] = [os.path.join(d, f) for d, _s, files in
                  os.walk(os.path.join(settings.get("queue_directory"), "deferred"))
                  for f in files if f == queue_id]
        clock.now = os.stat(path).st_mtime + 1
        attempts.append(clock.now)
        asyncio.run(cycle(manager))
        assert len(attempts) < 10
    gaps = [round(b - a) for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] == 301 and all(later >= earlier for earlier, later in zip(gaps, gaps[1:]))
    assert lines(log, rf"^{queue_id}: sender non-delivery notification: \w+$")
    assert lines(log, rf"^{queue_id}: removed$")
    asyncio.run(cycle(manager))
    [(_s, _r, data)] = inbox.messages
    _notice, blocks = report_of(data)
    assert blocks[1]["Final-Recipient"] == "rfc822; carol@slow.test"
    assert blocks[1]["Action"] == "failed" and blocks[1]["Status"].startswith("4.")
    assert blocks[1]["Diagnostic-Code"].startswith("smtp; 4")


@pytest.fixture(scope="module")
def tls_postfix(tmp_path_factory):
    """A private Postfix that queues what it accepts and wants STARTTLS before MAIL."""
    require_tool("postfix")
    require_tool("openssl")
    port = free_port_base() + 25
    ref = PostfixRef(port, "")
    os.makedirs(ref.base, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", ref.path("key.pem"), "-out", ref.path("cert.pem"),
                    "-subj", "/CN=mx-tls.test"], check=True, capture_output=True, timeout=60)
    ref.extra = (f"smtpd_tls_security_level = encrypt\nsmtpd_tls_cert_file = {ref.path('cert.pem')}\n"
                 f"smtpd_tls_key_file = {ref.path('key.pem')}\nsmtpd_tls_received_header = yes\n")
    try:
        ref.start()
        yield ref
    finally:
        ref.stop()


def postfix_queue(ref) -> list[dict]:
    done = subprocess.run(["postqueue", "-c", ref.etc, "-j"], capture_output=True, text=True,
                          timeout=30)
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def wait_for_recipient(ref, address: str) -> dict | None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for entry in postfix_queue(ref):
            if any(r["address"] == address for r in entry["recipients"]):
                return entry
        time.sleep(0.2)
    return None


def test_mx_reachable_only_after_starttls(tmp_path, tls_postfix):
    clear_cache()
    resolver = FakeResolver({("tls.test", "MX"): ["10 mx-tls.test"], **zone(mx_tls="127.0.0.1")})
    settings = make_settings(tmp_path, tls_postfix.port)
    manager, _inbox, log = make_manager(settings, resolver, Clock())
    queue_id = enqueue(settings, "erin@tls.test")
    asyncio.run(cycle(manager))
    assert lines(log, rf"^{queue_id}: to=<erin@tls.test>, relay=mx-tls.test\[127.0.0.1\]:"
                      rf"{tls_postfix.port}, .*status=sent"), log.lines
    entry = wait_for_recipient(tls_postfix, "erin@tls.test")
    assert entry is not None and entry["sender"] == SENDER
    content = tls_postfix.postcat(entry["queue_id"], "-h")
    assert re.search(r"\(using TLSv1\.[23] with cipher", content), content


def test_plain_only_client_is_refused_by_the_starttls_mx(tmp_path, tls_postfix):
    clear_cache()
    resolver = FakeResolver({("tls.test", "MX"): ["10 mx-tls.test"], **zone(mx_tls="127.0.0.1")})
    settings = make_settings(tmp_path, tls_postfix.port, "smtp_tls_security_level = none\n")
    manager, _inbox, log = make_manager(settings, resolver, Clock())
    queue_id = enqueue(settings, "frank@tls.test")
    asyncio.run(cycle(manager))
    # Postfix answers `530 5.7.0 Must issue a STARTTLS command first`: a 5xx, so a bounce
    assert lines(log, rf"^{queue_id}: to=<frank@tls.test>, .*status=bounced .*530 5\.7\.0 "
                      r"Must issue a STARTTLS command first"), log.lines


def test_real_postfix_as_relayhost_receives_the_mail(tmp_path, tls_postfix):
    clear_cache()
    settings = make_settings(tmp_path, 25, f"relayhost = [127.0.0.1]:{tls_postfix.port}\n")
    resolver = FakeResolver({})   # [host]:port needs no DNS at all
    manager, _inbox, log = make_manager(settings, resolver, Clock())
    body = BODY.replace(b"relay-1@", b"relay-2@")
    queue_id = enqueue(settings, "grace@elsewhere.example", "heidi@elsewhere.example", body=body)
    asyncio.run(cycle(manager))
    assert len(lines(log, rf"^{queue_id}: to=<\w+@elsewhere.example>, "
                          rf"relay=127.0.0.1\[127.0.0.1\]:{tls_postfix.port}, .*status=sent")) == 2
    assert not resolver.queries
    entry = wait_for_recipient(tls_postfix, "grace@elsewhere.example")
    assert entry is not None
    assert sorted(r["address"] for r in entry["recipients"]) == ["grace@elsewhere.example",
                                                                 "heidi@elsewhere.example"]
    content = tls_postfix.postcat(entry["queue_id"], "-h", "-b")
    assert "Message-ID: <relay-2@sender.test>" in content
    assert "Hello over the relay." in content
