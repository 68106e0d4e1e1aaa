"""The mbox backend: format, locking, UIDs in Dovecot's headers, flags, expunge, folders."""

from __future__ import annotations

import io
import os
import socket
import time

import pytest
from hypothesis import given, settings, strategies as st

from roost.auth.lookup import UserRecord
from roost.store import (InvalidMailboxName, MailboxExists, MailboxInUse, MailboxNotFound,
                         MessageGone, QuotaExceeded, StoreError)
from roost.store.location import MailSettings, resolve_location
from roost.store.mbox import format as mboxfmt, open_mbox_store
from roost.store.mbox.lock import DotLock, LockedMbox, MboxLockTimeout
from roost.store.mbox.store import MboxUserStore
from roost.store.quota import QuotaRule

MESSAGE = b"Subject: hello\r\nFrom: a@example.org\r\n\r\nline one\r\nFrom the start\r\n>From quoted\r\n"


@pytest.fixture
def store(tmp_path):
    return MboxUserStore("alice", str(tmp_path / "mail"), str(tmp_path / "spool" / "alice"))


def read_all(mailbox, uid) -> bytes:
    with mailbox.open_message(uid) as stream:
        return stream.read()


def test_deliver_writes_dovecot_headers_and_escapes_from(store):
    assert store.deliver("INBOX", io.BytesIO(MESSAGE), sender="bob@example.org") == 1
    assert store.deliver("INBOX", io.BytesIO(MESSAGE)) == 2
    text = open(store.inbox, "rb").read()
    assert text.startswith(b"From bob@example.org  ")
    assert text.count(b"\nFrom ") == 1  # the body's From line was escaped
    assert b"\n>From the start\n" in text and b"\n>From quoted\n" in text
    assert b"X-IMAPbase: " in text and b" 0000000002\n" in text  # the last UID used
    assert b"X-UID: 1\n" in text and b"X-UID: 2\n" in text
    assert text.endswith(b"\n\n")
    assert oct(os.stat(store.inbox).st_mode & 0o777) == "0o600"


def test_reading_hides_metadata_and_gives_crlf(store):
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    with store.open_mailbox("INBOX") as mailbox:
        [info] = mailbox.messages()
        data = read_all(mailbox, info.uid)
    assert data == MESSAGE.replace(b"\nFrom the", b"\n>From the")
    assert info.size == len(data)
    assert info.flags == frozenset() and info.uid == 1


def test_incoming_metadata_headers_are_dropped(store):
    forged = b"X-UID: 77\r\nStatus: RO\r\nX-Status: D\r\nX-Keywords: evil\r\nSubject: x\r\n\r\nb\r\n"
    store.deliver("INBOX", io.BytesIO(forged))
    with store.open_mailbox("INBOX") as mailbox:
        [info] = mailbox.messages()
        assert info.uid == 1 and info.flags == frozenset() and info.keywords == frozenset()
        assert read_all(mailbox, 1) == b"Subject: x\r\n\r\nb\r\n"


def test_flags_keywords_and_expunge_persist(store):
    for _ in range(3):
        store.deliver("INBOX", io.BytesIO(MESSAGE))
    mailbox = store.open_mailbox("INBOX")
    changed, failed = mailbox.set_flags([1, 3], frozenset({"\\Seen", "\\Deleted"}),
                                        frozenset({"$Label1"}), "add")
    assert [m.uid for m in changed] == [1, 3] and failed == []
    assert mailbox.expunge([3]) == [3]
    assert [m.uid for m in mailbox.messages()] == [1, 2]
    again = store.open_mailbox("INBOX")
    first = again.messages()[0]
    assert first.flags == {"\\Seen", "\\Deleted"} and first.keywords == {"$Label1"}
    assert again.expunge() == [1]
    assert [m.uid for m in again.messages()] == [2]
    assert store.deliver("INBOX", io.BytesIO(MESSAGE)) == 4  # UIDs are never reused
    assert again.uidvalidity == mailbox.uidvalidity


def test_refresh_reports_changes_from_other_sessions(store):
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    first = store.open_mailbox("INBOX")
    second = store.open_mailbox("INBOX")
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    second.set_flags([1], frozenset({"\\Flagged"}), frozenset(), "add")
    changes = first.refresh()
    assert [(c.kind, c.uid) for c in changes] == [("flags", 1), ("exists", 2)]
    second.set_flags([1], frozenset({"\\Deleted"}), frozenset(), "add")
    second.expunge()
    assert [(c.kind, c.uid) for c in first.refresh()] == [("expunge", 1)]
    with pytest.raises(MessageGone):
        first.open_message(1)


