"""Crash safety (DESIGN.md durability contract): processes delivering and flagging are
SIGKILLed mid-stream; every delivery that returned is present with its UID after reopening,
the index is consistent, and a lock left by a dead process does not block anyone."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from roost.store.maildir import uidlist as uidlist_file
from tests.conftest import REPO
from tests.store.maildir_helpers import make_store

WRITER = r"""
import io, sys
from roost.store.location import MailLocation
from roost.store.maildir import MaildirUserStore
store = MaildirUserStore("alice", MailLocation("maildir", sys.argv[1]))
tag = sys.argv[2]
for i in range(100000):
    subject = f"{tag}-{i}"
    uid = store.deliver("INBOX", io.BytesIO(f"Subject: {subject}\r\n\r\nbody {i}\r\n".encode()))
    print(uid, subject, flush=True)
"""

FLAGGER = r"""
import sys
from roost.store.location import MailLocation
from roost.store.maildir import MaildirUserStore
store = MaildirUserStore("alice", MailLocation("maildir", sys.argv[1]))
box = store.open_mailbox("INBOX")
n = 0
while True:
    box.refresh()
    uids = [i.uid for i in box.messages()]
    if uids:
        box.set_flags(uids[-3:], frozenset({"\\Seen"}), frozenset({"kw%d" % (n % 3)}), "add")
    n += 1
"""


def subject_of(box, uid: int) -> str:
    head = box.open_message(uid).read(200).decode()
    return head.split("Subject: ", 1)[1].split("\r\n", 1)[0]


def test_sigkill_during_deliveries_loses_nothing(tmp_path):
    maildir = str(tmp_path / "Maildir")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    delivered: dict[int, str] = {}
    rng = random.Random(5)

    def record(text: str) -> None:
        """Count only whole lines: a kill may cut the last one short."""
        for line in text.splitlines(keepends=True):
            if line.endswith("\n"):
                uid, subject = line.split()
                assert int(uid) not in delivered, f"uid {uid} given twice"
                delivered[int(uid)] = subject

    for round_ in range(2):
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, maildir, f"r{round_}w{n}"],
                                  stdout=subprocess.PIPE, text=True, env=env)
                 for n in range(2)]
        procs.append(subprocess.Popen([sys.executable, "-c", FLAGGER, maildir],
                                      stdout=subprocess.DEVNULL, env=env))
        try:
            for proc in procs[:2]:  # let each writer get going, then kill at a random moment
                record("".join(proc.stdout.readline() for _ in range(6)))
            time.sleep(rng.random() * 0.5)
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGKILL)
            for proc in procs:
                proc.wait(timeout=30)
        for proc in procs[:2]:
            record(proc.stdout.read())
            proc.stdout.close()
    assert len(delivered) >= 24

    store = make_store(tmp_path)
    box = store.open_mailbox("INBOX")
    infos = {i.uid: i for i in box.messages()}
    for uid, subject in delivered.items():
        assert uid in infos, f"delivered uid {uid} ({subject}) lost"
        assert subject_of(box, uid) == subject
    # the index is consistent with the files and with dovecot-uidlist
    parsed, problem, _st = uidlist_file.read(os.path.join(maildir, "dovecot-uidlist"))
    assert problem is None
    files = {n.split(":")[0] for d in ("new", "cur") for n in os.listdir(os.path.join(maildir, d))}
    assert set(parsed.records.values()) == files == {i.guid for i in infos.values()}
    assert list(infos) == sorted(infos) and box.uidnext > max(infos)
    assert box.highestmodseq >= max(i.modseq for i in infos.values())
    # a lock left behind by a killed process does not block the next writer
    assert store.deliver("INBOX", __import__("io").BytesIO(b"Subject: after\n\nx\n")) > max(infos)
