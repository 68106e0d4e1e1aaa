"""The Maildir store against the store contract, with real files in tmp_path."""

from __future__ import annotations

import io
import os

import pytest

from roost.store import (InvalidMailboxName, MailboxExists, MailboxInUse, MailboxNotFound,
                         MessageGone, StoreError)
from roost.store.maildir.mailbox import ReadOnlyMailbox
from tests.store.maildir_helpers import make_store, message, special_mailboxes


def test_deliver_gives_ascending_uids_and_durable_files(tmp_path):
    store = make_store(tmp_path)
    uids = [store.deliver("INBOX", message(f"m{i}")) for i in range(3)]
    assert uids == [1, 2, 3]
    new = sorted(os.listdir(tmp_path / "Maildir" / "new"))
    assert len(new) == 3 and all(",S=" in n and ",W=" in n for n in new)
    assert os.listdir(tmp_path / "Maildir" / "tmp") == []
    uidlist = (tmp_path / "Maildir" / "dovecot-uidlist").read_text().splitlines()
    assert uidlist[0].startswith("3 V") and " N" in uidlist[0] and " G" in uidlist[0]
    assert [line.split(" :")[0] for line in uidlist[1:]] == ["1", "2", "3"]
    assert sorted(line.split(" :")[1] for line in uidlist[1:]) == new


def test_message_stored_with_lf_served_with_crlf(tmp_path):
    store = make_store(tmp_path)
    raw = b"Subject: x\r\n\r\nline one\r\nline two\r\n"
    uid = store.deliver("INBOX", io.BytesIO(raw))
    name = os.listdir(tmp_path / "Maildir" / "new")[0]
    assert (tmp_path / "Maildir" / "new" / name).read_bytes() == raw.replace(b"\r\n", b"\n")
    box = store.open_mailbox("INBOX")
    [info] = box.messages()
    assert info.uid == uid and info.size == len(raw)
    assert f",S={len(raw) - 4},W={len(raw)}" in name and info.guid == name
    with box.open_message(uid) as stream:
        assert stream.read() == raw


def test_lf_input_and_big_message_streamed(tmp_path):
    store = make_store(tmp_path)
    body = b"".join(b"line %d\n" % i for i in range(50000)) + b"last line without newline"
    uid = store.deliver("INBOX", io.BytesIO(body))
    box = store.open_mailbox("INBOX")
    served = box.open_message(uid).read()
    assert served == body.replace(b"\n", b"\r\n")
    assert box.messages()[0].size == len(served)


def test_flags_keywords_at_delivery(tmp_path):
    store = make_store(tmp_path)
    uid = store.deliver("INBOX", message(), flags=frozenset({"\\Seen", "\\Flagged"}),
                        keywords=frozenset({"$Forwarded"}), internal_date=1_000_000_000)
    [info] = store.open_mailbox("INBOX").messages()
    assert info.uid == uid
    assert info.flags == {"\\Seen", "\\Flagged"} and info.keywords == {"$Forwarded"}
    assert info.internal_date == 1_000_000_000
    [name] = os.listdir(tmp_path / "Maildir" / "cur")
    assert name.endswith(":2,FSa")
    assert (tmp_path / "Maildir" / "dovecot-keywords").read_text() == "0 $Forwarded\n"


def test_set_flags_modes_and_modseq(tmp_path):
    store = make_store(tmp_path)
    for _ in range(3):
        store.deliver("INBOX", message())
    box = store.open_mailbox("INBOX")
    start = box.highestmodseq
    changed, failed = box.set_flags([1, 2], frozenset({"\\Seen"}), frozenset({"work"}), "add")
    assert [i.uid for i in changed] == [1, 2] and failed == []
    assert all(i.modseq > start for i in changed)
    assert box.highestmodseq == max(i.modseq for i in changed)
    changed, _ = box.set_flags([1], frozenset(), frozenset({"work"}), "remove")
    assert changed[0].flags == {"\\Seen"} and changed[0].keywords == frozenset()
    changed, _ = box.set_flags([2], frozenset({"\\Answered"}), frozenset(), "replace")
    assert changed[0].flags == {"\\Answered"} and changed[0].keywords == frozenset()
    # UNCHANGEDSINCE (RFC 7162 §3.1.3): uid 2 changed after `start`
    changed, failed = box.set_flags([2, 3], frozenset({"\\Flagged"}), frozenset(), "add",
                                    unchangedsince=start)
    assert failed == [2] and [i.uid for i in changed] == [3]
    # another session sees it all after reopening
    again = store.open_mailbox("INBOX")
    assert {i.uid: i.flags for i in again.messages()} == {
        1: {"\\Seen"}, 2: {"\\Answered"}, 3: {"\\Flagged"}}
    assert again.highestmodseq == box.highestmodseq