def test_foreign_messages_get_uids_in_order(store, tmp_path):
    os.makedirs(os.path.dirname(store.inbox))
    postfix_style = (b"From MAILER-DAEMON  Mon Nov 23 10:00:00 2026\n"
                     b"Return-Path: <>\nDelivered-To: alice@example.test\nSubject: one\n\nbody\n\n"
                     b"From someone@example.org  Mon Nov 23 10:00:01 2026\n"
                     b"Subject: two\n\n>From escaped\n\n")
    with open(store.inbox, "wb") as handle:
        handle.write(postfix_style)
    mailbox = store.open_mailbox("INBOX")
    assert [m.uid for m in mailbox.messages()] == [1, 2]
    assert read_all(mailbox, 2) == b"Subject: two\r\n\r\n>From escaped\r\n"
    assert store.deliver("INBOX", io.BytesIO(MESSAGE)) == 3
    with open(store.inbox, "ab") as handle:  # local(8) appends again, without X-UID
        handle.write(b"From x@y  Mon Nov 23 11:00:00 2026\nSubject: four\n\nb\n\n")
    assert [(c.kind, c.uid) for c in mailbox.refresh()] == [("exists", 3), ("exists", 4)]
    assert b"X-UID: 4\n" in open(store.inbox, "rb").read()
    readonly = store.open_mailbox("INBOX", readonly=True)
    assert [m.uid for m in readonly.messages()] == [1, 2, 3, 4]


def test_content_length_lets_unescaped_from_lines_through(tmp_path):
    # Dovecot writes Content-Length and does not escape body From lines
    body = b"body\nFrom here\n"
    data = (b"From z@vm  Mon Nov 23 22:10:49 2026\nSubject: one\nX-IMAPbase: 1 0000000002\n"
            b"X-UID: 1\nStatus: \nContent-Length: %d\n\n" % len(body) + body + b"\n")
    [entry] = mboxfmt.scan(data)
    assert data[entry.body_start:entry.end] == body and entry.uid == 1


def test_internal_date_comes_from_the_from_line(store):
    when = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))
    store.deliver("INBOX", io.BytesIO(MESSAGE), internal_date=when)
    assert open(store.inbox, "rb").read().startswith(b"From alice  Wed Mar  4 05:06:07 2026\n")
    assert store.open_mailbox("INBOX").messages()[0].internal_date == when


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600))
def test_scan_never_fails_on_garbage(data):
    for entry in mboxfmt.scan(data):
        assert 0 <= entry.start <= entry.header_start <= entry.body_start <= entry.end <= len(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"From x", b"", b"Subject: s", b">From y", b"a: b", b".",
                                 b"From nobody  Mon Nov 23 10:00:00 2026", b" folded"]),
                max_size=12))
def test_any_message_survives_a_round_trip(tmp_path_factory, lines):
    root = tmp_path_factory.mktemp("mbox")
    store = MboxUserStore("u", str(root / "mail"), str(root / "inbox"))
    message = b"Subject: t\r\n\r\n" + b"".join(line + b"\r\n" for line in lines)
    store.deliver("INBOX", io.BytesIO(message))
    store.deliver("INBOX", io.BytesIO(message))
    mailbox = store.open_mailbox("INBOX")
    expected = b"".join(b">" + line if line.startswith(b"From ") else line
                        for line in message.splitlines(keepends=True))
    assert [read_all(mailbox, m.uid) for m in mailbox.messages()] == [expected, expected]


def test_stale_dotlock_of_dead_process_is_broken(tmp_path):
    path = str(tmp_path / "inbox")
    with open(path + ".lock", "w") as handle:
        handle.write(f"999999999:{socket.gethostname()}")
    with DotLock(path, timeout=2):
        assert open(path + ".lock").read().startswith(f"{os.getpid()}:")
    assert not os.path.exists(path + ".lock")


def test_old_dotlock_is_broken_after_the_change_timeout(tmp_path):
    path = str(tmp_path / "inbox")
    open(path + ".lock", "w").close()  # Postfix's empty lock file
    old = time.time() - 10
    os.utime(path + ".lock", (old, old))
    with DotLock(path, timeout=2, stale_timeout=5):
        pass


