"""The queue manager over real queue files in tmp_path, with scripted delivery agents.

The agents here stand in for the network (their replies are the input under test); the
queue files, the directory moves, the done marks and the retry times are real.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf_text
from roost.config.settings import Settings
from roost.delivery import RecipientResult
from roost.qmgr.manager import QueueManager
from roost.qmgr.routing import Router
from roost.qmgr.schedule import next_attempt_delay
from roost.queue import QueueLayout, QueueFileWriter, read_envelope
from tests.conftest import RecordingLog

BODY = b"Subject: hi\n\nhello\n"


def settings_for(queue_dir, text: str = "") -> Settings:
    diags = Diagnostics()
    main_cf = parse_main_cf_text(
        f"queue_directory = {queue_dir}\nmyhostname = mx.example.test\n"
        "mydestination = example.test\ncompatibility_level = 3.6\n" + text,
        "/etc/roost/main.cf", diags)
    return Settings.from_main_cf(main_cf, "/etc/roost", diags)


def enqueue(settings, sender: str, *recipients: str, finish: bool = True) -> str:
    layout = QueueLayout.from_settings(settings)
    layout.ensure()
    writer = QueueFileWriter(layout)
    writer.sender(sender)
    for recipient in recipients:
        writer.recipient(recipient)
    writer.start_content()
    writer.content(BODY)
    if finish:
        writer.finish()
    return writer.queue_id


class ScriptedAgent:
    """Answers each recipient by its local part: sent, deferred or bounced."""

    def __init__(self, delay: float = 0.0):
        self.calls = []
        self.delay = delay
        self.running = 0
        self.most = 0

    async def __call__(self, request, settings, *, resolver, log):
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            with request.content() as stream:
                content = stream.read()
            self.calls.append((request.transport, request.nexthop,
                               [r.address for r in request.recipients], content))
            await asyncio.sleep(self.delay)
            results = []
            for recipient in request.recipients:
                kind = recipient.address.split("@")[0].split("-")[0]
                status, dsn = {"sent": ("sent", "2.0.0"), "later": ("deferred", "4.4.1"),
                               "bad": ("bounced", "5.1.1")}[kind]
                results.append(RecipientResult(recipient, status, dsn, kind, "test"))
            return results
        finally:
            self.running -= 1


def run_until_idle(manager: QueueManager, seconds: float = 5.0) -> None:
    async def scenario():
        stopping = asyncio.Event()
        runner = asyncio.ensure_future(manager.run(stopping))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if not manager.active and not manager.tasks and not list(manager.layout.scan("incoming")):
                break
        stopping.set()
        await runner
    asyncio.run(scenario())


def manager_for(settings, agent, bounces=None, clock=time.time):
    async def notifier(kind, request, results):
        bounces.append((request.queue_id, [r for r in results if r.status == "bounced"]))

    return QueueManager(settings, RecordingLog(), agent_for=lambda t: (agent, settings),
                        notifier=notifier if bounces is not None else None, clock=clock)


def test_delivered_message_is_removed_and_logged(tmp_path):
    settings = settings_for(tmp_path / "q")
    queue_id = enqueue(settings, "a@example.org", "sent-1@remote.example", "sent-2@remote.example")
    agent = ScriptedAgent()
    manager = manager_for(settings, agent)
    run_until_idle(manager)
    assert agent.calls == [("smtp", "remote.example",
                            ["sent-1@remote.example", "sent-2@remote.example"],
                            b"Subject: hi\r\n\r\nhello\r\n")]
    assert not list(manager.layout.scan("active")) and not list(manager.layout.scan("deferred"))
    texts = [text for _level, text in manager.log.lines]
    size = int(re.search(rf"{queue_id}: from=<a@example.org>, size=(\d+), nrcpt=2 \(queue active\)",
                         "\n".join(texts)).group(1))
    assert len(BODY) <= size <= len(BODY) + BODY.count(b"\n")  # LF or CRLF counting
    assert f"{queue_id}: removed" in texts


def test_deferred_recipient_waits_with_backoff_and_keeps_only_pending(tmp_path):
    settings = settings_for(tmp_path / "q", "minimal_backoff_time = 300s\n")
    queue_id = enqueue(settings, "a@example.org", "sent@remote.example", "later@remote.example")
    agent = ScriptedAgent()
    manager = manager_for(settings, agent)
    before = time.time()
    run_until_idle(manager)
    deferred = dict(manager.layout.scan("deferred"))
    assert list(deferred) == [queue_id]
    retry_at = os.stat(deferred[queue_id]).st_mtime
    assert before + 299 <= retry_at <= time.time() + 301
    qf = read_envelope(deferred[queue_id])
    assert [r.address for r in qf.pending_recipients] == ["later@remote.example"]
    # not due yet: a second manager leaves it alone; a flush takes it at once
    again = manager_for(settings, agent)
    run_until_idle(again, 1.0)
    assert len(agent.calls) == 1
    flushed = manager_for(settings, agent)
    flushed.request("F")
    run_until_idle(flushed, 2.0)
    assert agent.calls[-1][2] == ["later@remote.example"]


def test_bounced_recipients_go_to_the_bouncer_and_are_done(tmp_path):
    settings = settings_for(tmp_path / "q")
    queue_id = enqueue(settings, "a@example.org", "bad@remote.example", "sent@remote.example")
    bounces = []
    manager = manager_for(settings, ScriptedAgent(), bounces)
    run_until_idle(manager)
    assert [(qid, [r.recipient.address for r in results]) for qid, results in bounces] == \
        [(queue_id, ["bad@remote.example"])]
    assert not list(manager.layout.scan("deferred"))


def test_expired_message_is_returned(tmp_path):
    settings = settings_for(tmp_path / "q", "maximal_queue_lifetime = 1h\n")
    queue_id = enqueue(settings, "a@example.org", "later@remote.example")
    bounces = []
    manager = manager_for(settings, ScriptedAgent(), bounces, clock=lambda: time.time() + 7200)
    run_until_idle(manager)
    assert bounces and bounces[0][0] == queue_id
    assert not list(manager.layout.scan("deferred"))
    assert (f"{queue_id}: from=<a@example.org>, status=expired, returned to sender"
            in [text for _level, text in manager.log.lines])


def test_destination_concurrency_and_recipient_limits(tmp_path):
    settings = settings_for(tmp_path / "q", "default_destination_concurrency_limit = 2\n"
                                             "default_destination_recipient_limit = 3\n")
    for _ in range(5):
        enqueue(settings, "a@example.org", *[f"sent-{i}@remote.example" for i in range(7)])
    agent = ScriptedAgent(delay=0.05)
    manager = manager_for(settings, agent)
    run_until_idle(manager, 10)
    assert agent.most == 2
    assert sorted(len(call[2]) for call in agent.calls) == [1] * 5 + [3] * 10


def test_recovery_returns_active_files_and_sets_aside_broken_ones(tmp_path):
    settings = settings_for(tmp_path / "q")
    layout = QueueLayout.from_settings(settings)
    good = enqueue(settings, "a@example.org", "sent@remote.example")
    os.rename(layout.path("incoming", good), os.path.join(layout.ensure_directory("active", good), good))
    broken = enqueue(settings, "a@example.org", "sent@remote.example", finish=False)
    old = time.time() - 2 * 86400  # a writer that never finished, a day ago or more
    os.utime(layout.path("incoming", broken), (old, old))
    agent = ScriptedAgent()
    manager = manager_for(settings, agent)
    run_until_idle(manager)
    assert len(agent.calls) == 1
    assert [qid for qid, _ in layout.scan("corrupt")] == [broken]
    assert (f'saving corrupt file "{broken}" from queue "incoming" to queue "corrupt"'
            in [text for _l, text in manager.log.lines])


def test_missing_agent_defers(tmp_path):
    settings = settings_for(tmp_path / "q")
    queue_id = enqueue(settings, "a@example.org", "someone@remote.example")
    manager = QueueManager(settings, RecordingLog(), agent_for=lambda t: None)
    run_until_idle(manager)
    assert [qid for qid, _ in manager.layout.scan("deferred")] == [queue_id]


@pytest.mark.parametrize("age,expected", [(0, 300), (250, 300), (600, 600), (5000, 4000),
                                          (10 ** 6, 4000)])
def test_backoff_doubles_between_limits(age, expected):
    assert next_attempt_delay(age, 300, 4000) == expected


def test_routes_follow_address_classes_and_transport_maps(tmp_path):
    (tmp_path / "transport").write_text(
        "special.example  smtp:[10.0.0.5]:2525\n.sub.example  relay:\n"
        "user@mapped.example  lmtp:unix:/run/lmtp\n")
    settings = settings_for(tmp_path / "q", f"transport_maps = texthash:{tmp_path}/transport\n"
                                             "virtual_mailbox_domains = vm.example\n"
                                             "virtual_alias_domains = va.example\n"
                                             "relay_domains = relayed.example\n"
                                             "recipient_delimiter = +\n")
    router = Router(settings)

    def route(address):
        found = router.resolve(address)
        return found.transport, found.nexthop

    assert route("bob@example.test") == ("local", "mx.example.test")
    assert route("bob") == ("local", "mx.example.test")
    assert route("bob@vm.example") == ("virtual", "vm.example")
    assert route("bob@va.example") == ("error", "5.1.1 User unknown in virtual alias table")
    assert route("bob@relayed.example") == ("relay", "relayed.example")
    assert route("bob@sub.relayed.example") == ("relay", "sub.relayed.example")
    assert route("bob@elsewhere.example") == ("smtp", "elsewhere.example")
    assert route("bob@special.example") == ("smtp", "[10.0.0.5]:2525")
    assert route("bob@a.sub.example") == ("relay", "a.sub.example")
    assert route("bob@sub.example") == ("smtp", "sub.example")  # `.sub.example` is subdomains only
    assert route("user+x@mapped.example") == ("lmtp", "unix:/run/lmtp")
    with_relayhost = Router(settings_for(tmp_path / "q", "relayhost = [smart.example]:587\n"))
    assert with_relayhost.resolve("x@far.example").nexthop == "[smart.example]:587"
    assert with_relayhost.resolve("x@example.test").transport == "local"


def test_routes_are_remembered_per_domain_and_tables_seen_again(tmp_path, monkeypatch):
    """A route is resolved once per domain while nothing it depends on can change; with a
    table in a domain list, an answer is kept for one table-check interval only; with
    transport_maps, per address (their keys are addresses)."""
    import roost.qmgr.routing as routing

    clock = [1000.0]
    monkeypatch.setattr(routing.time, "monotonic", lambda: clock[0])
    static = Router(settings_for(tmp_path / "q", "virtual_alias_domains =\n"
                                                  "virtual_mailbox_domains = vm.example\n"))
    calls: list = []
    real = Router._resolve
    monkeypatch.setattr(Router, "_resolve", lambda self, a, d: (calls.append(a), real(self, a, d))[1])
    assert [static.resolve(a).transport for a in ("a@vm.example", "b@VM.example", "c@vm.example")] == \
        ["virtual"] * 3
    clock[0] += 3600
    assert static.resolve("d@vm.example").transport == "virtual" and calls == ["a@vm.example"]

    (tmp_path / "domains").write_text("vm.example x\n")
    tabled = Router(settings_for(tmp_path / "q", f"virtual_alias_domains = texthash:{tmp_path}/domains\n"))
    calls.clear()
    assert tabled.resolve("a@vm.example").transport == "error"
    assert tabled.resolve("b@vm.example").transport == "error" and len(calls) == 1
    clock[0] += routing.table_base.RELOAD_INTERVAL
    assert tabled.resolve("c@vm.example").transport == "error" and len(calls) == 2

    (tmp_path / "transport").write_text("user@mapped.example  lmtp:unix:/run/lmtp\n")
    mapped = Router(settings_for(tmp_path / "q", f"transport_maps = texthash:{tmp_path}/transport\n"))
    assert mapped.resolve("user@mapped.example").transport == "lmtp"
    assert mapped.resolve("other@mapped.example").transport == "smtp"


def test_filter_and_redirect_attributes_route_every_recipient(tmp_path):
    settings = settings_for(tmp_path / "q")
    layout = QueueLayout.from_settings(settings)
    layout.ensure()
    for name, value in (("content_filter", "smtp:[127.0.0.1]:10025"), ("redirect_to", "sent-r@x.example")):
        writer = QueueFileWriter(layout)
        writer.sender("a@example.org")
        writer.recipient("sent-1@remote.example")
        writer.recipient("sent-2@elsewhere.example")
        writer.start_content()
        writer.content(BODY)
        writer.end_content()
        writer.attribute(name, value)
        writer.finish()
    agent = ScriptedAgent()
    run_until_idle(manager_for(settings, agent))
    routes = sorted((transport, nexthop, tuple(rcpts)) for transport, nexthop, rcpts, _c in agent.calls)
    assert ("smtp", "[127.0.0.1]:10025", ("sent-1@remote.example", "sent-2@elsewhere.example")) in routes
    assert ("smtp", "x.example", ("sent-r@x.example",)) in routes
    assert not list(layout.scan("deferred")) and not list(layout.scan("active"))


def test_deferred_reason_shows_in_mailq(tmp_path):
    settings = settings_for(tmp_path / "q")
    queue_id = enqueue(settings, "a@example.org", "later@remote.example")
    run_until_idle(manager_for(settings, ScriptedAgent()))
    from roost.cli.mailq import listing
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "main.cf").write_text(f"queue_directory = {tmp_path / 'q'}\n")
    text = listing(str(config_dir), False)
    assert queue_id in text and "(later)" in text and "later@remote.example" in text
