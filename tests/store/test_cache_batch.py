"""roost.cache appends batched while a store defers them (MaildirUserStore.
deferred_cache_writes, one IMAP command): nothing written until the block ends or
FLUSH_RECORDS records are held, then one append; a folder opened inside the block defers
too; outside a block every put() is written at once; the rewrite that drops dead records
still happens; read_header's one-read fast path answers as the line-by-line reading; and the
subscription form of the change feed (ChangeWatcher.subscribe)."""

from __future__ import annotations

import asyncio
import io
import time

import pytest
from hypothesis import given, settings, strategies as st

from roost.store.maildir import cache as header_cache
from roost.store.notify import ChangeWatcher
from tests.store.maildir_helpers import make_store, message


def cache_records(tmp_path) -> dict:
    path = tmp_path / "Maildir" / "roost.cache"
    if not path.exists():
        return {}
    records, damaged = header_cache.parse(path.read_bytes())
    assert not damaged
    return records


def test_puts_outside_a_block_are_written_at_once(tmp_path):
    store = make_store(tmp_path)
    for number in range(3):
        store.deliver("INBOX", message(f"s{number}"))
    box = store.open_mailbox("INBOX")
    box.header(1)
    assert sorted(cache_records(tmp_path)) == [1]
    box.header(3)
    assert sorted(cache_records(tmp_path)) == [1, 3]


def test_deferred_block_appends_once_at_the_end(tmp_path, monkeypatch):
    store = make_store(tmp_path)
    for number in range(7):
        store.deliver("INBOX", message(f"s{number}"))
    writes = []
    real_write = header_cache.os.write

    def counting_write(fd, data):
        if bytes(data[:2]) == b"H ":  # roost.cache records (os is shared with the index)
            writes.append(bytes(data).count(b"\nH ") + 1)
        return real_write(fd, data)
    monkeypatch.setattr(header_cache.os, "write", counting_write)
    monkeypatch.setattr(header_cache, "FLUSH_RECORDS", 5)
    with store.deferred_cache_writes():
        box = store.open_mailbox("INBOX")  # a folder first opened inside the block
        headers = [box.header(uid) for uid in range(1, 5)]
        assert cache_records(tmp_path) == {} and writes == []
        box.header(5)  # the fifth record: FLUSH_RECORDS reached
        assert writes == [5] and sorted(cache_records(tmp_path)) == [1, 2, 3, 4, 5]
        box.header(6)
        box.header(7)
        assert writes == [5]
    assert writes == [5, 2]
    records = cache_records(tmp_path)
    assert sorted(records) == list(range(1, 8))
    assert [records[uid][1] for uid in range(1, 5)] == headers
    # served from the file by a new store
    fresh = make_store(tmp_path).open_mailbox("INBOX")
    assert fresh.header(2) == headers[1]


def test_deferred_flush_still_rewrites_dead_records(tmp_path, monkeypatch):
    store = make_store(tmp_path)
    for number in range(3):
        store.deliver("INBOX", message(f"s{number}"))
    path = tmp_path / "Maildir" / "roost.cache"
    box = store.open_mailbox("INBOX")
    header = box.header(1)
    # 150 stale records of a message long gone
    path.write_bytes(path.read_bytes() + header_cache.record(99, "gone", b"X: y\r\n\r\n") * 150)
    store = make_store(tmp_path)
    with store.deferred_cache_writes():
        box = store.open_mailbox("INBOX")
        box.header(2)
    records = cache_records(tmp_path)
    assert sorted(records) == [1, 2]  # rewritten: the dead ones dropped
    assert path.read_bytes().count(b"H ") == 2


def test_a_failed_append_is_only_lost_work(tmp_path, monkeypatch):
    store = make_store(tmp_path)
    store.deliver("INBOX", message("s"))
    box = store.open_mailbox("INBOX")

    real_write = header_cache.os.write

    def failing_write(fd, data):
        if bytes(data[:2]) == b"H ":
            raise OSError(28, "No space left on device")
        return real_write(fd, data)
    monkeypatch.setattr(header_cache.os, "write", failing_write)
    expected = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: s\r\n\r\n"
    assert box.header(1) == expected  # served even though it could not be cached


@pytest.mark.parametrize("use_inotify", [True, False])
def test_subscribe_calls_back_once_per_change(tmp_path, use_inotify):
    store = make_store(tmp_path)
    store.deliver("INBOX", message())
    maildir = tmp_path / "Maildir"
    watcher = ChangeWatcher([str(maildir / "new"), str(maildir / "cur")], use_inotify=use_inotify)
    other = make_store(tmp_path)

    async def scenario():
        loop = asyncio.get_running_loop()
        calls = []
        first = watcher.subscribe(lambda: calls.append("first"))
        second = watcher.subscribe(lambda: calls.append("second"))
        cancelled = watcher.subscribe(lambda: calls.append("cancelled"))
        cancelled.cancel()
        await asyncio.sleep(0.2)
        assert calls == []
        started = loop.time()
        other.deliver("INBOX", message("another"))
        while len(calls) < 1 and loop.time() - started < 3:
            await asyncio.sleep(0.02)
        assert loop.time() - started < 1.5
        await asyncio.sleep(0.7)
        # one-shot: each fires at most once; with both waiting, the watcher's first check
        # consumes the change, the other stays subscribed for the next one
        assert calls in (["first"], ["second"], ["first", "second"], ["second", "first"])
        first.cancel()
        second.cancel()
        if use_inotify:
            assert not watcher.inotify.subscribed.get(loop)
        # a change the caller has not seen yet (an old signature): called back at once
        late = []
        watcher.subscribe(lambda: late.append(1), since=0)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert late == [1]

    asyncio.run(scenario())
    watcher.close()


def test_subscribers_of_other_directories_are_not_woken(tmp_path):
    first_store = make_store(tmp_path / "a")
    second_store = make_store(tmp_path / "b")
    first_store.deliver("INBOX", message())
    second_store.deliver("INBOX", message())
    watchers = [ChangeWatcher([str(tmp_path / name / "Maildir" / "new")]) for name in "ab"]
    assert all(w.uses_inotify for w in watchers)

    async def scenario():
        calls = []
        subscriptions = [w.subscribe(lambda name=name: calls.append(name))
                         for w, name in zip(watchers, "ab")]
        make_store(tmp_path / "b").deliver("INBOX", message("x"))
        deadline = time.monotonic() + 3
        while not calls and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert calls == ["b"]
        for subscription in subscriptions:
            subscription.cancel()

    asyncio.run(scenario())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b"Subject: x", b" ", b"\r\n\r\n",
                                 b"\n\n", b"x" * 5000, b"y" * 70000]), max_size=30))
def test_read_header_fast_path_agrees_with_line_reading(chunks):
    data = b"".join(chunks)
    expected = header_cache._header_lines(io.BytesIO(data))
    assert header_cache.read_header(io.BytesIO(data)) == expected
