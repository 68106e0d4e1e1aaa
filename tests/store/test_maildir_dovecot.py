"""Dovecot compatibility, checked against Debian's Dovecot 2.3.19 (doveadm) on the same Maildir:
what Dovecot wrote, roost reads with the same UIDs, UIDVALIDITY, flags, keywords and folders,
and the other way round."""

from __future__ import annotations

import io

import pytest

from tests.store.maildir_helpers import Doveadm, make_store, message

MESSAGES = [
    b"From: a@example.test\nSubject: one\n\nfirst\n",
    b"From: a@example.test\r\nSubject: two\r\n\r\nsecond\r\n",
    b"From: a@example.test\nSubject: three\n\nthird\n",
    b"From: a@example.test\nSubject: four\n\nfourth\n",
]


def roost_view(store, mailbox="INBOX"):
    box = store.open_mailbox(mailbox)
    return box, {i.uid: i.flags | i.keywords for i in box.messages()}


def test_dovecot_written_maildir_read_by_roost(open_tmp):
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir")
    for index, text in enumerate(MESSAGES):
        if index % 2:
            dovecot.save(text)
        else:
            dovecot.lda(text)
    dovecot.run("flags", "add", "\\Seen $Forwarded", "mailbox", "INBOX", "uid", "1")
    dovecot.run("flags", "add", "\\Flagged \\Answered work", "mailbox", "INBOX", "uid", "3")
    dovecot.run("flags", "add", "\\Deleted", "mailbox", "INBOX", "uid", "2")
    dovecot.run("expunge", "mailbox", "INBOX", "uid", "2")
    dovecot.run("mailbox", "create", "Work.Projects", "Sent", "Ünï")
    dovecot.run("mailbox", "subscribe", "Work.Projects", "Ünï")
    dovecot.save(MESSAGES[0], "Work.Projects")
    dovecot.run("flags", "add", "\\Draft", "mailbox", "Work.Projects", "all")

    expected = dovecot.fetch()
    status = dovecot.status()
    store = make_store(open_tmp)
    box, flags = roost_view(store)
    assert flags == expected and sorted(flags) == [1, 3, 4]
    assert box.uidvalidity == status["uidvalidity"] and box.uidnext == status["uidnext"]
    assert flags[1] == {"\\Seen", "$Forwarded"} and flags[3] == {"\\Flagged", "\\Answered", "work"}
    sizes = {i.uid: i.size for i in box.messages()}
    assert sizes[1] == len(MESSAGES[0].replace(b"\n", b"\r\n"))
    assert box.open_message(3).read() == MESSAGES[2].replace(b"\n", b"\r\n")
    _sub, projects = roost_view(store, "Work.Projects")
    assert projects == dovecot.fetch("Work.Projects")
    names = {i.name for i in store.list_mailboxes()}
    assert names == dovecot.mailboxes()  # \Noselect parent "Work" included
    assert set(store.subscriptions()) == dovecot.subscribed()