def test_refresh_reports_other_sessions_changes(tmp_path):
    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    store.deliver("INBOX", message())
    first = store.open_mailbox("INBOX")
    other = make_store(tmp_path).open_mailbox("INBOX")
    other.set_flags([1], frozenset({"\\Deleted"}), frozenset(), "add")
    other.expunge()
    uid = store.deliver("INBOX", message())
    other.set_flags([2], frozenset({"\\Seen"}), frozenset(), "add")
    changes = first.refresh()
    kinds = {(c.kind, c.uid) for c in changes}
    assert kinds == {("expunge", 1), ("exists", uid), ("flags", 2)}
    assert [i.uid for i in first.messages()] == [2, uid]
    assert first.refresh() == []


def test_expunge_all_deleted_and_given_uids(tmp_path):
    store = make_store(tmp_path)
    for _ in range(4):
        store.deliver("INBOX", message())
    box = store.open_mailbox("INBOX")
    box.set_flags([2, 3], frozenset({"\\Deleted"}), frozenset(), "add")
    assert box.expunge() == [2, 3]
    assert box.expunge([4]) == [4]
    assert [i.uid for i in box.messages()] == [1]
    with pytest.raises(MessageGone):
        box.open_message(2)
    # the expunged records stay in dovecot-uidlist until a sync under its dotlock (as
    # Dovecot leaves them), which rewrites the file
    with box.folder.lock():
        box.folder.sync_locked()
    uidlist = (tmp_path / "Maildir" / "dovecot-uidlist").read_text().splitlines()
    assert [line.split()[0] for line in uidlist[1:]] == ["1"]
    assert " N5 " in uidlist[0]  # UIDs are never reused
    assert store.deliver("INBOX", message()) == 5


def test_copy_and_move_keep_flags_and_keywords(tmp_path):
    store = make_store(tmp_path)
    store.create_mailbox("Archive")
    store.deliver("INBOX", message("a"), flags=frozenset({"\\Seen"}), keywords=frozenset({"x"}))
    store.deliver("INBOX", message("b"))
    box = store.open_mailbox("INBOX")
    assert box.copy([1, 2], "Archive") == [(1, 1), (2, 2)]
    assert box.move([1], "Archive") == [(1, 3)]
    assert [i.uid for i in box.messages()] == [2]
    archive = store.open_mailbox("Archive")
    infos = {i.uid: i for i in archive.messages()}
    assert infos[1].flags == {"\\Seen"} and infos[1].keywords == {"x"}
    assert infos[3].flags == {"\\Seen"} and infos[2].flags == frozenset()
    assert archive.open_message(3).read() == message("a").read()
    with pytest.raises(MailboxNotFound):
        box.copy([2], "Nope")


def test_append_and_readonly(tmp_path):
    store = make_store(tmp_path)
    box = store.open_mailbox("INBOX")
    uid = box.append(message(), flags=frozenset({"\\Draft"}))
    assert box.messages() == []  # the snapshot changes only in refresh
    assert [c.kind for c in box.refresh()] == ["exists"]
    assert box.messages()[0].uid == uid and box.messages()[0].flags == {"\\Draft"}
    ro = store.open_mailbox("INBOX", readonly=True)
    with pytest.raises(ReadOnlyMailbox):
        ro.set_flags([uid], frozenset({"\\Seen"}), frozenset(), "add")
    with pytest.raises(ReadOnlyMailbox):
        ro.expunge()


def test_folders_maildirplusplus(tmp_path):
    store = make_store(tmp_path, mail=special_mailboxes())
    store.create_mailbox("Work.Projects")
    store.create_mailbox("Ünïcode & more")
    listed = {i.name: i for i in store.list_mailboxes()}
    assert store.list_mailboxes()[0].name == "INBOX"
    assert set(listed) == {"INBOX", "Sent", "Trash", "Work", "Work.Projects", "Ünïcode & more"}
    assert listed["Work"].attributes == {"\\Noselect", "\\HasChildren"}
    assert listed["Work.Projects"].attributes == {"\\HasNoChildren"}
    assert listed["Sent"].special_use == "\\Sent" and listed["Trash"].special_use == "\\Trash"
    assert (tmp_path / "Maildir" / ".&ANw-n&AO8-code &- more" / "cur").is_dir()
    assert (tmp_path / "Maildir" / ".Work.Projects" / "maildirfolder").exists()
    with pytest.raises(MailboxExists):
        store.create_mailbox("Work.Projects")
    with pytest.raises(MailboxExists):
        store.create_mailbox("inbox")
    store.deliver("Work.Projects", message())
    store.rename_mailbox("Work", "Jobs")  # \Noselect parent: its children move
    with pytest.raises(MailboxNotFound):
        store.rename_mailbox("Work", "Jobs2")
    store.create_mailbox("Jobs")
    store.rename_mailbox("Jobs", "Old")
    names = {i.name for i in store.list_mailboxes()}
    assert "Old.Projects" in names and "Jobs.Projects" not in names
    assert len(store.open_mailbox("Old.Projects").messages()) == 1
    store.delete_mailbox("Old.Projects")
    with pytest.raises(MailboxNotFound):
        store.open_mailbox("Old.Projects")
    with pytest.raises(StoreError):
        store.delete_mailbox("INBOX")
    with pytest.raises(MailboxNotFound):
        store.deliver("Nope", message())


