"""Queue-manager duties next to plain delivery: delay warnings (delay_warning_time, once per
message, remembered across restarts), the smtp connection cache for destinations with a
backlog, pipe(8) services getting their master.cf arguments, and SMTPUTF8 passed on."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import time
from functools import partial

from roost.config.load import load_config
from roost.delivery import smtp as smtp_agent
from roost.delivery.bounce import DELAY
from roost.qmgr import transport_agents
from roost.qmgr.manager import DELAY_WARNED_MARK, QueueManager, envelope_of
from roost.queue import QueueLayout, read_envelope
from roost.queue.reader import read_content
from tests.conftest import RecordingLog, free_port_base
from tests.delivery.helpers import FakeResolver, Sink, request
from tests.qmgr.test_manager import ScriptedAgent, enqueue, settings_for


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


async def cycle(manager) -> None:
    manager.scan()
    manager.dispatch()
    while manager.tasks:
        await asyncio.gather(*list(manager.tasks))


def notices_in_incoming(settings) -> list[bytes]:
    layout = QueueLayout.from_settings(settings)
    out = []
    for queue_id, path in layout.scan("incoming"):
        qf = read_envelope(path, queue_id)
        if qf.sender == "":
            out.append(read_content(qf) if not isinstance(read_content(qf), str) else b"")
    return out


def test_delay_warning_once_and_remembered_across_restarts(tmp_path):
    settings = settings_for(tmp_path / "q", "delay_warning_time = 1h\nminimal_backoff_time = 300s\n"
                            "maximal_backoff_time = 4000s\nqueue_run_delay = 300s\n"
                            "maximal_queue_lifetime = 5d\n")
    queue_id = enqueue(settings, "a@remote.example", "later@far.example", "sent@far.example")
    arrival = read_envelope(os.path.join(settings.get("queue_directory"), "incoming",
                                         queue_id), queue_id).arrival
    clock = Clock(arrival + 10)
    warnings = []

    async def notifier(kind, req, results):
        warnings.append((kind, req.queue_id, [r.recipient.address for r in results]))

    def manager():
        made = QueueManager(settings, RecordingLog(), agent_for=lambda t: (ScriptedAgent(), settings),
                            notifier=notifier, clock=clock)
        made.recover()
        return made

    first = manager()
    asyncio.run(cycle(first))
    assert warnings == []          # deferred, but younger than delay_warning_time
    clock.now = arrival + 3601
    asyncio.run(cycle(first))
    assert warnings == [(DELAY, queue_id, ["later@far.example"])]
    defer_log = os.path.join(settings.get("queue_directory"), "defer", queue_id[0], queue_id)
    if not os.path.exists(defer_log):
        defer_log = QueueLayout.from_settings(settings).path("defer", queue_id)
    with open(defer_log, encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith(DELAY_WARNED_MARK + "\n") and "recipient=later@far.example" in text
    # a restarted manager retries the message and does not warn again
    clock.now = arrival + 3601 + 4001
    asyncio.run(cycle(manager()))
    assert len(warnings) == 1
    with open(defer_log, encoding="utf-8") as handle:
        assert handle.read().startswith(DELAY_WARNED_MARK + "\n")


def test_delay_warning_is_a_real_notice(tmp_path):
    settings = settings_for(tmp_path / "q", "delay_warning_time = 1h\n")
    queue_id = enqueue(settings, "a@remote.example", "later@far.example")
    clock = Clock(time.time() + 3700)
    log = RecordingLog()
    manager = QueueManager(settings, log, agent_for=lambda t: (ScriptedAgent(), settings), clock=clock)
    manager.recover()
    asyncio.run(cycle(manager))
    assert any(re.fullmatch(rf"{queue_id}: sender delay notification: \w+", text)
               for _level, text in log.lines), log.lines
    layout = QueueLayout.from_settings(settings)
    [(new_id, path)] = list(layout.scan("incoming"))
    notice = read_envelope(path, new_id)
    assert notice.sender == "" and [r.address for r in notice.recipients] == ["a@remote.example"]
    content = b"".join(_chunks(notice))
    assert b"Subject: Delayed Mail (still being retried)" in content
    assert b"Action: delayed" in content and b"Final-Recipient: rfc822; later@far.example" in content


def _chunks(qf):
    from roost.queue import iter_content
    return iter_content(qf)


def test_connection_reused_for_a_destination_with_backlog(tmp_path):
    port = free_port_base() + 25
    sink = Sink("127.0.0.7", port)
    try:
        settings = settings_for(tmp_path / "q", f"smtp_tcp_port = {port}\n"
                                "default_destination_concurrency_limit = 1\n")
        resolver = FakeResolver({("far.example", "MX"): ["10 mx.far.example"],
                                 ("mx.far.example", "A"): ["127.0.0.7"]})
        log = RecordingLog()
        deliver = partial(smtp_agent.deliver, lmtp=False)
        manager = QueueManager(settings, log, agent_for=lambda t: (deliver, settings),
                               resolver=resolver)
        ids = [enqueue(settings, "a@remote.example", f"r{n}@far.example") for n in range(3)]
        asyncio.run(cycle(manager))
        sent = [text for _level, text in log.lines if "status=sent" in text]
        assert len(sent) == 3 and len(sink.messages()) == 3
        assert any("conn_use=2" in text for text in sent), sent
        assert any("conn_use=3" in text for text in sent), sent
        assert all(f"{queue_id}: removed" in [t for _l, t in log.lines] for queue_id in ids)
    finally:
        sink.stop()


def test_no_cache_without_backlog(tmp_path):
    settings = settings_for(tmp_path / "q")
    seen = []

    async def agent(req, agent_settings, *, resolver, log, cache=None):
        seen.append(cache)
        return await ScriptedAgent()(req, agent_settings, resolver=resolver, log=log)

    manager = QueueManager(settings, RecordingLog(), agent_for=lambda t: (agent, settings))
    enqueue(settings, "a@remote.example", "sent@one.example")
    asyncio.run(cycle(manager))
    assert seen == [None]
    off = settings_for(tmp_path / "q2", "smtp_connection_cache_destinations = two.example\n")
    manager = QueueManager(off, RecordingLog(), agent_for=lambda t: (agent, off))
    enqueue(off, "a@remote.example", "sent@two.example")
    asyncio.run(cycle(manager))
    assert seen[-1] is manager.connection_cache


def test_pipe_service_gets_its_master_cf_arguments(tmp_path):
    world = tempfile.mkdtemp(prefix="roost-qpipe-")
    os.chmod(world, 0o777)
    try:
        script = os.path.join(world, "record.sh")
        with open(script, "w") as handle:
            handle.write(f'#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done > {world}/argv\n'
                         f"cat > {world}/stdin\n")
        os.chmod(script, 0o755)
        etc = tmp_path / "etc"
        etc.mkdir()
        (etc / "main.cf").write_text(f"queue_directory = {tmp_path}/q\nmyhostname = mx.example.test\n"
                                     "compatibility_level = 3.6\n")
        (etc / "master.cf").write_text(
            "filter    unix  -       n       n       -       -       pipe\n"
            f"  flags=R user=nobody argv={script} -f ${{sender}} -- ${{recipient}}\n")
        config = load_config(str(etc))
        agents = transport_agents(config, RecordingLog())
        deliver, agent_settings, agent_log = agents["filter"]
        [result] = asyncio.run(deliver(request("bob@x.test", transport="filter"), agent_settings,
                                       resolver=None, log=agent_log))
        assert result.status == "sent" and result.text == "delivered via filter service", result
        with open(f"{world}/argv") as handle:
            assert handle.read().split() == ["[-f]", "[alice@example.org]", "[--]", "[bob@x.test]"]
        with open(f"{world}/stdin", "rb") as handle:
            assert handle.read().startswith(b"Return-Path: <alice@example.org>\n")
    finally:
        shutil.rmtree(world, ignore_errors=True)


def test_smtputf8_flag_reaches_the_agent(tmp_path):
    from roost.queue import QueueFileWriter
    settings = settings_for(tmp_path / "q")
    layout = QueueLayout.from_settings(settings)
    layout.ensure()
    writer = QueueFileWriter(layout)
    writer.smtputf8 = 1
    writer.sender("a@remote.example")
    writer.recipient("b@far.example")
    writer.start_content()
    writer.content(b"Subject: x\n\nx\n")
    writer.finish()
    qf = read_envelope(layout.path("incoming", writer.queue_id), writer.queue_id)
    assert envelope_of(qf)["SMTPUTF8"] == "yes"
    seen = []

    async def agent(req, agent_settings, *, resolver, log):
        seen.append(req.envelope.get("SMTPUTF8"))
        return await ScriptedAgent()(req, agent_settings, resolver=resolver, log=log)

    manager = QueueManager(settings, RecordingLog(), agent_for=lambda t: (agent, settings))
    asyncio.run(cycle(manager))
    assert seen == ["yes"]
