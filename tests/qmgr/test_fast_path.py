"""The queue manager's cheap path: files announced by cleanup (trigger `I:ID`) are taken
without a scan, small queue files are read once, and a message whose recipients are all
delivered is removed without marking them done first."""

from __future__ import annotations

import asyncio
import os
import socket
import time

from roost.qmgr import content, manager as manager_module, trigger
from roost.queue import QueueFileError, QueueFileWriter, QueueLayout, iter_content, read_envelope
from tests.qmgr.test_manager import BODY, ScriptedAgent, enqueue, manager_for, run_until_idle, settings_for


def writer_for(settings) -> QueueFileWriter:
    layout = QueueLayout.from_settings(settings)
    layout.ensure()
    writer = QueueFileWriter(layout)
    writer.sender("a@example.org")
    writer.recipient("sent@remote.example")
    writer.start_content()
    writer.content(BODY)
    return writer


async def until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_announced_file_is_taken_without_a_scan(tmp_path, monkeypatch):
    monkeypatch.setattr(manager_module, "INCOMING_SCAN_INTERVAL", 3600.0)
    settings = settings_for(tmp_path / "q")
    agent = ScriptedAgent()
    manager = manager_for(settings, agent)
    scans = []
    real_scan = manager.scan
    manager.scan = lambda: (scans.append(1), real_scan())[1]
    queue_directory = settings.get("queue_directory")

    async def scenario():
        stopping = asyncio.Event()
        listener = await trigger.listen(queue_directory, manager.request, manager.queued)
        runner = asyncio.ensure_future(manager.run(stopping))
        try:
            await until(lambda: scans)            # the start-up scan
            writing = writer_for(settings)        # announced before it is complete: left alone
            assert trigger.notify_queued(queue_directory, writing.queue_id)
            await asyncio.sleep(0.1)
            assert not agent.calls and not list(manager.layout.scan("corrupt"))
            writing.finish()
            assert trigger.notify_queued(queue_directory, writing.queue_id)
            await until(lambda: len(agent.calls) == 1 and not manager.active)
            for _ in range(3):
                queue_id = enqueue(settings, "a@example.org", "sent@remote.example")
                assert trigger.notify_queued(queue_directory, queue_id)
            await until(lambda: len(agent.calls) == 4 and not manager.active)
        finally:
            stopping.set()
            await runner
            listener.close()
    asyncio.run(scenario())
    assert len(scans) == 1
    assert not list(manager.layout.scan("incoming")) and not list(manager.layout.scan("active"))
    assert sum(text.endswith(": removed") for _l, text in manager.log.lines) == 4


def test_announcement_of_a_missing_or_taken_file_is_ignored(tmp_path):
    settings = settings_for(tmp_path / "q")
    manager = manager_for(settings, ScriptedAgent())
    manager.layout.ensure()
    manager.queued("4ABCDEF12")
    assert not manager.active and not list(manager.layout.scan("corrupt"))
    assert not [line for line in manager.log.lines if line[0] == "warning"]


def test_all_delivered_message_is_removed_without_done_marks(tmp_path, monkeypatch):
    marks = []
    real_mark = manager_module.mark_done
    monkeypatch.setattr(manager_module, "mark_done", lambda path, offset: (marks.append(offset),
                                                                           real_mark(path, offset)))
    settings = settings_for(tmp_path / "q", "default_destination_recipient_limit = 1\n")
    enqueue(settings, "a@example.org", "sent-1@remote.example")
    run_until_idle(manager_for(settings, ScriptedAgent()))
    assert marks == []
    # several batches: all but the last one mark their recipients (the file might outlive them)
    enqueue(settings, "a@example.org", "sent-1@remote.example", "sent-2@remote.example",
            "sent-3@remote.example")
    run_until_idle(manager_for(settings, ScriptedAgent()))
    assert len(marks) == 2
    # something deferred: every delivered recipient is marked, the file stays with one pending
    marks.clear()
    queue_id = enqueue(settings, "a@example.org", "later@remote.example", "sent-4@remote.example")
    manager = manager_for(settings, ScriptedAgent())
    run_until_idle(manager)
    assert len(marks) == 1
    [(_qid, path)] = manager.layout.scan("deferred")
    assert [r.address for r in read_envelope(path, queue_id).pending_recipients] == \
        ["later@remote.example"]


