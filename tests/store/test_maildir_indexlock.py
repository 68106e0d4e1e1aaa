"""The roost.index writer lock (roost.store.maildir.indexlock) and the lock order of
roost.store.maildir.folder: flag changes take no dotlock and create no file, two processes or
two folder objects changing flags and expunging at once lose nothing (MODSEQs strictly grow in
roost.index, every flag lands, Dovecot reads the same), expunge keeps UIDNEXT."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from roost.store.maildir import dotlock as dotlock_module
from roost.store.maildir import mailbox as mailbox_module
from roost.store.maildir.indexlock import IndexLock
from roost.store.maildir.uidlist import read as read_uidlist
from tests.conftest import REPO
from tests.store.maildir_helpers import Doveadm, make_store, message


def index_modseqs(maildir) -> list[int]:
    """MODSEQs of the message and expunge records of roost.index, in file order."""
    found = []
    for line in (maildir / "roost.index").read_text().splitlines()[1:]:
        parts = line.split()
        if line.startswith("X ") and parts[1] != "0":
            found.append(int(parts[2]))
        elif parts[0].isdigit():
            found.append(int(parts[1]))
    return found


def assert_strictly_growing(modseqs: list[int]) -> None:
    assert all(a < b for a, b in zip(modseqs, modseqs[1:])), modseqs


@pytest.fixture
def counted_dotlocks(monkeypatch):
    taken: list[str] = []
    acquire = dotlock_module.DotLock.acquire

    def counting(self):
        taken.append(os.path.basename(self.lock_path))
        return acquire(self)
    monkeypatch.setattr(dotlock_module.DotLock, "acquire", counting)
    return taken


def test_a_flag_change_takes_no_dotlock_and_creates_no_file(tmp_path, counted_dotlocks):
    store = make_store(tmp_path)
    for i in range(3):
        store.deliver("INBOX", message(f"m{i}"))
    box = store.open_mailbox("INBOX")
    box.set_flags([1], frozenset({"\\Seen"}), frozenset(), "add")  # creates roost.index.lock
    root = tmp_path / "Maildir"
    before = {p.name: p.stat().st_ino for p in root.iterdir() if p.name != "roost.index"}
    counted_dotlocks.clear()
    changed, failed = box.set_flags([1, 2, 3], frozenset({"\\Flagged"}), frozenset(), "add")
    assert [info.uid for info in changed] == [1, 2, 3] and failed == []
    assert counted_dotlocks == []
    after = {p.name: p.stat().st_ino for p in root.iterdir() if p.name != "roost.index"}
    assert after == before  # no file made (nor replaced) beside the folders
    fresh = make_store(tmp_path).open_mailbox("INBOX")
    assert [sorted(info.flags) for info in fresh.messages()] == \
        [["\\Flagged", "\\Seen"], ["\\Flagged"], ["\\Flagged"]]


def test_a_flag_change_does_not_wait_for_a_held_uidlist_dotlock(tmp_path):
    """Dovecot holds dovecot-uidlist.lock while it syncs; roost's flag change goes on (it
    needs only the index lock), as Dovecot's own flag changes do."""
    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    box = store.open_mailbox("INBOX")
    lock = dotlock_module.DotLock(str(tmp_path / "Maildir" / "dovecot-uidlist"))
    with lock:  # a live holder (this process)
        started = time.monotonic()
        changed, _failed = box.set_flags([1], frozenset({"\\Answered"}), frozenset(), "add")
        assert time.monotonic() - started < 1.0
        assert changed[0].flags == frozenset({"\\Answered"})


def test_a_flag_change_behind_the_uidlist_waits_for_the_dotlock(tmp_path):
    """When dovecot-uidlist moved on (another delivery), the change goes the synced way: it
    drops the index lock and takes the dotlock first (order U -> I), so it waits for U's
    holder and never deadlocks against it."""
    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    box = store.open_mailbox("INBOX")
    make_store(tmp_path).deliver("INBOX", message("from elsewhere"))
    lock = dotlock_module.DotLock(str(tmp_path / "Maildir" / "dovecot-uidlist"))
    lock.acquire()
    done = threading.Event()

    def change():
        box.set_flags([1], frozenset({"\\Seen"}), frozenset(), "add")
        done.set()
    worker = threading.Thread(target=change)
    worker.start()
    try:
        assert not done.wait(0.3)  # waiting for U, holding nothing
        # the index lock is free meanwhile: another writer gets it at once
        other = make_store(tmp_path).folder_for("INBOX").index_lock()
        other.acquire()
        other.release()
    finally:
        lock.release()
    worker.join(10)
    assert done.is_set()
    assert_strictly_growing(index_modseqs(tmp_path / "Maildir"))


