"""Cross-check with Debian's Dovecot 2.3: an mbox roost wrote is read by Dovecot (`doveadm
fetch`) with the same UIDs, flags, keywords and content, and roost reads an mbox Dovecot
wrote (`doveadm save`, flag changes, expunge) the same way Dovecot does.

Dovecot runs as root and reads mail as nobody (mail_uid 65534), so the test's directory is
0777 and roost's files are handed to nobody, as a real deployment's files belong to the user.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from roost.store.mbox.store import MboxUserStore
from tests.conftest import require_tool
from tests.master.helpers import wait_until

CONF = """\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols =
ssl = no
mail_location = mbox:{base}/mail/%u:INBOX={base}/spool/%u
mail_uid = 65534
mail_gid = 65534
passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = static
  args = home={base}/home/%u allow_all_users=yes
}}
"""

NOBODY = 65534
MESSAGES = [
    b"Subject: one\r\nFrom: a@example.org\r\n\r\nplain body\r\n",
    b"Subject: two\r\n\r\nFrom the start of a line\r\n>From already quoted\r\n",
    b"Subject: three\r\nX-UID: 42\r\nStatus: RO\r\n\r\nforged metadata is dropped\r\n",
    b"Subject: four\r\n\r\n\r\n\r\ntrailing blank lines\r\n\r\n",
]


@pytest.fixture
def dovecot():
    require_tool("doveadm")
    base = tempfile.mkdtemp(prefix="roost-mbox-dovecot-", dir="/tmp")
    os.chmod(base, 0o777)
    for sub in ("mail", "spool", "home"):
        os.makedirs(os.path.join(base, sub), mode=0o777)
        os.chmod(os.path.join(base, sub), 0o777)
    conf = os.path.join(base, "dovecot.conf")
    with open(conf, "w") as handle:
        handle.write(CONF.format(base=base))
    with open(os.path.join(base, "start.log"), "w") as errors:
        started = subprocess.run(["dovecot", "-c", conf], stdin=subprocess.DEVNULL,
                                 stdout=errors, stderr=errors, timeout=30)
    pid_file = os.path.join(base, "run", "master.pid")
    try:
        assert started.returncode == 0, open(os.path.join(base, "start.log")).read()
        assert wait_until(lambda: os.path.exists(os.path.join(base, "run", "auth-userdb")), 10)
        yield base, conf
    finally:
        if os.path.exists(pid_file):
            pid = int(open(pid_file).read().split()[0])
            os.kill(pid, signal.SIGTERM)
            wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 10)
        shutil.rmtree(base, ignore_errors=True)


def doveadm(conf: str, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["doveadm", "-c", conf, *args], input=stdin, capture_output=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def dovecot_view(conf: str, user: str) -> list[tuple[int, frozenset, str]]:
    out = doveadm(conf, "-f", "json", "fetch", "-u", user, "uid flags text", "mailbox", "INBOX",
                  "all")
    return [(int(item["uid"]), frozenset(item["flags"].split()) - {"\\Recent"}, item["text"])
            for item in json.loads(out or "[]")]


def roost_view(store: MboxUserStore) -> list[tuple[int, frozenset, str]]:
    mailbox = store.open_mailbox("INBOX", readonly=True)
    found = []
    for info in mailbox.messages():
        with mailbox.open_message(info.uid) as stream:
            text = stream.read().replace(b"\r\n", b"\n").decode()
        found.append((info.uid, info.flags | info.keywords, text))
    return found


def hand_to_nobody(base: str) -> None:
    for directory, _subdirs, files in os.walk(base):
        for name in files:
            os.chown(os.path.join(directory, name), NOBODY, NOBODY)


def test_dovecot_reads_what_roost_wrote(dovecot):
    base, conf = dovecot
    store = MboxUserStore("alice", f"{base}/mail/alice", f"{base}/spool/alice")
    for number, message in enumerate(MESSAGES):
        store.deliver("INBOX", io.BytesIO(message), sender="sender@example.org",
                      keywords=frozenset({"$Label1"}) if number == 3 else frozenset())
    mailbox = store.open_mailbox("INBOX")
    mailbox.set_flags([1, 2], frozenset({"\\Seen"}), frozenset({"Work"}), "add")
    mailbox.set_flags([3], frozenset({"\\Deleted", "\\Answered", "\\Flagged", "\\Draft"}),
                      frozenset(), "add")
    mailbox.expunge([3])
    store.deliver("INBOX", io.BytesIO(b"Subject: five\r\n\r\nafter the expunge\r\n"))
    hand_to_nobody(base)
    ours = roost_view(store)
    assert [uid for uid, _f, _t in ours] == [1, 2, 4, 5]
    assert dovecot_view(conf, "alice") == ours


def test_roost_reads_what_dovecot_wrote(dovecot):
    base, conf = dovecot
    for message in MESSAGES:
        doveadm(conf, "save", "-u", "bob", stdin=message.replace(b"\r\n", b"\n"))
    doveadm(conf, "flags", "add", "-u", "bob", "\\Seen $Junk", "mailbox", "INBOX", "uid", "2")
    doveadm(conf, "flags", "add", "-u", "bob", "\\Deleted", "mailbox", "INBOX", "uid", "1")
    doveadm(conf, "expunge", "-u", "bob", "mailbox", "INBOX", "deleted")
    doveadm(conf, "save", "-u", "bob", stdin=b"Subject: last\n\nFrom unescaped by Dovecot\n")
    theirs = dovecot_view(conf, "bob")
    store = MboxUserStore("bob", f"{base}/mail/bob", f"{base}/spool/bob")
    assert roost_view(store) == theirs
    assert [uid for uid, _f, _t in theirs] == [2, 3, 4, 5]
    # roost appends after Dovecot: Dovecot still agrees, UIDs keep ascending
    store.deliver("INBOX", io.BytesIO(b"Subject: from roost\r\n\r\nhi\r\n"))
    hand_to_nobody(base)
    assert dovecot_view(conf, "bob") == roost_view(store)
    assert roost_view(store)[-1][0] == 6


def test_uids_survive_expunging_everything(dovecot):
    base, conf = dovecot
    store = MboxUserStore("carol", f"{base}/mail/carol", f"{base}/spool/carol")
    for message in MESSAGES[:3]:
        store.deliver("INBOX", io.BytesIO(message))
    mailbox = store.open_mailbox("INBOX")
    mailbox.set_flags([1, 2, 3], frozenset({"\\Deleted"}), frozenset(), "add")
    assert mailbox.expunge() == [1, 2, 3]
    assert b"FOLDER INTERNAL DATA" in open(f"{base}/spool/carol", "rb").read()
    assert store.open_mailbox("INBOX").messages() == []
    hand_to_nobody(base)
    status = doveadm(conf, "mailbox", "status", "-u", "carol", "messages uidnext uidvalidity",
                     "INBOX")
    assert f"messages=0 uidnext=4 uidvalidity={mailbox.uidvalidity}" in status, status
    assert store.deliver("INBOX", io.BytesIO(MESSAGES[0])) == 4  # never 1 again
    hand_to_nobody(base)
    assert [uid for uid, _f, _t in dovecot_view(conf, "carol")] == [4]
    assert roost_view(store) == dovecot_view(conf, "carol")
