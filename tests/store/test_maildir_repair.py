"""Damage and outside writers: garbage control files are rebuilt (keeping UIDs where the other
file still knows them) with a logged warning, never an exception; files dropped into new/
and cur/ by other programs are picked up. Parsers fuzzed with hypothesis."""

from __future__ import annotations

import logging
import os
import shutil
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.store.maildir import cache as header_cache
from roost.store.maildir import index as index_file
from roost.store.maildir import keywords as keywords_file
from roost.store.maildir import uidlist as uidlist_file
from roost.store.maildir.names import (mailbox_name_problem, mutf7_decode, mutf7_encode,
                                       split_name)
from roost.store.location import MailSettings
from tests.store.maildir_helpers import make_store, message

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def filled(tmp_path, count=3):
    store = make_store(tmp_path)
    for i in range(count):
        store.deliver("INBOX", message(f"m{i}"), flags=frozenset({"\\Seen"}) if i == 1
                      else frozenset(), keywords=frozenset({"kw"}) if i == 2 else frozenset())
    box = store.open_mailbox("INBOX")
    return store, {i.uid: (i.guid, i.flags, i.keywords) for i in box.messages()}, box


def test_missing_uidlist_rebuilt_from_index_with_same_uids(tmp_path, caplog):
    store, before, box = filled(tmp_path)
    os.unlink(tmp_path / "Maildir" / "dovecot-uidlist")
    again = make_store(tmp_path).open_mailbox("INBOX")
    assert {i.uid: (i.guid, i.flags, i.keywords) for i in again.messages()} == before
    assert again.uidvalidity == box.uidvalidity


def test_garbage_uidlist_rebuilt_with_warning(tmp_path, caplog):
    store, before, box = filled(tmp_path)
    (tmp_path / "Maildir" / "dovecot-uidlist").write_bytes(b"3 V1 N2 Gzz\n1 :x\n")
    with caplog.at_level(logging.WARNING, logger="roost.store"):
        again = make_store(tmp_path).open_mailbox("INBOX")
    assert "Broken file" in caplog.text
    assert {i.uid: (i.guid, i.flags, i.keywords) for i in again.messages()} == before
    assert uidlist_file.read(str(tmp_path / "Maildir" / "dovecot-uidlist"))[0] is not None


def test_missing_or_garbage_index_rebuilt_from_files(tmp_path, caplog):
    store, before, box = filled(tmp_path)
    path = tmp_path / "Maildir" / "roost.index"
    path.write_bytes(b"R1 Vx\n\x00garbage\n")
    with caplog.at_level(logging.WARNING, logger="roost.store"):
        again = make_store(tmp_path).open_mailbox("INBOX")
    assert "Broken file" in caplog.text
    assert {i.uid: (i.guid, i.flags, i.keywords) for i in again.messages()} == before
    path.unlink()
    third = make_store(tmp_path).open_mailbox("INBOX")
    assert {i.uid: (i.guid, i.flags, i.keywords) for i in third.messages()} == before
    # same UIDVALIDITY, so MODSEQs must not go back below what clients may have seen
    assert min(i.modseq for i in third.messages()) > box.highestmodseq


def test_both_lost_gives_new_uidvalidity(tmp_path):
    store, before, box = filled(tmp_path)
    os.unlink(tmp_path / "Maildir" / "roost.index")
    os.unlink(tmp_path / "Maildir" / "dovecot-uidlist")
    again = make_store(tmp_path).open_mailbox("INBOX")
    assert again.uidvalidity > box.uidvalidity  # RFC 3501 §2.3.1.1: UIDs may have changed
    assert sorted(i.guid for i in again.messages()) == sorted(g for g, _f, _k in before.values())


def test_truncated_append_is_ignored(tmp_path):
    store, before, box = filled(tmp_path)
    with open(tmp_path / "Maildir" / "dovecot-uidlist", "ab") as handle:
        handle.write(b"4 :half-written-na")  # a crash in the middle of an append
    with open(tmp_path / "Maildir" / "roost.index", "ab") as handle:
        handle.write(b"9 9 9 9 - cut")
    assert make_store(tmp_path).deliver("INBOX", message("after the crash")) == 4
    again = make_store(tmp_path).open_mailbox("INBOX")
    assert sorted(i.uid for i in again.messages()) == [*sorted(before), 4]
    assert b"after the crash" in again.open_message(4).read()
    parsed, problem, _st = uidlist_file.read(str(tmp_path / "Maildir" / "dovecot-uidlist"))
    assert problem is None and b"half-written" not in (
        tmp_path / "Maildir" / "dovecot-uidlist").read_bytes()