def test_small_file_is_read_once_and_large_one_streamed(tmp_path, monkeypatch):
    settings = settings_for(tmp_path / "q")
    layout = QueueLayout.from_settings(settings)
    queue_id = enqueue(settings, "a@example.org", "sent@remote.example")
    path = layout.path("incoming", queue_id)
    qf, held = content.load(path, queue_id)
    with open(path, "rb") as handle:
        assert held == handle.read()
    assert b"".join(content.lf_chunks(qf, held)) == b"".join(iter_content(qf)) == BODY
    assert content.open_crlf(qf, held).read() == BODY.replace(b"\n", b"\r\n")
    expected = read_envelope(path, queue_id)
    assert (qf.sender, [r.address for r in qf.recipients], qf.content_offset, qf.end_offset) == \
        (expected.sender, [r.address for r in expected.recipients], expected.content_offset,
         expected.end_offset)
    monkeypatch.setattr(content, "SMALL_FILE", 10)
    qf, held = content.load(path, queue_id)
    assert held is None and b"".join(content.lf_chunks(qf)) == BODY


def test_incomplete_or_broken_files_are_not_loaded(tmp_path):
    settings = settings_for(tmp_path / "q")
    layout = QueueLayout.from_settings(settings)
    writing = writer_for(settings)
    assert content.load(writing.path, writing.queue_id) is None
    writing.finish()
    with open(writing.path, "r+b") as handle:   # cut off its end record
        handle.truncate(os.path.getsize(writing.path) - 2)
    try:
        content.load(writing.path, writing.queue_id)
    except QueueFileError:
        pass
    else:
        raise AssertionError("a truncated file loaded")
    try:
        content.load(layout.path("incoming", "4ABCDEF12"), "4ABCDEF12")
    except QueueFileError:
        pass
    else:
        raise AssertionError("a missing file loaded")


def test_held_bytes_stay_within_their_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(manager_module, "HELD_BYTES", 1)
    settings = settings_for(tmp_path / "q")
    for _ in range(3):
        enqueue(settings, "a@example.org", "sent@remote.example")
    agent = ScriptedAgent()
    manager = manager_for(settings, agent)
    kept: list = []
    real_activate = manager.activate

    def activate(queue, queue_id, path, flushed=False):
        taken = real_activate(queue, queue_id, path, flushed)
        message = manager.active.get(queue_id)
        if message is not None:   # over budget: neither the message nor its parse keeps content
            kept.append((message.held, message.qf.content_chunks))
        return taken
    manager.activate = activate
    run_until_idle(manager)
    assert [call[3] for call in agent.calls] == [BODY.replace(b"\n", b"\r\n")] * 3
    assert manager.held_bytes == 0
    assert kept == [(None, None)] * 3


def test_trigger_datagrams_name_valid_queue_ids_only():
    requests, queued = [], []
    protocol = trigger.TriggerProtocol(requests.append, queued.append)
    protocol.datagram_received(b"I:4ABCDEF12 ../etc/passwd 5BCDEF0123 ", None)
    protocol.datagram_received(b"DF", None)
    assert queued == ["4ABCDEF12", "5BCDEF0123"] and requests == ["D", "F"]
    plain: list = []
    trigger.TriggerProtocol(plain.append).datagram_received(b"I:4ABCDEF12", None)
    assert plain == ["I"]   # a receiver without announcements scans instead


def fill_receiver(tmp_path, announcer):
    """A bound trigger socket nobody reads, announced to until 3 announcements are refused:
    (receiver, queue directory, IDs sent, IDs refused)."""
    queue_directory = str(tmp_path)
    path = trigger.trigger_path(queue_directory)
    os.makedirs(os.path.dirname(path))
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.setblocking(False)
    sent, refused = [], []
    for number in range(500):   # until the receiver's queue is full
        queue_id = f"{0x4ABCDEF12 + number:X}"
        (sent if announcer.send(queue_directory, queue_id) else refused).append(queue_id)
        if len(refused) == 3:
            break
    assert len(refused) == 3
    return receiver, queue_directory, sent, refused


def drain(receiver) -> list[bytes]:
    received = []
    while True:
        try:
            received.append(receiver.recv(4096))
        except BlockingIOError:
            return received


def test_announcements_that_could_not_go_ride_with_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(trigger, "RETRY_DELAY", 3600.0)   # no retry before the next one
    announcer = trigger._Announcer()
    receiver, queue_directory, sent, refused = fill_receiver(tmp_path, announcer)
    try:
        assert [data[2:].decode() for data in drain(receiver)] == sent
        assert announcer.send(queue_directory, "5ABCDEF12")
        assert receiver.recv(4096) == b"I:" + " ".join(refused + ["5ABCDEF12"]).encode()
    finally:
        receiver.close()
        announcer.retry.cancel()
        announcer.sock.close()
    assert not announcer.send(queue_directory, "6ABCDEF12")   # nobody listens: no error