def test_the_index_lock_excludes_other_descriptors_and_threads(tmp_path):
    path = str(tmp_path / "roost.index.lock")
    first, second = IndexLock(path), IndexLock(path, timeout=0.2)
    first.acquire()
    with pytest.raises(dotlock_module.LockTimeout):
        second.acquire()  # another descriptor, same process: flock excludes it
    first.release()
    shared_timeout = IndexLock(path, timeout=0.2)
    shared_timeout.acquire()
    errors = []

    def other_thread():
        try:
            shared_timeout.acquire()  # the same object from another thread: the mutex
        except dotlock_module.LockTimeout as error:
            errors.append(error)
    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join(5)
    assert len(errors) == 1
    shared_timeout.release()
    second.acquire()
    assert second.held
    second.release()
    assert not second.held


def test_a_deleted_lock_file_is_recreated_and_locked(tmp_path):
    path = tmp_path / "roost.index.lock"
    lock = IndexLock(str(path))
    lock.acquire()
    lock.release()
    path.unlink()
    lock.acquire()  # the old descriptor's file has no name: the new file is locked
    try:
        assert path.exists()
        blocker = IndexLock(str(path), timeout=0.1)
        with pytest.raises(dotlock_module.LockTimeout):
            blocker.acquire()
    finally:
        lock.release()


def test_expunge_takes_no_dotlock_and_leaves_the_records_to_the_next_sync(open_tmp,
                                                                         counted_dotlocks):
    """As Dovecot does: the files go, roost.index records it, the dovecot-uidlist records
    stay until a sync under the dotlock rewrites the file; Dovecot and roost read the same."""
    store = make_store(open_tmp)
    for i in range(4):
        store.deliver("INBOX", message(f"m{i}"))
    box = store.open_mailbox("INBOX")
    before = box.highestmodseq
    root = open_tmp / "Maildir"
    names = {p.name: p.stat().st_ino for p in root.iterdir() if p.name != "roost.index"}
    counted_dotlocks.clear()
    assert box.expunge([2, 4]) == [2, 4]
    assert counted_dotlocks == []
    assert {p.name: p.stat().st_ino for p in root.iterdir() if p.name != "roost.index"} == names
    uidlist, problem, _st = read_uidlist(str(root / "dovecot-uidlist"))
    assert problem is None and sorted(uidlist.records) == [1, 2, 3, 4]
    assert [info.uid for info in box.messages()] == [1, 3]
    fresh = make_store(open_tmp).open_mailbox("INBOX")
    assert [info.uid for info in fresh.messages()] == [1, 3] and fresh.uidnext == 5
    assert fresh.vanished_since(before) == {2, 4}
    assert_strictly_growing(index_modseqs(root))
    assert box.refresh() == []  # the index is current: no sync, no lock
    assert counted_dotlocks == []
    dovecot = Doveadm(open_tmp, root)
    assert sorted(dovecot.fetch()) == [1, 3] and dovecot.status()["uidnext"] == 5
    assert store.deliver("INBOX", message("next")) == 5  # no UID given out twice
    changes = box.refresh()
    assert [(c.kind, c.uid) for c in changes] == [("exists", 5)]
    with box.folder.lock():
        box.folder.sync_locked()  # a full sync drops the records of files gone
    uidlist, problem, _st = read_uidlist(str(root / "dovecot-uidlist"))
    assert sorted(uidlist.records) == [1, 3, 5] and uidlist.uidnext == 6
    assert sorted(Doveadm(open_tmp, root).fetch()) == [1, 3, 5]


