"""Several processes deliver into one mbox while another reads and expunges: nothing is lost,
nothing is duplicated, UIDs stay unique and ascending (dotlock + fcntl locking)."""

from __future__ import annotations

import io
import multiprocessing
import re
import time

from roost.store.mbox.store import MboxUserStore

WRITERS = 4
PER_WRITER = 25


def writer(root: str, inbox: str, number: int) -> None:
    store = MboxUserStore("u", root, inbox, lock_timeout=60)
    for sequence in range(PER_WRITER):
        token = f"w{number}-{sequence}"
        store.deliver("INBOX", io.BytesIO(f"Subject: {token}\r\n\r\nFrom {token}\r\n".encode()))


def reader(root: str, inbox: str, seen_queue) -> None:
    """POP3-like: read every message, then expunge the ones read, until told to stop."""
    store = MboxUserStore("u", root, inbox, lock_timeout=60)
    mailbox = store.open_mailbox("INBOX")
    taken: list[str] = []
    deadline = time.monotonic() + 20
    rounds = 0
    while (rounds < 40 or len(taken) < 10) and time.monotonic() < deadline:
        rounds += 1
        mailbox.refresh()
        uids = []
        for info in mailbox.messages():
            with mailbox.open_message(info.uid) as stream:
                taken.append(re.search(rb"Subject: (\S+)", stream.read()).group(1).decode())
            uids.append(info.uid)
        if uids:
            mailbox.set_flags(uids, frozenset({"\\Deleted"}), frozenset(), "add")
            mailbox.expunge(uids)
    seen_queue.put(taken)


def test_concurrent_delivery_and_expunge_keep_every_message(tmp_path):
    root, inbox = str(tmp_path / "mail"), str(tmp_path / "spool" / "u")
    MboxUserStore("u", root, inbox).open_mailbox("INBOX")  # create the spool file
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    writers = [context.Process(target=writer, args=(root, inbox, n)) for n in range(WRITERS)]
    read = context.Process(target=reader, args=(root, inbox, queue))
    for process in [*writers, read]:
        process.start()
    try:
        taken = queue.get(timeout=120)
    finally:
        for process in [*writers, read]:
            process.join(60)
            if process.is_alive():
                process.kill()
    assert all(process.exitcode == 0 for process in writers)
    mailbox = MboxUserStore("u", root, inbox).open_mailbox("INBOX")
    remaining = []
    for info in mailbox.messages():
        with mailbox.open_message(info.uid) as stream:
            remaining.append(re.search(rb"Subject: (\S+)", stream.read()).group(1).decode())
    uids = [info.uid for info in mailbox.messages()]
    assert uids == sorted(set(uids))
    expected = {f"w{n}-{s}" for n in range(WRITERS) for s in range(PER_WRITER)}
    assert sorted(taken + remaining) == sorted(expected)  # each exactly once
    assert taken, "the reader never saw a message"


def churn(root: str, inbox: str, confirmed) -> None:
    """Deliver, flag and expunge in a loop; report each delivery once it returned (a pipe
    write is synchronous, so what the parent reads was reported before the kill)."""
    store = MboxUserStore("u", root, inbox, lock_timeout=60)
    mailbox = store.open_mailbox("INBOX")
    for sequence in range(100000):
        uid = store.deliver("INBOX", io.BytesIO(f"Subject: k{sequence}\r\n\r\nx\r\n".encode()))
        confirmed.send(f"k{sequence}")
        mailbox.refresh()
        if sequence % 3 == 0:  # a rewrite: flag the message just delivered
            mailbox.set_flags([uid], frozenset({"\\Seen"}), frozenset({"kw"}), "add")
        if sequence % 7 == 0:  # and now and then an expunge (announced before it starts)
            confirmed.send(f"-k{sequence}")
            mailbox.set_flags([uid], frozenset({"\\Deleted"}), frozenset(), "add")
            mailbox.expunge([uid])


def test_sigkill_during_rewrites_keeps_the_mbox_whole(tmp_path):
    import os
    import signal

    root, inbox = str(tmp_path / "mail"), str(tmp_path / "spool" / "u")
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=churn, args=(root, inbox, sender))
    process.start()
    sender.close()
    reported: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(reported) < 60 and time.monotonic() < deadline:
            if receiver.poll(10):
                reported.append(receiver.recv())
        time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join(10)
    while receiver.poll(0.2):
        try:
            reported.append(receiver.recv())
        except EOFError:
            break
    expunged = {item[1:] for item in reported if item.startswith("-")}
    kept = [item for item in reported if not item.startswith("-") and item not in expunged]
    mailbox = MboxUserStore("u", root, inbox, lock_timeout=5).open_mailbox("INBOX")
    found = []
    for info in mailbox.messages():
        with mailbox.open_message(info.uid) as stream:
            found.append(re.search(rb"Subject: (\S+)", stream.read()).group(1).decode())
    assert not set(kept) - set(found)  # every confirmed delivery survived the crash
    uids = [info.uid for info in mailbox.messages()]
    assert uids == sorted(set(uids))