def test_refused_announcements_are_retried_when_no_other_comes(tmp_path, monkeypatch):
    monkeypatch.setattr(trigger, "RETRY_DELAY", 0.05)
    announcer = trigger._Announcer()
    receiver, _queue_directory, sent, refused = fill_receiver(tmp_path, announcer)
    try:
        received = drain(receiver)
        deadline = time.monotonic() + 10
        while len(received) <= len(sent) and time.monotonic() < deadline:
            time.sleep(0.02)
            received += drain(receiver)
        assert received[-1] == b"I:" + " ".join(refused).encode()
        assert announcer.pending == [] and announcer.retry is None
    finally:
        receiver.close()
        announcer.sock.close()


def test_announcements_beyond_the_active_limit_are_taken_later(tmp_path, monkeypatch):
    monkeypatch.setattr(manager_module, "INCOMING_SCAN_INTERVAL", 3600.0)
    settings = settings_for(tmp_path / "q", "qmgr_message_active_limit = 2\n")
    agent = ScriptedAgent(delay=0.05)
    manager = manager_for(settings, agent)

    async def scenario():
        stopping = asyncio.Event()
        runner = asyncio.ensure_future(manager.run(stopping))
        try:
            await asyncio.sleep(0.05)
            for _ in range(6):
                manager.queued(enqueue(settings, "a@example.org", "sent@remote.example"))
                assert len(manager.active) <= 2
            await until(lambda: len(agent.calls) == 6 and not manager.active)
        finally:
            stopping.set()
            await runner
    asyncio.run(scenario())
    assert agent.most <= 2
    assert not list(manager.layout.scan("incoming")) and not list(manager.layout.scan("active"))


def test_small_file_content_is_decoded_once_for_all_its_deliveries(tmp_path, monkeypatch):
    """A message split into several batches (three transports here) reads its content from
    the chunks decoded at activation: the queue file's records are decoded once, not once
    per delivery, and every delivery gets the stored bytes."""
    settings = settings_for(tmp_path / "q")
    enqueue(settings, "a@example.org", "sent@one.example", "sent@two.example",
            "sent@three.example")
    decodes: list = []
    real_lf_chunks = content.lf_chunks

    def counting_lf_chunks(qf, held=None):
        decodes.append(held is not None)
        return real_lf_chunks(qf, held)
    monkeypatch.setattr(content, "lf_chunks", counting_lf_chunks)
    agent = ScriptedAgent()
    seen_lf: list = []

    async def agent_reading_both_forms(request, agent_settings, *, resolver, log):
        seen_lf.append(b"".join(request.lf_content()))
        return await agent(request, agent_settings, resolver=resolver, log=log)
    manager = manager_for(settings, agent_reading_both_forms)
    monkeypatch.setattr(manager, "_recipient_limit", lambda transport: 1)
    run_until_idle(manager)
    assert len(agent.calls) == 3
    assert [call[3] for call in agent.calls] == [BODY.replace(b"\n", b"\r\n")] * 3
    assert seen_lf == [BODY] * 3
    # no decode of its own: the content records were kept by the parse that read the file
    assert decodes == []
    assert manager.held_bytes == 0


def test_the_parse_keeps_the_content_it_decodes(tmp_path):
    """content.load keeps the content records' payloads from its one parse; decoded() hands
    them out once (the QueueFile then no longer holds them) and equals a fresh decode."""
    settings = settings_for(tmp_path / "q")
    layout = QueueLayout.from_settings(settings)
    queue_id = enqueue(settings, "a@example.org", "sent@remote.example")
    qf, held = content.load(layout.path("incoming", queue_id), queue_id)
    assert qf.content_chunks is not None and b"".join(qf.content_chunks) == BODY
    chunks = content.decoded(qf, held)
    assert b"".join(chunks) == BODY and qf.content_chunks is None
    assert content.decoded(qf, held) == tuple(content.lf_chunks(qf, held)) == chunks


def test_queue_manager_process_collects_garbage_less_often():
    """The qmgr service moves its start-up objects out of the collector's sight and raises
    the generation-0 threshold (roost.qmgr._tune_collector); restored here afterwards."""
    import gc

    import roost.qmgr

    before = gc.get_threshold()
    try:
        roost.qmgr._tune_collector()
        assert gc.get_threshold() == (roost.qmgr.GC_THRESHOLD,) + before[1:]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