def test_live_dotlock_times_out(tmp_path):
    path = str(tmp_path / "inbox")
    with DotLock(path):
        with pytest.raises(MboxLockTimeout):
            DotLock(path, timeout=0.3).acquire()


def test_fcntl_lock_excludes_threads_of_one_process(tmp_path):
    path = str(tmp_path / "inbox")
    open(path, "w").close()
    with LockedMbox(path, exclusive=False):
        with pytest.raises(MboxLockTimeout):
            with LockedMbox(path, exclusive=True, timeout=0.3):
                pass


def test_mailbox_names_cannot_escape(store):
    for name in ("../x", "a/../../b", "/etc/passwd", "~root/x", ".imap", "a//b", "x\x00y", ""):
        with pytest.raises(InvalidMailboxName):
            store.create_mailbox(name)


def test_folders_subscriptions_and_session_lock(store):
    store.create_mailbox("Sent")
    store.create_mailbox("Lists/rust")
    with pytest.raises(MailboxExists):
        store.create_mailbox("Sent")
    names = {m.name: m.attributes for m in store.list_mailboxes()}
    assert list(names)[0] == "INBOX"
    assert "\\Noselect" in names["Lists"] and "\\HasChildren" in names["Lists"]
    assert "Lists/rust" in names and "Sent" in names
    store.open_mailbox("Sent").append(io.BytesIO(MESSAGE), flags=frozenset({"\\Seen"}))
    store.rename_mailbox("Sent", "Archive")
    assert store.open_mailbox("Archive").messages()[0].flags == {"\\Seen"}
    store.delete_mailbox("Archive")
    with pytest.raises(MailboxNotFound):
        store.open_mailbox("Archive")
    store.set_subscribed("Lists/rust", True)
    assert store.subscriptions() == ["Lists/rust"]
    with store.lock_session("INBOX"):
        with pytest.raises(MailboxInUse):
            store.lock_session("INBOX")
    store.lock_session("INBOX").release()


def test_copy_and_move_between_mbox_files(store):
    store.create_mailbox("Trash")
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    inbox = store.open_mailbox("INBOX")
    assert inbox.copy([1], "Trash") == [(1, 1)]
    assert inbox.move([2], "Trash") == [(2, 2)]
    assert [m.uid for m in inbox.messages()] == [1]
    assert len(store.open_mailbox("Trash").messages()) == 2


def test_rename_inbox_moves_messages(store):
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    store.rename_mailbox("INBOX", "Old")
    assert store.open_mailbox("INBOX").messages() == []
    assert len(store.open_mailbox("Old").messages()) == 1


def test_quota_refuses_delivery(tmp_path):
    store = MboxUserStore("u", str(tmp_path / "mail"), str(tmp_path / "inbox"),
                          quota=QuotaRule.from_settings({"quota_rule": "*:storage=1K"}))
    store.deliver("INBOX", io.BytesIO(b"Subject: s\r\n\r\n" + b"x" * 900 + b"\r\n"))
    with pytest.raises(QuotaExceeded) as caught:
        store.deliver("INBOX", io.BytesIO(b"Subject: s\r\n\r\n" + b"x" * 900 + b"\r\n"))
    assert str(caught.value) == "Quota exceeded (mailbox for user is full)"
    assert caught.value.limit == 1024
    assert store.quota_usage()[1] == 1024
    assert len(store.open_mailbox("INBOX").messages()) == 1


def test_open_mbox_store_from_mail_location(tmp_path):
    user = UserRecord("alice", "1000", "1000", str(tmp_path / "home"), None,
                      {"quota_rule": "*:storage=5M"})
    mail = MailSettings(mail_location=f"mbox:~/mail:INBOX={tmp_path}/spool/%u",
                        first_valid_uid=0, first_valid_gid=0)
    store = open_mbox_store(user, mail, resolve_location(user, mail))
    assert store.inbox == f"{tmp_path}/spool/alice"
    assert store.root == f"{tmp_path}/home/mail"
    assert store.quota.storage_limit == 5 * 1024 * 1024
    assert store.deliver("INBOX", io.BytesIO(MESSAGE)) == 1
    store.create_mailbox("Sent")
    if os.geteuid() == 0:  # what roost creates as root belongs to the mail user
        for path in (store.inbox, f"{store.root}/Sent", store.root):
            assert (os.stat(path).st_uid, os.stat(path).st_gid) == (1000, 1000), path


