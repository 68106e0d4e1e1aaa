"""Opening and listing a 10,000-message Maildir stays fast: the index makes it one directory
listing and one file read, not 10,000 stat() calls (figures in the store report)."""

from __future__ import annotations

import os
import time

from roost.store.location import MailSettings
from tests.store.maildir_helpers import make_store

COUNT = 10_000


def test_open_and_list_10000_messages(tmp_path):
    cur = tmp_path / "Maildir" / "cur"
    for sub in ("cur", "new", "tmp"):
        (tmp_path / "Maildir" / sub).mkdir(parents=True)
    body = b"Subject: x\n\n" + b"y" * 200 + b"\n"
    stamp = 1_700_000_000
    for i in range(COUNT):
        name = f"{stamp + i}.M{i}P1.host,S={len(body)},W={len(body) + 3}:2,{'S' if i % 3 else ''}"
        with open(cur / name, "wb") as handle:
            handle.write(body)
    mail = MailSettings(mail_fsync="never")
    started = time.perf_counter()
    first = make_store(tmp_path, mail=mail).open_mailbox("INBOX")
    rebuild = time.perf_counter() - started
    assert len(first.messages()) == COUNT

    started = time.perf_counter()
    box = make_store(tmp_path, mail=mail).open_mailbox("INBOX")
    messages = box.messages()
    reopen = time.perf_counter() - started
    assert [m.uid for m in messages] == list(range(1, COUNT + 1))
    assert sum(1 for m in messages if "\\Seen" in m.flags) == COUNT - (COUNT + 2) // 3

    started = time.perf_counter()
    assert box.refresh() == []
    refresh = time.perf_counter() - started
    started = time.perf_counter()
    box.set_flags([COUNT // 2], frozenset({"\\Flagged"}), frozenset(), "add")
    flag = time.perf_counter() - started
    print(f"\n10k messages: rebuild {rebuild * 1000:.0f} ms, reopen+list {reopen * 1000:.0f} ms, "
          f"refresh {refresh * 1000:.0f} ms, one STORE {flag * 1000:.1f} ms")
    # generous bounds (a loaded 2-core machine): these catch O(n^2) and per-file stat()s
    assert reopen < 1.5 and refresh < 1.0 and flag < 0.5 and rebuild < 5
    assert os.path.getsize(tmp_path / "Maildir" / "roost.index") > COUNT * 40