def test_roost_written_maildir_read_by_dovecot(open_tmp):
    store = make_store(open_tmp)
    for index, text in enumerate(MESSAGES):
        store.deliver("INBOX", io.BytesIO(text),
                      flags=frozenset({"\\Seen"}) if index == 3 else frozenset())
    box = store.open_mailbox("INBOX")
    box.set_flags([1], frozenset({"\\Flagged"}), frozenset({"$Forwarded", "work"}), "add")
    box.set_flags([3], frozenset({"\\Deleted", "\\Answered"}), frozenset({"work"}), "add")
    box.set_flags([2], frozenset({"\\Deleted"}), frozenset(), "add")
    box.expunge([2])
    store.create_mailbox("Work.Projects")
    store.create_mailbox("Ünï & co")
    store.create_mailbox("INBOX.child")
    store.create_mailbox("Gone")
    store.rename_mailbox("Gone", "Renamed.Deeper")
    store.create_mailbox("Deleted")
    store.delete_mailbox("Deleted")
    store.set_subscribed("Work.Projects", True)
    store.set_subscribed("Ünï & co", True)
    store.deliver("Work.Projects", message(), keywords=frozenset({"later"}))
    box.refresh()
    mine = {i.uid: i.flags | i.keywords for i in box.messages()}

    dovecot = Doveadm(open_tmp, open_tmp / "Maildir")
    assert dovecot.fetch() == mine
    status = dovecot.status()
    assert (status["uidvalidity"], status["uidnext"], status["messages"]) == (
        box.uidvalidity, box.uidnext, 3)
    listed = {i.name: i.attributes for i in store.list_mailboxes()}
    assert "\\HasChildren" in listed["INBOX"] and "\\Noselect" in listed["Renamed"]
    assert dovecot.fetch("Work.Projects") == {1: frozenset({"later"})}
    assert dovecot.status("Work.Projects")["uidvalidity"] == store.open_mailbox(
        "Work.Projects").uidvalidity
    assert dovecot.mailboxes() == {"INBOX", "INBOX.child", "Work", "Work.Projects", "Ünï & co",
                                   "Renamed", "Renamed.Deeper"}
    assert dovecot.mailboxes() == {i.name for i in store.list_mailboxes()}
    assert dovecot.subscribed() == {"Work.Projects", "Ünï & co"}
    body = dovecot.run("fetch", "text", "mailbox", "INBOX", "uid", "4")
    assert "fourth" in body


def test_interleaved_writers_agree(open_tmp):
    """roost and Dovecot deliver into and flag the same mailbox in turns."""
    store = make_store(open_tmp)
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir")
    assert store.deliver("INBOX", message("r1")) == 1
    dovecot.save(MESSAGES[0])
    assert store.deliver("INBOX", message("r2")) == 3
    dovecot.save(MESSAGES[1])
    box = store.open_mailbox("INBOX")
    assert [i.uid for i in box.messages()] == [1, 2, 3, 4]
    before = box.highestmodseq
    dovecot.run("flags", "add", "\\Seen kw1", "mailbox", "INBOX", "uid", "3")
    changes = box.refresh()
    assert [(c.kind, c.uid) for c in changes] == [("flags", 3)]
    assert changes[0].info.flags == {"\\Seen"} and changes[0].info.keywords == {"kw1"}
    assert changes[0].info.modseq > before
    box.set_flags([4], frozenset({"\\Answered"}), frozenset({"kw2"}), "add")
    dovecot.run("expunge", "mailbox", "INBOX", "uid", "1")
    assert [(c.kind, c.uid) for c in box.refresh()] == [("expunge", 1)]
    assert dovecot.fetch() == {i.uid: i.flags | i.keywords for i in box.messages()}
    assert store.deliver("INBOX", message("r3")) == 5
    assert sorted(dovecot.fetch()) == [2, 3, 4, 5]
    # new mailboxes' UIDVALIDITYs come from the shared dovecot-uidvalidity: never repeated
    store.create_mailbox("ByRoost")
    dovecot.run("mailbox", "create", "ByDovecot")
    store.create_mailbox("ByRoostAgain")
    values = [box.uidvalidity, store.open_mailbox("ByRoost").uidvalidity,
              dovecot.status("ByDovecot")["uidvalidity"],
              store.open_mailbox("ByRoostAgain").uidvalidity]
    assert values == sorted(set(values))
    # Dovecot's mailbox list index notices folders roost creates, renames and deletes
    assert {"ByRoost", "ByDovecot", "ByRoostAgain"} <= dovecot.mailboxes()
    store.rename_mailbox("ByRoost", "Renamed.ByRoost")
    store.delete_mailbox("ByRoostAgain")
    assert dovecot.mailboxes() == {"INBOX", "ByDovecot", "Renamed", "Renamed.ByRoost"}