def test_rename_inbox_moves_messages(tmp_path):
    store = make_store(tmp_path)
    store.deliver("INBOX", message("one"))
    store.deliver("INBOX", message("two"))
    store.rename_mailbox("INBOX", "Old-Inbox")
    assert store.open_mailbox("INBOX").messages() == []
    assert len(store.open_mailbox("Old-Inbox").messages()) == 2


def test_layout_fs(tmp_path):
    store = make_store(tmp_path, layout="fs")
    assert store.separator == "/"
    store.create_mailbox("a/b")
    store.deliver("a/b", message())
    assert (tmp_path / "Maildir" / "a" / "b" / "new").is_dir()
    listed = {i.name: i.attributes for i in store.list_mailboxes()}
    assert listed["a"] == {"\\Noselect", "\\HasChildren"}
    assert listed["a/b"] == {"\\HasNoChildren"}
    with pytest.raises(InvalidMailboxName):
        store.create_mailbox("a/cur")


def test_subscriptions_file(tmp_path):
    store = make_store(tmp_path, mail=special_mailboxes())
    store.create_mailbox("Work.Projects")
    store.set_subscribed("Work.Projects", True)
    store.set_subscribed("INBOX", True)
    store.set_subscribed("Work.Projects", True)
    assert (tmp_path / "Maildir" / "subscriptions").read_text() == \
        "V\t2\n\nWork\tProjects\nINBOX\n"
    assert store.subscriptions() == ["Work.Projects", "INBOX", "Sent"]
    store.set_subscribed("Work.Projects", False)
    assert store.subscriptions() == ["INBOX", "Sent"]


@pytest.mark.parametrize("name", ["", "..", "a..b", ".hidden", "a/../../etc", "../x", "a\x00b",
                                  "a\nb", "~root", "x" * 1000, "a." * 40 + "a"])
def test_names_that_would_escape_are_refused(tmp_path, name):
    store = make_store(tmp_path)
    with pytest.raises(InvalidMailboxName):
        store.create_mailbox(name)
    with pytest.raises(InvalidMailboxName):
        store.open_mailbox(name)


def test_session_lock(tmp_path):
    store = make_store(tmp_path)
    lock = store.lock_session("INBOX")
    with pytest.raises(MailboxInUse):
        make_store(tmp_path).lock_session("INBOX")
    lock.release()
    with make_store(tmp_path).lock_session("INBOX"):
        pass


def test_quota_enforced_at_delivery(tmp_path):
    from roost.store import QuotaExceeded
    from roost.store.location import MailSettings

    store = make_store(tmp_path, mail=MailSettings(plugin={"quota_rule": "*:storage=1k"}))
    store.deliver("INBOX", io.BytesIO(b"x" * 600))
    assert store.quota_usage() == (600, 1024)
    with pytest.raises(QuotaExceeded):
        store.deliver("INBOX", io.BytesIO(b"y" * 600))
    assert len(os.listdir(tmp_path / "Maildir" / "new")) == 1
    assert os.listdir(tmp_path / "Maildir" / "tmp") == []


def test_files_belong_to_the_mail_user(tmp_path):
    """Running as root for a user with its own UID (mail_uid / userdb uid), every file and
    directory the store creates is that user's, as when Dovecot drops privileges."""
    from roost.store.location import MailLocation
    from roost.store.maildir import MaildirUserStore

    uid = 5000 if os.getuid() == 0 else os.getuid()
    gid = 5000 if os.getuid() == 0 else os.getgid()
    store = MaildirUserStore("alice", MailLocation("maildir", str(tmp_path / "Maildir"),
                                                   uid=uid, gid=gid))
    store.deliver("INBOX", message(), keywords=frozenset({"kw"}))
    store.create_mailbox("Sub.Folder")
    store.set_subscribed("Sub.Folder", True)
    box = store.open_mailbox("INBOX")
    box.set_flags([1], frozenset({"\\Seen"}), frozenset(), "add")
    box.copy([1], "Sub.Folder")
    box.header(1)
    store.lock_session("INBOX").release()
    owners = set()
    for directory, dirs, files in os.walk(tmp_path / "Maildir"):
        for name in dirs + files:
            st = os.stat(os.path.join(directory, name))
            owners.add((st.st_uid, st.st_gid, name if st.st_uid != uid else ""))
    assert owners == {(uid, gid, "")}