def test_missing_folder_is_not_created_by_delivery(store):
    with pytest.raises(MailboxNotFound):
        store.deliver("Nope", io.BytesIO(MESSAGE))
    with pytest.raises(StoreError):
        store.delete_mailbox("INBOX")


def test_from_line_takes_the_return_path_lmtp_wrote(store):
    store.deliver("INBOX", io.BytesIO(b"Return-Path: <bounce@example.org>\r\nSubject: s\r\n\r\nb\r\n"))
    store.deliver("INBOX", io.BytesIO(b"Return-Path: <>\r\nSubject: s\r\n\r\nb\r\n"))
    text = open(store.inbox, "rb").read()
    assert text.startswith(b"From bounce@example.org  ")
    assert b"\n\nFrom MAILER-DAEMON  " in text


def test_delivery_does_not_rescan_or_rewrite_after_a_dovecot_style_append(store):
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    inode = os.stat(store.inbox).st_ino
    data = open(store.inbox, "rb").read()
    # Dovecot appends with its own X-UID and bumps UIDNEXT in place
    data = data.replace(b" 0000000002\n", b" 0000000003\n", 1)
    data += b"From d@vm  Mon Nov 23 22:10:49 2026\nSubject: dc\nX-UID: 3\nStatus: \n\nbody\n\n"
    with open(store.inbox, "r+b") as handle:
        handle.write(data)
    assert store.deliver("INBOX", io.BytesIO(MESSAGE)) == 4
    assert os.stat(store.inbox).st_ino == inode  # appended in place, no rewrite
    assert [m.uid for m in store.open_mailbox("INBOX").messages()] == [1, 2, 3, 4]
    with open(store.inbox, "ab") as handle:  # local(8) style: no X-UID -> UIDs are written
        handle.write(b"From x@y  Mon Nov 23 11:00:00 2026\nSubject: plain\n\nb\n\n")
    assert store.deliver("INBOX", io.BytesIO(MESSAGE)) == 6
    assert [m.uid for m in store.open_mailbox("INBOX").messages()] == [1, 2, 3, 4, 5, 6]


def test_wait_changed_sees_another_writer(store):
    import asyncio

    store.deliver("INBOX", io.BytesIO(MESSAGE))
    mailbox = store.open_mailbox("INBOX")

    async def scenario() -> tuple[bool, bool]:
        quiet = await mailbox.wait_changed(0.3)
        loop = asyncio.get_running_loop()
        delivered: list[float] = []

        async def deliver_later() -> None:
            await asyncio.sleep(0.2)
            await asyncio.to_thread(store.deliver, "INBOX", io.BytesIO(MESSAGE))
            delivered.append(loop.time())

        task = asyncio.ensure_future(deliver_later())
        woke = await mailbox.wait_changed(10)
        await task
        # the contract: awake within about a second of the change (the poll interval is 0.5 s;
        # the margin absorbs a loaded test machine)
        assert loop.time() - delivered[0] < 1.5
        return quiet, woke

    assert asyncio.run(scenario()) == (False, True)
    assert [(c.kind, c.uid) for c in mailbox.refresh()] == [("exists", 2)]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["deliver", "flag", "unflag", "expunge", "reopen"]),
                          st.integers(0, 5)), max_size=25))
def test_store_matches_a_simple_model(tmp_path_factory, steps):
    root = tmp_path_factory.mktemp("model")
    store = MboxUserStore("u", str(root / "mail"), str(root / "inbox"))
    mailbox = store.open_mailbox("INBOX")
    model: dict[int, tuple[bytes, frozenset]] = {}
    next_uid = 1
    for action, number in steps:
        uids = sorted(model)
        target = uids[number % len(uids)] if uids else None
        if action == "deliver":
            body = b"Subject: m%d\r\n\r\nFrom line %d\r\n" % (next_uid, number)
            assert store.deliver("INBOX", io.BytesIO(body)) == next_uid
            model[next_uid] = (body.replace(b"\r\nFrom ", b"\r\n>From "), frozenset())
            next_uid += 1
            mailbox.refresh()
        elif action in ("flag", "unflag") and target:
            mode = "add" if action == "flag" else "remove"
            mailbox.set_flags([target], frozenset({"\\Deleted", "\\Seen"}), frozenset(), mode)
            model[target] = (model[target][0], frozenset({"\\Deleted", "\\Seen"})
                             if mode == "add" else frozenset())
        elif action == "expunge":
            gone = mailbox.expunge()
            assert gone == sorted(uid for uid, (_b, flags) in model.items() if "\\Deleted" in flags)
            for uid in gone:
                del model[uid]
        elif action == "reopen":
            mailbox = store.open_mailbox("INBOX")
        assert [m.uid for m in mailbox.messages()] == sorted(model)
        for info in mailbox.messages():
            assert info.flags == model[info.uid][1]
    for uid, (body, _flags) in model.items():
        assert read_all(mailbox, uid) == body