def test_layout_fs_round_trip(open_tmp):
    store = make_store(open_tmp, layout="fs")
    store.create_mailbox("a/b")
    store.deliver("a/b", message(), flags=frozenset({"\\Seen"}))
    store.deliver("INBOX", message())
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir", layout="fs")
    assert dovecot.mailboxes() == {"INBOX", "a", "a/b"}
    assert dovecot.fetch("a/b") == {1: frozenset({"\\Seen"})}
    dovecot.run("mailbox", "create", "c/d")
    dovecot.save(MESSAGES[0], "c/d")
    assert {i.name for i in store.list_mailboxes()} >= {"c", "c/d", "a/b"}
    assert [i.uid for i in store.open_mailbox("c/d").messages()] == [1]


def test_control_and_index_directories_shared(open_tmp):
    """CONTROL= and INDEX= elsewhere: dovecot-uidlist, dovecot-keywords, subscriptions and
    dovecot-uidvalidity live where Dovecot looks for them."""
    options = f":CONTROL={open_tmp}/ctl:INDEX={open_tmp}/idx"
    store = make_store(open_tmp, control=f"{open_tmp}/ctl", index=f"{open_tmp}/idx")
    store.deliver("INBOX", message(), keywords=frozenset({"kw1"}))
    store.create_mailbox("Sub")
    store.set_subscribed("Sub", True)
    store.deliver("Sub", message(), flags=frozenset({"\\Flagged"}))
    assert (open_tmp / "ctl" / ".INBOX" / "dovecot-uidlist").exists()
    assert (open_tmp / "ctl" / ".INBOX" / "dovecot-keywords").exists()
    assert (open_tmp / "ctl" / "subscriptions").exists()
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir", options=options)
    assert dovecot.fetch() == {1: frozenset({"kw1"})}
    assert dovecot.fetch("Sub") == {1: frozenset({"\\Flagged"})}
    assert dovecot.subscribed() == {"Sub"}
    dovecot.save(MESSAGES[0])
    dovecot.run("flags", "add", "kw2", "mailbox", "INBOX", "uid", "2")
    box = store.open_mailbox("INBOX")
    assert {i.uid: i.flags | i.keywords for i in box.messages()} == dovecot.fetch()
    assert box.uidvalidity == dovecot.status()["uidvalidity"]


def test_slash_separator_over_maildirplusplus(open_tmp):
    """`separator = /` with the Maildir++ layout: "a/b" is `.a.b` on disk for both."""
    from roost.store.location import MailSettings

    store = make_store(open_tmp, mail=MailSettings(separator="/"))
    assert store.separator == "/"
    store.create_mailbox("Lists/dovecot")
    store.deliver("Lists/dovecot", message())
    assert (open_tmp / "Maildir" / ".Lists.dovecot" / "cur").is_dir()
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir", separator="/")
    assert dovecot.mailboxes() == {"INBOX", "Lists", "Lists/dovecot"}
    assert sorted(dovecot.fetch("Lists/dovecot")) == [1]
    dovecot.run("mailbox", "create", "Projects/2026")
    assert "Projects/2026" in {i.name for i in store.list_mailboxes()}


def test_courier_style_inbox_prefix(open_tmp):
    """`prefix = INBOX.` (Courier-IMAP layout): "INBOX.Sent" is `.Sent` on disk, the
    subscriptions file holds names without the prefix, as Dovecot keeps them."""
    from roost.store import InvalidMailboxName
    from roost.store.location import AutoMailbox, MailSettings

    mail = MailSettings(prefix="INBOX.", mailboxes=(AutoMailbox("Sent", "\\Sent", "subscribe"),))
    store = make_store(open_tmp, mail=mail)
    store.create_mailbox("INBOX.Lists.roost")
    store.deliver("INBOX.Lists.roost", message())
    store.set_subscribed("INBOX.Lists.roost", True)
    with pytest.raises(InvalidMailboxName):
        store.create_mailbox("Outside")
    listed = {i.name: i for i in store.list_mailboxes()}
    assert set(listed) == {"INBOX", "INBOX.Sent", "INBOX.Lists", "INBOX.Lists.roost"}
    assert listed["INBOX.Sent"].special_use == "\\Sent"
    assert (open_tmp / "Maildir" / ".Lists.roost" / "cur").is_dir()
    assert (open_tmp / "Maildir" / "subscriptions").read_text().endswith("\nLists\troost\n")
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir", prefix="INBOX.")
    assert dovecot.mailboxes() == set(listed)
    assert dovecot.subscribed() == {"INBOX.Lists.roost"}
    assert sorted(dovecot.fetch("INBOX.Lists.roost")) == [1]
    assert set(store.subscriptions()) == {"INBOX.Lists.roost", "INBOX.Sent"}


