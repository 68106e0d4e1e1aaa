"""MaildirFolder.delivery_start / record_delivered (used by deliver.commit, diff
imap-perf-5): an IMAP session's folder that delivers (APPEND) records the new messages in
roost.index itself, exactly as the next sync would have, so that sync (this session's and
any other's) finds the index current and takes no lock; a folder without a loaded index
(LMTP's fresh one) reads nothing and leaves it to the sync."""

from __future__ import annotations

import os

import pytest

from roost.store.maildir import deliver
from roost.store.maildir import index as index_file
from roost.store.maildir.folder import MaildirFolder
from tests.store.maildir_helpers import make_store, message


def deliver_by_hand(folder, subjects, *, record: bool, letters=None):
    """deliver.commit's steps, with or without the record_delivered shortcut."""
    items = []
    for subject in subjects:
        temp, base = deliver.write_temp(folder, message(subject), 1700000000.0)
        items.append((temp, base, letters))
    with folder.lock():
        token = folder.delivery_start() if record else None
        placed = []
        for temp, base, flags in items:
            sub, name = ("new", base) if flags is None else ("cur", f"{base}:2,{flags}")
            os.rename(temp, os.path.join(folder.paths.mail, sub, name))
            placed.append((sub, name))
        uids = deliver._append_records(folder, [base for _temp, base, _flags in items])
        folder.record_delivered(token, [(uid, item[1], location)
                                        for uid, item, location in zip(uids, items, placed)])
    return uids


def index_of(tmp_path):
    found, problem, _st = index_file.read(str(tmp_path / "Maildir" / index_file.FILE_NAME))
    assert problem is None
    return found


@pytest.mark.parametrize("letters", [None, "S"])
def test_recorded_entries_are_what_a_sync_would_write(tmp_path, monkeypatch, letters):
    results = []
    for name, record in (("shortcut", True), ("sync", False)):
        base = tmp_path / name
        store = make_store(base)
        store.deliver("INBOX", message("first"))
        box = store.open_mailbox("INBOX")  # the session's folder: index loaded
        folder = box.folder
        uids = deliver_by_hand(folder, ["a", "b"], record=record, letters=letters)
        assert uids == [2, 3]
        if record:
            # another session's sync: the index is current, no lock is taken
            def no_lock(self):
                raise AssertionError("the sync took the lock")
            monkeypatch.setattr(MaildirFolder, "lock", no_lock)
        fresh = make_store(base).open_mailbox("INBOX")
        assert [info.uid for info in fresh.messages()] == [1, 2, 3]
        monkeypatch.undo()
        box.refresh()
        found = index_of(base)
        results.append(([(e.uid, e.modseq - found.highestmodseq, e.size, e.letters)
                         for e in found.entries.values()], found.uidnext,
                        [(i.uid, i.flags, i.size) for i in fresh.messages()]))
    assert results[0] == results[1]


def test_a_fresh_folder_reads_no_index(tmp_path, monkeypatch):
    store = make_store(tmp_path)
    store.deliver("INBOX", message("first"))
    store.open_mailbox("INBOX").close()
    reads = []
    real_read = index_file.read
    monkeypatch.setattr(index_file, "read", lambda path: reads.append(path) or real_read(path))
    lmtp = make_store(tmp_path)  # as LMTP opens one per delivery
    lmtp.deliver("INBOX", message("second"))
    assert reads == []
    monkeypatch.undo()
    assert [info.uid for info in make_store(tmp_path).open_mailbox("INBOX").messages()] == [1, 2]


def test_a_stale_index_is_left_to_the_sync(tmp_path):
    store = make_store(tmp_path)
    store.deliver("INBOX", message("first"))
    box = store.open_mailbox("INBOX")
    make_store(tmp_path).deliver("INBOX", message("by another process"))  # uidlist moved on
    with box.folder.lock():  # delivery_start() runs under the lock (it takes the index lock)
        assert box.folder.delivery_start() is None
    assert deliver_by_hand(box.folder, ["mine"], record=True) == [3]
    assert [info.uid for info in make_store(tmp_path).open_mailbox("INBOX").messages()] \
        == [1, 2, 3]