def test_expunged_records_piling_up_get_the_uidlist_rewritten(tmp_path, counted_dotlocks,
                                                               monkeypatch):
    monkeypatch.setattr(mailbox_module, "UIDLIST_SLACK", 0)  # a small mailbox then suffices
    store = make_store(tmp_path)
    for i in range(40):
        store.deliver("INBOX", message(f"m{i}"))
    box = store.open_mailbox("INBOX")
    uidlist_path = str(tmp_path / "Maildir" / "dovecot-uidlist")
    counted_dotlocks.clear()
    rewrote_at = None
    for uid in range(1, 40):
        box.expunge([uid])
        if counted_dotlocks:
            rewrote_at = uid
            break
    assert rewrote_at is not None and rewrote_at > 10  # not at every expunge
    uidlist, _problem, _st = read_uidlist(uidlist_path)
    assert sorted(uidlist.records) == list(range(rewrote_at + 1, 41))
    assert uidlist.uidnext == 41
    assert [info.uid for info in box.messages()] == list(range(rewrote_at + 1, 41))


def test_expunge_after_another_program_renamed_the_file(tmp_path):
    store = make_store(tmp_path)
    for i in range(3):
        store.deliver("INBOX", message(f"m{i}"))
    box = store.open_mailbox("INBOX")
    other = make_store(tmp_path).open_mailbox("INBOX")
    other.set_flags([2], frozenset({"\\Deleted"}), frozenset(), "add")
    assert box.expunge([2, 3]) == [2, 3]  # the snapshot's name for 2 is stale: synced way
    assert [info.uid for info in make_store(tmp_path).open_mailbox("INBOX").messages()] == [1]
    assert_strictly_growing(index_modseqs(tmp_path / "Maildir"))


RACER = """
import sys, time
from roost.store.location import MailLocation
from roost.store.maildir import MaildirUserStore
root, flag, rounds, expunge = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
box = MaildirUserStore('alice', MailLocation('maildir', root)).open_mailbox('INBOX')
uids = [info.uid for info in box.messages()]
for n in range(rounds):
    for uid in uids:
        box.set_flags([uid], frozenset({flag}), frozenset(), 'remove' if n % 2 else 'add')
    box.refresh()
    if expunge != '-' and n == rounds // 2:
        box.expunge([int(u) for u in expunge.split(',')])
for uid in uids:
    box.set_flags([uid], frozenset({flag}), frozenset(), 'add')
print('done', flush=True)
"""


