"""The store's expunge history for QRESYNC (RFC 7162 §3.2.5.2, §3.2.6): which UIDs were
expunged since a MODSEQ, across sessions, processes' rescans, restarts and index rewrites.

roost.index keeps `X <uid> <modseq>` records; a rewrite keeps the newest ones and records the
MODSEQ below which the history is incomplete (`F`), where Mailbox.vanished_since answers None
(the IMAP layer then reports every absent UID, which §3.2.5.2 allows).
"""

from __future__ import annotations

import os

from hypothesis import given, settings, strategies as st

from roost.store.maildir import index as index_file
from roost.store.mbox.store import MboxUserStore
from tests.store.maildir_helpers import make_store, message

DELETED = frozenset({"\\Deleted"})


def fill(store, count: int) -> None:
    for _ in range(count):
        store.deliver("INBOX", message())


def expunge(box, uids) -> None:
    box.set_flags(uids, DELETED, frozenset(), "add")
    box.expunge(uids)
    box.refresh()  # HIGHESTMODSEQ moves past the expunge at the refresh (as IMAP's sync)


def test_expunges_by_sessions_and_other_programs_since_a_modseq(tmp_path):
    store = make_store(tmp_path)
    fill(store, 6)
    box = store.open_mailbox("INBOX")
    before = box.highestmodseq
    assert box.vanished_since(before) == set()
    expunge(box, [2, 3])
    middle = box.highestmodseq
    # another program (mutt, rm) deletes UID 5's file: the refresh that notices gives it a MODSEQ
    other = make_store(tmp_path).open_mailbox("INBOX")
    os.unlink(other.message_path(5))
    box.refresh()
    assert box.highestmodseq > middle
    assert box.vanished_since(before) == {2, 3, 5}
    assert box.vanished_since(middle) == {5}
    assert box.vanished_since(box.highestmodseq) == set()
    # what another process (a new store object: a restart) reads from roost.index
    again = make_store(tmp_path).open_mailbox("INBOX")
    assert again.vanished_since(before) == {2, 3, 5}
    assert again.vanished_since(middle) == {5}


def test_history_before_the_index_existed_is_unknown(tmp_path):
    store = make_store(tmp_path)
    fill(store, 3)
    box = store.open_mailbox("INBOX")
    expunge(box, [1])
    assert box.vanished_since(0) is None  # MODSEQ 0: older than anything recorded
    os.unlink(tmp_path / "Maildir" / index_file.FILE_NAME)  # lost: rebuilt from the files
    rebuilt = make_store(tmp_path).open_mailbox("INBOX")
    assert rebuilt.vanished_since(box.highestmodseq) is None
    assert rebuilt.highestmodseq > box.highestmodseq  # MODSEQs still grow
    assert rebuilt.vanished_since(rebuilt.highestmodseq) == set()


def test_rewrite_keeps_recent_history_and_raises_the_floor(tmp_path):
    store = make_store(tmp_path)
    fill(store, 40)
    box = store.open_mailbox("INBOX")
    start = box.highestmodseq
    marks = []
    for uid in range(1, 31):  # one expunge at a time: 30 X records
        expunge(box, [uid])
        marks.append(box.highestmodseq)
    path = tmp_path / "Maildir" / index_file.FILE_NAME
    found, problem = index_file.parse(path.read_bytes())
    assert problem is None and found.expunged_since(start) == set(range(1, 31))
    # the rewrite bound (10 live messages: 5 + 500) keeps all 30; 600 more old records
    # push the oldest out and the floor up
    many = index_file.Index(found.uidvalidity, found.guid, dict(found.entries),
                            found.highestmodseq, expunged=dict(found.expunged),
                            forgotten=found.forgotten)
    for uid in range(1000, 1600):
        many.expunged[uid] = 1
    index_file.keep_history(many)
    assert len(many.expunged) == len(many.entries) // 2 + 500
    assert many.forgotten == 1  # only the oldest (MODSEQ 1) records were dropped
    assert many.expunged_since(start) == set(range(1, 31))
    assert many.expunged_since(0) is None
    # a real rewrite through the store keeps the records and stays parseable
    index_file.write(str(path), found)
    again = make_store(tmp_path).open_mailbox("INBOX")
    assert again.vanished_since(start) == set(range(1, 31))
    assert again.vanished_since(marks[19]) == set(range(21, 31))


