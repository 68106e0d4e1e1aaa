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

import pytest

from roost.store.mbox.store import MboxUserStore
from tests.conftest import require_tool
from tests.support.dovecot import PrivateDovecot

CONF = """\
protocols =
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
    instance = PrivateDovecot(CONF, prefix="roost-mbox-dovecot-")
    try:
        instance.make_dirs("mail", "spool", "home")
        instance.start()
        yield instance
    finally:
        instance.stop()


def dovecot_view(dovecot: PrivateDovecot, user: str) -> list[tuple[int, frozenset, str]]:
    out = dovecot.doveadm("-f", "json", "fetch", "-u", user, "uid flags text", "mailbox", "INBOX",
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
    base = dovecot.base
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
    assert dovecot_view(dovecot, "alice") == ours


def test_roost_reads_what_dovecot_wrote(dovecot):
    base = dovecot.base
    for message in MESSAGES:
        dovecot.doveadm("save", "-u", "bob", stdin=message.replace(b"\r\n", b"\n"))
    dovecot.doveadm("flags", "add", "-u", "bob", "\\Seen $Junk", "mailbox", "INBOX", "uid", "2")
    dovecot.doveadm("flags", "add", "-u", "bob", "\\Deleted", "mailbox", "INBOX", "uid", "1")
    dovecot.doveadm("expunge", "-u", "bob", "mailbox", "INBOX", "deleted")
    dovecot.doveadm("save", "-u", "bob", stdin=b"Subject: last\n\nFrom unescaped by Dovecot\n")
    theirs = dovecot_view(dovecot, "bob")
    store = MboxUserStore("bob", f"{base}/mail/bob", f"{base}/spool/bob")
    assert roost_view(store) == theirs
    assert [uid for uid, _f, _t in theirs] == [2, 3, 4, 5]
    # roost appends after Dovecot: Dovecot still agrees, UIDs keep ascending
    store.deliver("INBOX", io.BytesIO(b"Subject: from roost\r\n\r\nhi\r\n"))
    hand_to_nobody(base)
    assert dovecot_view(dovecot, "bob") == roost_view(store)
    assert roost_view(store)[-1][0] == 6


def test_uids_survive_expunging_everything(dovecot):
    base = dovecot.base
    store = MboxUserStore("carol", f"{base}/mail/carol", f"{base}/spool/carol")
    for message in MESSAGES[:3]:
        store.deliver("INBOX", io.BytesIO(message))
    mailbox = store.open_mailbox("INBOX")
    mailbox.set_flags([1, 2, 3], frozenset({"\\Deleted"}), frozenset(), "add")
    assert mailbox.expunge() == [1, 2, 3]
    assert b"FOLDER INTERNAL DATA" in open(f"{base}/spool/carol", "rb").read()
    assert store.open_mailbox("INBOX").messages() == []
    hand_to_nobody(base)
    status = dovecot.doveadm("mailbox", "status", "-u", "carol", "messages uidnext uidvalidity",
                     "INBOX")
    assert f"messages=0 uidnext=4 uidvalidity={mailbox.uidvalidity}" in status, status
    assert store.deliver("INBOX", io.BytesIO(MESSAGES[0])) == 4  # never 1 again
    hand_to_nobody(base)
    assert [uid for uid, _f, _t in dovecot_view(dovecot, "carol")] == [4]
    assert roost_view(store) == dovecot_view(dovecot, "carol")
