"""tmp/ clean-up never takes a delivery in progress: an APPEND with an old internal date gives
its temporary file an old mtime at once (found by imaptest's stress run: the file vanished
between write and rename when another session opened the mailbox)."""

from __future__ import annotations

import os
import time

from tests.store.maildir_helpers import make_store, message


def test_old_internal_date_survives_tmp_clean_up(tmp_path):
    store = make_store(tmp_path)
    inbox = store.open_mailbox("INBOX")
    folder = inbox.folder
    temp = os.path.join(folder.paths.mail, "tmp", f"1.M1P{os.getpid()}.test")  # a live writer
    with open(temp, "wb") as out:
        out.write(b"Subject: old\n\nbody\n")
    old = time.time() - 10 * 365 * 86400
    os.utime(temp, (old, old))  # what APPEND with a 2016 date does before the rename
    assert folder.clean_tmp() == 0 and os.path.exists(temp)
    dead = os.path.join(folder.paths.mail, "tmp", "1.M2P999999999.test")  # no such process
    with open(dead, "wb") as out:
        out.write(b"crashed")
    os.utime(dead, (old, old))
    assert folder.clean_tmp() == 1 and not os.path.exists(dead) and os.path.exists(temp)
    uid = inbox.append(message("dated"), internal_date=old)
    inbox.refresh()
    assert [m.uid for m in inbox.messages()] == [uid]
    assert abs(inbox.messages()[0].internal_date - old) < 2
    inbox.close()