def test_rewrite_during_the_sync_that_saw_an_expunge_keeps_it(tmp_path):
    """The sync that notices an expunge may rewrite the index instead of appending: the
    expunge must survive (recorded at an upper bound of its MODSEQ)."""
    store = make_store(tmp_path)
    fill(store, 3)
    box = store.open_mailbox("INBOX")
    start = box.highestmodseq
    path = str(tmp_path / "Maildir" / index_file.FILE_NAME)
    found, _problem, _st = index_file.read(path)
    live = dict(found.entries)
    del live[2]  # as the rewriting sync sees it: UID 2 gone, its record not appended
    rewritten = index_file.Index(found.uidvalidity, found.guid, live, found.highestmodseq + 1,
                                 uidnext=found.uidnext, expunged={}, forgotten=found.forgotten)
    index_file.write(path, rewritten)
    again, problem, _st = index_file.read(path)
    assert problem is None
    assert again.expunged_since(start) == {2}


def test_parse_of_older_files(tmp_path):
    """Files written before the history existed: after a rewrite (`X 0 n` first) the history
    starts there; a never-rewritten file knows everything since its first record."""
    rewritten = (b"R1 V7 Gabc\n1 5 0 10 - a\nX 0 5\nN 2\nX 9 6\n")
    found, problem = index_file.parse(rewritten)
    assert problem is None and found.forgotten == 5
    assert found.expunged_since(5) == {9} and found.expunged_since(4) is None
    fresh = b"R1 V7 Gabc\n1 2 0 10 - a\n2 3 0 10 - b\nX 2 4\n"
    found, problem = index_file.parse(fresh)
    assert problem is None and found.forgotten == 1
    assert found.expunged_since(1) == {2} and found.expunged_since(0) is None
    assert index_file.parse(b"R1 V7 Gabc\nF x\n")[1] is not None  # damaged: rebuilt


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), st.integers(1, 10**6)), max_size=80),
       st.integers(0, 10**6))
def test_serialize_parse_round_trip_keeps_what_it_claims(records, since):
    index = index_file.Index(3, "g", {}, 1)
    for uid, modseq in records:
        index.expunged[uid] = modseq
        index.highestmodseq = max(index.highestmodseq, modseq)
    claimed = dict(index.expunged)
    parsed, problem = index_file.parse(index_file.serialize(index))
    assert problem is None
    answer = parsed.expunged_since(since)
    if answer is not None:  # complete where it answers
        assert answer == {uid for uid, modseq in claimed.items() if modseq > since}


def test_mbox_remembers_expunges_while_open(tmp_path):
    store = MboxUserStore("alice", str(tmp_path / "mail"), str(tmp_path / "spool" / "alice"))
    for _ in range(3):
        store.deliver("INBOX", message())
    box = store.open_mailbox("INBOX")
    opened = box.highestmodseq
    assert box.vanished_since(opened - 1) is None  # from before this open: unknown
    box.set_flags([2], DELETED, frozenset(), "add")
    middle = box.highestmodseq
    box.expunge()
    assert box.highestmodseq > middle
    assert box.vanished_since(opened) == {2}
    assert box.vanished_since(box.highestmodseq) == set()


def test_index_in_memory_claims_no_history(tmp_path):
    """INDEX=MEMORY writes no roost.index, so no expunge can be read back: "not known"."""
    store = make_store(tmp_path, index="MEMORY")
    fill(store, 3)
    box = store.open_mailbox("INBOX")
    before = box.highestmodseq
    expunge(box, [2])
    assert not (tmp_path / "Maildir" / index_file.FILE_NAME).exists()
    assert box.vanished_since(before) is None