def test_two_processes_changing_flags_and_expunging_lose_nothing(open_tmp):
    store = make_store(open_tmp)
    for i in range(12):
        store.deliver("INBOX", message(f"m{i}"))
    store.open_mailbox("INBOX")  # index made
    root = str(open_tmp / "Maildir")
    env = {"PYTHONPATH": str(REPO)}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, root, flag, "6", expunge],
                               stdout=subprocess.PIPE, text=True, env=env)
              for flag, expunge in (("\\Seen", "3,7"), ("\\Flagged", "-"))]
    try:
        outputs = [racer.communicate(timeout=60)[0] for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()
    assert outputs == ["done\n", "done\n"]
    assert_strictly_growing(index_modseqs(open_tmp / "Maildir"))
    box = make_store(open_tmp).open_mailbox("INBOX")
    expected = {uid: frozenset({"\\Seen", "\\Flagged"}) for uid in range(1, 13) if uid not in (3, 7)}
    assert {info.uid: info.flags for info in box.messages()} == expected
    assert len({info.modseq for info in box.messages()}) == len(expected)
    assert Doveadm(open_tmp, open_tmp / "Maildir").fetch() == expected


def test_two_folder_objects_in_threads_lose_nothing(tmp_path):
    store = make_store(tmp_path)
    for i in range(8):
        store.deliver("INBOX", message(f"m{i}"))
    boxes = [make_store(tmp_path).open_mailbox("INBOX") for _ in range(2)]
    errors = []

    def race(box, flag):
        try:
            for n in range(10):
                for uid in range(1, 9):
                    box.set_flags([uid], frozenset({flag}), frozenset(),
                                  "remove" if n % 2 else "add")
            for uid in range(1, 9):
                box.set_flags([uid], frozenset({flag}), frozenset(), "add")
        except Exception as error:  # reported below
            errors.append(error)
    workers = [threading.Thread(target=race, args=(box, flag))
               for box, flag in zip(boxes, ("\\Seen", "\\Answered"))]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often: between any read and write
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert_strictly_growing(index_modseqs(tmp_path / "Maildir"))
    fresh = make_store(tmp_path).open_mailbox("INBOX")
    assert all(info.flags == {"\\Seen", "\\Answered"} for info in fresh.messages())
    assert len(fresh.messages()) == 8


def test_a_file_back_under_an_expunged_name_gets_a_new_uid(tmp_path):
    """The expunged record is still in dovecot-uidlist; a file of that name coming back
    (a restore, a redelivery with a fixed name) must not get the expunged UID again."""
    store = make_store(tmp_path)
    for i in range(3):
        store.deliver("INBOX", message(f"m{i}"))
    box = store.open_mailbox("INBOX")
    path = box.message_path(2)
    saved = open(path, "rb").read()
    assert box.expunge([2]) == [2]
    with open(path, "wb") as restored:
        restored.write(saved)
    changes = box.refresh()
    assert [(c.kind, c.uid) for c in changes] == [("exists", 4)]
    assert [info.uid for info in box.messages()] == [1, 3, 4]
    uidlist, _problem, _st = read_uidlist(str(tmp_path / "Maildir" / "dovecot-uidlist"))
    assert sorted(uidlist.records) == [1, 3, 4]
    assert [info.uid for info in make_store(tmp_path).open_mailbox("INBOX").messages()] \
        == [1, 3, 4]


def test_a_quiet_mailbox_is_not_listed_again_yet_every_change_shows(tmp_path, monkeypatch):
    """With nanosecond file times the quick signature is trusted FINE_TIME_MARGIN after the
    last change (not 2 s): a refresh then lists nothing; a change after it still shows."""
    from roost.store.maildir import folder as folder_module

    store = make_store(tmp_path)
    for i in range(3):
        store.deliver("INBOX", message(f"m{i}"))
    box = store.open_mailbox("INBOX")
    other = make_store(tmp_path).open_mailbox("INBOX")
    scans = []
    scan = folder_module.MaildirFolder.scan
    monkeypatch.setattr(folder_module.MaildirFolder, "scan",
                        lambda self: scans.append(1) or scan(self))
    for change in range(3):
        time.sleep(folder_module.FINE_TIME_MARGIN / 1e9 + 0.05)
        box.refresh()  # takes the signature (lists once if the last change was recent)
        scans.clear()
        assert box.refresh() == [] and scans == []  # quiet: trusted, nothing listed
        other.set_flags([1 + change], frozenset({"\\Seen"}), frozenset(), "add")
        changes = box.refresh()  # right after the change: listed again, the change seen
        assert [(c.kind, c.uid) for c in changes] == [("flags", 1 + change)]
        assert changes[0].info.flags == frozenset({"\\Seen"})


def test_sessions_of_a_process_share_the_parsed_index_and_writers_copy_it(tmp_path):
    store = make_store(tmp_path)
    for i in range(3):
        store.deliver("INBOX", message(f"m{i}"))
    first = make_store(tmp_path).open_mailbox("INBOX")
    second = make_store(tmp_path).open_mailbox("INBOX")
    shared = first.folder._index
    assert shared is not None and second.folder._index is shared  # parsed once
    before = (dict(shared.entries), shared.highestmodseq, dict(shared.expunged))
    first.set_flags([1], frozenset({"\\Seen"}), frozenset(), "add")
    first.expunge([2])
    # the shared version was left as it was (second's snapshot and history stay consistent)
    assert (shared.entries, shared.highestmodseq, shared.expunged) == before
    assert [info.uid for info in second.messages()] == [1, 2, 3]
    changes = second.refresh()
    assert [(c.kind, c.uid) for c in changes] == [("expunge", 2), ("flags", 1)]
    assert second.folder._index is first.folder._index  # the new version is shared again
    first.refresh()
    assert second.highestmodseq == first.highestmodseq


def test_one_lock_per_mailbox_and_process_and_a_forked_child_is_excluded(tmp_path):
    from roost.store.maildir import indexlock

    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    first = make_store(tmp_path).open_mailbox("INBOX")
    second = make_store(tmp_path).open_mailbox("INBOX")
    lock = first.folder.index_lock()
    assert second.folder.index_lock() is lock  # one descriptor per mailbox, not per session
    lock.acquire()
    try:
        pid = os.fork()
        if pid == 0:  # the child: the inherited descriptor must not count as holding it
            code = 1
            try:
                child = indexlock.for_path(lock.path)
                child.timeout = 0.2
                try:
                    child.acquire()
                except dotlock_module.LockTimeout:
                    code = 0
            finally:
                os._exit(code)
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        lock.release()
