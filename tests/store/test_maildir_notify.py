"""The change feed: Mailbox.wait_changed wakes within a second when another process delivers,
flags or expunges (inotify), and the polling fallback does too."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from roost.store.notify import ChangeWatcher
from tests.conftest import REPO
from tests.store.maildir_helpers import make_store, message

DELIVER = r"""
import io, sys, time
from roost.store.location import MailLocation
from roost.store.maildir import MaildirUserStore
time.sleep(0.3)
MaildirUserStore("alice", MailLocation("maildir", sys.argv[1])).deliver(
    "INBOX", io.BytesIO(b"Subject: from another process\n\nx\n"))
print(time.time(), flush=True)
"""


def test_wait_changed_wakes_on_delivery_by_another_process(tmp_path):
    store = make_store(tmp_path)
    box = store.open_mailbox("INBOX")

    async def scenario():
        assert await box.wait_changed(0.2) is False
        proc = subprocess.Popen([sys.executable, "-c", DELIVER, str(tmp_path / "Maildir")],
                                env={"PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
        try:
            assert await box.wait_changed(20) is True
            woke = time.time()
        finally:
            delivered = float(proc.communicate(timeout=30)[0])
        return woke - delivered

    assert asyncio.run(scenario()) < 1.0  # woke within a second of the delivery
    changes = box.refresh()
    assert [c.kind for c in changes] == ["exists"]
    box.close()


@pytest.mark.parametrize("use_inotify", [True, False])
def test_watcher_sees_flag_changes_and_expunges(tmp_path, use_inotify):
    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    maildir = tmp_path / "Maildir"
    watcher = ChangeWatcher([str(maildir / "new"), str(maildir / "cur"), str(maildir)],
                            use_inotify=use_inotify)
    assert watcher.uses_inotify is use_inotify
    other = make_store(tmp_path).open_mailbox("INBOX")

    async def scenario():
        assert await watcher.wait(0.1) is False
        loop = asyncio.get_running_loop()
        loop.call_later(0.1, lambda: other.set_flags([1], frozenset({"\\Seen"}), frozenset(),
                                                     "add"))
        started = loop.time()
        assert await watcher.wait(5) is True
        assert loop.time() - started < 1.5
        await asyncio.sleep(0.05)
        await watcher.wait(0)  # drain
        loop.call_later(0.1, lambda: other.expunge([1]))
        assert await watcher.wait(5) is True

    asyncio.run(scenario())
    watcher.close()


def test_change_before_the_first_wait_is_not_lost(tmp_path):
    store = make_store(tmp_path)
    box = store.open_mailbox("INBOX")
    make_store(tmp_path).deliver("INBOX", message())  # after the snapshot, before any wait

    async def scenario():
        return await box.wait_changed(3)

    started = time.monotonic()
    assert asyncio.run(scenario()) is True and time.monotonic() - started < 1
    assert [c.kind for c in box.refresh()] == ["exists"]
    box.close()