def test_maildirsize_kept_for_dovecot_quota(open_tmp):
    """With Dovecot's `quota = maildir` the Maildir++ `maildirsize` file holds the usage;
    roost's deliveries, copies and expunges append to it, so Dovecot's quota stays right
    (Dovecot does not notice files added behind its back)."""
    import math
    import re

    extra = ("mail_plugins = quota\nplugin {\n  quota = maildir:User quota\n"
             "  quota_rule = *:storage=10M\n}\n")
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir", extra=extra)
    dovecot.save(MESSAGES[0])
    dovecot.run("quota", "get")  # creates maildirsize
    assert (open_tmp / "Maildir" / "maildirsize").exists()
    store = make_store(open_tmp)
    store.create_mailbox("Keep")
    store.deliver("INBOX", io.BytesIO(b"Subject: big\n\n" + b"x" * 5000 + b"\n"))
    store.deliver("INBOX", io.BytesIO(b"Subject: other\n\n" + b"y" * 3000 + b"\n"))
    box = store.open_mailbox("INBOX")
    box.copy([2], "Keep")
    box.expunge([3])
    used, _limit = store.quota_usage()
    out = dovecot.run("quota", "get")
    storage = int(re.search(r"STORAGE\s+(\d+)", out).group(1))
    count = int(re.search(r"MESSAGE\s+(\d+)", out).group(1))
    assert count == 3 and storage == math.ceil(used / 1024)


def test_concurrent_writers_share_the_uidlist_lock(open_tmp):
    """Dovecot (doveadm save, in a loop) and roost deliver into one INBOX at the same time:
    both honour dovecot-uidlist.lock, so every message gets exactly one UID and both sides
    agree on all of them."""
    import subprocess
    import sys

    from tests.conftest import REPO

    store = make_store(open_tmp)
    store.deliver("INBOX", message("first"))
    dovecot = Doveadm(open_tmp, open_tmp / "Maildir")
    dovecot.fetch()  # the tree now belongs to the mail user
    writer = (
        "import io, sys\n"
        "from roost.store.location import MailLocation\n"
        "from roost.store.maildir import MaildirUserStore\n"
        "location = MailLocation('maildir', sys.argv[1], uid=int(sys.argv[2]),"
        " gid=int(sys.argv[3]))\n"
        "store = MaildirUserStore('alice', location)\n"
        "for i in range(40):\n"
        "    text = b'Subject: roost %d\\n\\nx\\n' % i\n"
        "    print(store.deliver('INBOX', io.BytesIO(text)), flush=True)\n")
    roost = subprocess.Popen([sys.executable, "-c", writer, str(open_tmp / "Maildir"),
                              str(dovecot.uid), str(dovecot.gid)],
                             stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO)})
    try:
        for i in range(12):
            dovecot.save(b"Subject: dovecot %d\n\ny\n" % i)
    finally:
        out, _err = roost.communicate(timeout=120)
    roost_uids = [int(line) for line in out.split()]
    assert len(roost_uids) == 40 and len(set(roost_uids)) == 40
    seen = dovecot.fetch()
    assert len(seen) == 53 and set(roost_uids) <= set(seen)
    box = store.open_mailbox("INBOX")
    assert {i.uid for i in box.messages()} == set(seen)
    subjects = {box.open_message(uid).read().split(b"\r\n")[0] for uid in roost_uids}
    assert subjects == {b"Subject: roost %d" % i for i in range(40)}
