"""Crash safety: SIGKILL roost in the middle of a stream of LMTP deliveries from several
clients; after a restart every message that got its `250 ... Saved` is in the Maildir, and
the store's index agrees with the files (UIDs unique, every message readable)."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading

import pytest

from roost.auth.lookup import UserRecord
from roost.store import open_user_store
from roost.store.location import MailSettings
from tests.conftest import free_port_base
from tests.net.lmtp_support import RoostInstance, lmtp_deliver, processes_with, wait_for

CLIENTS = 4


@pytest.fixture
def roost():
    base = tempfile.mkdtemp(prefix="roost-lmtp-crash-", dir="/tmp")
    instance = RoostInstance(os.path.join(base, "roost"), free_port_base())
    try:
        yield instance
    finally:
        instance.stop()
        leftovers = processes_with(instance.dir)
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"processes left running: {leftovers}"


def client(port: int, number: int, confirmed: list[str], stop: threading.Event) -> None:
    sequence = 0
    while not stop.is_set():
        token = f"c{number}-m{sequence}"
        message = (f"Subject: {token}\r\nMessage-ID: <{token}@crash.test>\r\n\r\n"
                   + f"payload {token}\r\n" * 200).encode()
        try:
            replies = lmtp_deliver(("127.0.0.1", port), "s@crash.test", ["alice"], message,
                                   timeout=5)
        except OSError:
            return  # the server died under us
        if replies and replies[-1].startswith("250 2.0.0 <alice> ") and replies[-1].endswith("Saved"):
            confirmed.append(token)
        sequence += 1


def test_sigkill_during_deliveries_loses_no_confirmed_message(roost):
    roost.start()
    confirmed: list[str] = []
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(roost.lmtp_port, n, confirmed, stop))
               for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: len(confirmed) >= 20, 30), "deliveries did not start"
    roost.kill()  # SIGKILL master and workers mid-stream
    stop.set()
    for thread in threads:
        thread.join(20)
    saved_before_restart = list(confirmed)
    assert saved_before_restart

    roost.start()
    tokens_found: dict[str, int] = {}
    for data in roost.messages("alice"):
        match = re.search(rb"Subject: (c\d+-m\d+)", data)
        assert match, data[:200]
        tokens_found[match.group(1).decode()] = tokens_found.get(match.group(1).decode(), 0) + 1
    missing = [token for token in saved_before_restart if token not in tokens_found]
    assert not missing, missing

    # the index agrees with the files: one UID per file, every message readable
    mail = MailSettings(mail_location=f"maildir:{roost.dir}/mail/%d/%n/Maildir",
                        first_valid_uid=0, first_valid_gid=0)
    store = open_user_store(UserRecord("alice@example.test", "0", "0", None, None, {}), mail)
    with store.open_mailbox("INBOX") as mailbox:
        infos = mailbox.messages()
        assert len({info.uid for info in infos}) == len(infos) == sum(tokens_found.values())
        for info in infos:
            with mailbox.open_message(info.uid) as stream:
                assert b"Subject: c" in stream.read()
    # and the restarted server delivers again, with a UID above all the others
    after = lmtp_deliver(("127.0.0.1", roost.lmtp_port), "s@crash.test", ["alice"],
                         b"Subject: after\r\n\r\nx\r\n")
    assert after[-1].endswith("Saved"), after
    with store.open_mailbox("INBOX") as mailbox:
        newest = mailbox.messages()[-1]
        assert newest.uid > max(info.uid for info in infos)
