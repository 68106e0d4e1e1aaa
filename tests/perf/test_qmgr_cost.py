"""Cost budget of the queue manager + virtual(8) Maildir path (bench/qmgr_profile.py
measures the CPU; this pins what it comes from): no thread-pool hop per message, one read of
each small queue file, no done marks for a message delivered whole, and new/ fsyncs shared
by the deliveries of a batch."""

from __future__ import annotations

import asyncio
import os

from roost.delivery import commit_thread
from roost.delivery import virtual as virtual_agent
from roost.qmgr import content, manager as manager_module
from roost.qmgr.manager import QueueManager
from tests.conftest import RecordingLog
from tests.qmgr.test_manager import BODY, enqueue, run_until_idle, settings_for

COUNT = 60


def test_virtual_maildir_path_costs(tmp_path, monkeypatch):
    uid, gid = os.geteuid(), os.getegid()
    settings = settings_for(tmp_path / "q", f"virtual_mailbox_domains = vm.test\n"
                            f"virtual_mailbox_base = {tmp_path}/mail\n"
                            "virtual_mailbox_maps = inline:{bench@vm.test=vm.test/bench/}\n"
                            f"virtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{gid}\n"
                            f"virtual_minimum_uid = {uid}\n")
    for _ in range(COUNT):
        enqueue(settings, "a@example.org", "bench@vm.test")
    hops, loads, marks = [], [], []
    real_to_thread, real_load = asyncio.to_thread, content.load
    monkeypatch.setattr(asyncio, "to_thread", lambda fn, *a, **k: (hops.append(fn), real_to_thread(fn, *a, **k))[1])
    monkeypatch.setattr(content, "load", lambda path, qid: (loads.append(qid), real_load(path, qid))[1])
    monkeypatch.setattr(manager_module, "mark_done", lambda path, offset: marks.append(offset))
    shared = commit_thread.shared()
    syncs_before = shared.dir_syncs
    log = RecordingLog()
    manager = QueueManager(settings, log, agent_for=lambda t: (virtual_agent.deliver, settings, log))
    run_until_idle(manager, 30)
    new = tmp_path / "mail" / "vm.test" / "bench" / "new"
    names = os.listdir(new)
    assert len(names) == COUNT
    assert all((new / name).read_bytes().endswith(BODY) for name in names)
    assert sum(text.endswith(": removed") for _l, text in log.lines) == COUNT
    assert hops == [] and marks == []
    assert sorted(loads) == sorted(set(loads)) and len(loads) == COUNT
    assert shared.dir_syncs - syncs_before <= COUNT // 2   # group commit: batches share them