def test_header_cache(tmp_path):
    store = make_store(tmp_path)
    for i in range(3):
        store.deliver("INBOX", message(f"s{i}", body="b" * 100))
    box = store.open_mailbox("INBOX")
    expected = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: s1\r\n\r\n"
    assert box.header(2) == expected
    cache = tmp_path / "Maildir" / "roost.cache"
    assert expected in cache.read_bytes()
    # served from the cache: works with the files moved away
    fresh = make_store(tmp_path).open_mailbox("INBOX")
    os.rename(tmp_path / "Maildir" / "new", tmp_path / "elsewhere")
    os.mkdir(tmp_path / "Maildir" / "new")
    with pytest.raises(MessageGone):
        fresh.open_message(2)
    assert fresh.header(2) == expected
    os.rmdir(tmp_path / "Maildir" / "new")
    os.rename(tmp_path / "elsewhere", tmp_path / "Maildir" / "new")
    cache.write_bytes(cache.read_bytes()[:-5])  # damaged: dropped, rebuilt on demand
    assert make_store(tmp_path).open_mailbox("INBOX").header(2) == expected
    with pytest.raises(MessageGone):
        box.header(9)


def test_file_system_errors_become_store_errors(tmp_path, caplog):
    import logging

    from roost.store.maildir.errors import INTERNAL_ERROR, StorageFailure

    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    tmp = tmp_path / "Maildir" / "tmp"
    tmp.rmdir()
    tmp.write_bytes(b"not a directory")
    with caplog.at_level(logging.ERROR, logger="roost.store"):
        with pytest.raises(StorageFailure, match="Internal error occurred"):
            store.deliver("INBOX", message())
    assert str(tmp) in caplog.text and str(tmp) not in INTERNAL_ERROR


@pytest.mark.parametrize("hardlinks", [True, False])
def test_copy_hard_links_or_copies(tmp_path, hardlinks):
    from roost.store.location import MailSettings

    store = make_store(tmp_path, mail=MailSettings(maildir_copy_with_hardlinks=hardlinks))
    store.create_mailbox("Copies")
    store.deliver("INBOX", message(), internal_date=1_200_000_000)
    box = store.open_mailbox("INBOX")
    [(source_uid, new_uid)] = box.copy([1], "Copies")
    assert source_uid == 1
    source = box.message_path(1)
    target = store.open_mailbox("Copies").message_path(new_uid)
    assert (os.stat(source).st_ino == os.stat(target).st_ino) is hardlinks
    [info] = store.open_mailbox("Copies").messages()
    assert info.internal_date == 1_200_000_000 and info.guid != box.messages()[0].guid


def test_keywords_beyond_the_26_letters(tmp_path):
    """Letters a-z name the first 26 keywords (dovecot-keywords); more keywords are kept in
    roost.index (Dovecot keeps those in its own index), with MODSEQs, copies and rebuild
    of the letters' part."""
    store = make_store(tmp_path)
    store.create_mailbox("Copies")
    first = frozenset(f"k{i:02d}" for i in range(26))
    uid = store.deliver("INBOX", message(), keywords=first)
    extra = frozenset({"beyond-1", "beyond-2"})
    uid2 = store.deliver("INBOX", message(), keywords=extra | {"k00"})
    box = store.open_mailbox("INBOX")
    infos = {i.uid: i for i in box.messages()}
    assert infos[uid].keywords == first and infos[uid2].keywords == extra | {"k00"}
    before = box.highestmodseq
    changed, _ = box.set_flags([uid], frozenset(), frozenset({"beyond-3"}), "add")
    assert changed[0].keywords == first | {"beyond-3"} and changed[0].modseq > before
    changed, _ = box.set_flags([uid2], frozenset(), frozenset({"beyond-1", "k00"}), "remove")
    assert changed[0].keywords == {"beyond-2"}
    again = make_store(tmp_path).open_mailbox("INBOX")
    assert {i.uid: i.keywords for i in again.messages()} == {
        uid: first | {"beyond-3"}, uid2: frozenset({"beyond-2"})}
    pairs = dict(box.copy([uid, uid2], "Copies"))
    copies = {i.uid: i.keywords for i in store.open_mailbox("Copies").messages()}
    assert copies[pairs[uid]] == first | {"beyond-3"}
    assert copies[pairs[uid2]] == {"beyond-2"}
    other = make_store(tmp_path).open_mailbox("INBOX")
    other.set_flags([uid2], frozenset(), frozenset({"beyond-4"}), "replace")
    changes = box.refresh()
    assert [(c.kind, c.uid, c.info.keywords) for c in changes] == [
        ("flags", uid2, frozenset({"beyond-4"}))]