def test_first_message_with_a_huge_header_keeps_uidnext_in_place(store):
    header = b"".join(b"X-Long-%d: %s\r\n" % (n, b"v" * 100) for n in range(100))  # ~11 KB
    store.deliver("INBOX", io.BytesIO(header + b"Subject: a\r\n\r\nbody\r\n"))
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    assert [m.uid for m in store.open_mailbox("INBOX").messages()] == [1, 2, 3]
    assert b"X-IMAPbase: " in open(store.inbox, "rb").read()
    with store.open_mailbox("INBOX") as mailbox:
        assert read_all(mailbox, 1).startswith(header)


def test_quota_rules_need_the_quota_plugin(tmp_path):
    user = UserRecord("bob", "1000", "1000", str(tmp_path / "home"), None, {})
    location = f"mbox:~/mail:INBOX={tmp_path}/spool/%u"
    for plugins, limited in (("zlib", False), ("zlib quota", True), (None, True)):
        mail = MailSettings(mail_location=location, first_valid_uid=0, first_valid_gid=0,
                            plugin={"quota_rule": "*:storage=1M"}, mail_plugins=plugins)
        store = open_mbox_store(user, mail, resolve_location(user, mail))
        assert (store.quota_usage()[1] is not None) is limited, plugins


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from([b"From a@b  Mon Nov 23 10:00:00 2026\n", b"From x  Tue Jan  2 03:04 1990\n",
                     b"From broken line\n", b""]),
    st.lists(st.sampled_from([b"Subject: s\n", b"X-UID: 7\n", b"X-UID: x\n", b"Status: RO\n",
                              b"Content-Length: 3\n", b"Content-Length: 99999\n",
                              b"X-IMAPbase: 5 0000000009\n", b"X-IMAP: 1 0000000002\n",
                              b"\n", b"body\n", b"From inside\n", b">From q\n", b"\r\n"]),
             max_size=8)), max_size=6))
def test_foreign_mbox_garbage_is_read_and_rewritten_without_loss(tmp_path_factory, parts):
    root = tmp_path_factory.mktemp("garbage")
    inbox = root / "inbox"
    inbox.write_bytes(b"".join(line + b"".join(body) for line, body in parts))
    store = MboxUserStore("u", str(root / "mail"), str(inbox))
    mailbox = store.open_mailbox("INBOX")  # gives UIDs (a rewrite) if needed
    before = [read_all(mailbox, m.uid) for m in mailbox.messages()]
    uids = [m.uid for m in mailbox.messages()]
    assert uids == sorted(set(uids))
    if uids:
        mailbox.set_flags(uids, frozenset({"\\Seen"}), frozenset(), "add")  # another rewrite
    again = store.open_mailbox("INBOX")
    assert [m.uid for m in again.messages()] == uids
    after = [read_all(again, uid) for uid in uids]
    # a message that had no empty line after its header gains one when rewritten
    assert [a if a == b else a.removesuffix(b"\r\n") for a, b in zip(after, before)] == before
    assert store.deliver("INBOX", io.BytesIO(MESSAGE)) > max(uids, default=0)


def test_huge_lines_and_headers_stay_bounded(store):
    from roost.store.mbox import writer

    long_line = b"From " + b"z" * (3 * writer.LONG_LINE) + b"\r\n"
    message = b"Subject: big\r\n\r\n" + long_line + b"From next\r\n"
    store.deliver("INBOX", io.BytesIO(message))
    huge_header = b"X-H: " + b"h" * (writer.HEADER_LIMIT + 10) + b"\r\n"
    store.deliver("INBOX", io.BytesIO(huge_header + b"Subject: s\r\n\r\nb\r\n"))
    mailbox = store.open_mailbox("INBOX")
    assert read_all(mailbox, 1) == b"Subject: big\r\n\r\n>" + long_line + b">From next\r\n"
    assert read_all(mailbox, 2).startswith(b"\r\n" + huge_header[:5])  # the rest became body