def test_files_added_by_other_programs(tmp_path):
    store, before, box = filled(tmp_path)
    maildir = tmp_path / "Maildir"
    (maildir / "new" / "1700000000.procmail.host").write_bytes(b"Subject: p\n\nprocmail\n")
    (maildir / "cur" / "1700000001.mutt.host:2,RS").write_bytes(b"Subject: m\n\nmutt\n")
    (maildir / "new" / ".hidden-tmp").write_bytes(b"ignored")
    (maildir / "cur" / "a-directory").mkdir()
    changes = box.refresh()
    assert [(c.kind, c.uid) for c in changes] == [("exists", 4), ("exists", 5)]
    infos = {i.uid: i for i in box.messages()}
    assert infos[4].guid == "1700000000.procmail.host"
    assert infos[4].size == len(b"Subject: p\r\n\r\nprocmail\r\n")
    assert infos[5].flags == {"\\Answered", "\\Seen"}
    assert box.open_message(5).read() == b"Subject: m\r\n\r\nmutt\r\n"
    # mutt renames a file to change flags, and moves one from new/ to cur/
    name = next(n for n in os.listdir(maildir / "new") if "procmail" in n)
    os.rename(maildir / "new" / name, maildir / "cur" / (name + ":2,T"))
    changes = box.refresh()
    assert [(c.kind, c.uid) for c in changes] == [("flags", 4)]
    assert changes[0].info.flags == {"\\Deleted"}
    shutil.copy(maildir / "cur" / (name + ":2,T"), maildir / "cur" / "1700000002.cp.host:2,")
    assert [c.uid for c in box.refresh()] == [6]


# --- fuzzing ---------------------------------------------------------------------------------

@FUZZ
@given(st.binary(max_size=400))
def test_uidlist_parser_never_raises(data):
    parsed, problem = uidlist_file.parse(data)
    assert (parsed is None) != (problem is None)
    if parsed is not None:
        assert list(parsed.records) == sorted(parsed.records)
        assert uidlist_file.parse(uidlist_file.serialize(parsed))[0].records == parsed.records


@FUZZ
@given(st.lists(st.tuples(st.integers(1, 10**6), st.from_regex(r"[0-9A-Za-z.,=_-]{1,30}",
                                                                fullmatch=True)), max_size=20))
def test_uidlist_round_trip(records):
    uidlist = uidlist_file.UidList(1234, 1, uidlist_file.new_guid())
    for uid, name in sorted(dict(records).items()):
        uidlist.records[uid] = name
    parsed, problem = uidlist_file.parse(uidlist_file.serialize(uidlist))
    assert problem is None and parsed.records == uidlist.records
    assert parsed.uidnext == uidlist.uidnext


@FUZZ
@given(st.binary(max_size=400))
def test_index_and_keywords_parsers_never_raise(data):
    index_file.parse(data)
    header_cache.parse(data)
    keywords = keywords_file.parse(data)
    assert all(0 <= i < 26 and keywords_file.valid_keyword(k) for i, k in keywords.items())


@FUZZ
@given(st.text(max_size=60))
def test_file_name_parsing_never_raises(name):
    base, letters = split_name(name)
    assert name.startswith(base)


@FUZZ
@given(st.text(max_size=40))
def test_mutf7_round_trip(name):
    name = "".join(c for c in name if not 0xD800 <= ord(c) <= 0xDFFF)
    encoded = mutf7_encode(name)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert mutf7_decode(encoded) == name


NO_FSYNC = MailSettings(mail_fsync="never")  # fuzz loops: durability is tested elsewhere


@settings(FUZZ, max_examples=100)
@given(st.binary(max_size=200))
def test_garbage_control_files_never_break_open(tmp_path, data):
    store = make_store(tmp_path, mail=NO_FSYNC)
    store.deliver("INBOX", message())
    maildir = tmp_path / "Maildir"
    for name in ("dovecot-uidlist", "roost.index", "dovecot-keywords", "subscriptions"):
        (maildir / name).write_bytes(data)
    box = make_store(tmp_path, mail=NO_FSYNC).open_mailbox("INBOX")
    assert len(box.messages()) >= 1
    make_store(tmp_path, mail=NO_FSYNC).subscriptions()
    assert make_store(tmp_path, mail=NO_FSYNC).deliver("INBOX", message()) > 0


@FUZZ
@given(st.text(max_size=50), st.sampled_from([".", "/"]))
def test_mailbox_names_stay_inside_the_root(tmp_path, name, separator):
    from roost.store import InvalidMailboxName, MailboxExists

    store = make_store(tmp_path, layout="fs" if separator == "/" else "maildir++", mail=NO_FSYNC)
    root = os.path.realpath(tmp_path / "Maildir")
    try:
        store.create_mailbox(name)
    except (InvalidMailboxName, MailboxExists):
        return
    assert mailbox_name_problem(name, separator, store.layout.kind) is None
    path = os.path.realpath(store.layout.mail_dir(name))
    assert path.startswith(root + os.sep) and os.path.isdir(os.path.join(path, "cur"))
    assert name in {i.name for i in store.list_mailboxes()}
    store.delete_mailbox(name)


def test_stale_tmp_files_are_removed(tmp_path):
    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    tmp = tmp_path / "Maildir" / "tmp"
    (tmp / "old.crashed").write_bytes(b"half a message")
    os.utime(tmp / "old.crashed", (0, time.time() - 37 * 3600))
    (tmp / "fresh.in-progress").write_bytes(b"being written")
    make_store(tmp_path).open_mailbox("INBOX")
    assert sorted(os.listdir(tmp)) == ["fresh.in-progress"]
