"""`roost init --system` as root: the master gives up root for mail_owner (`postfix`), and the
server still does the whole job — mail accepted over SMTP, delivered into the Maildir, read
over IMAP and POP3 — with every worker running as mail_owner.

Catches what only an unprivileged worker meets: queue directories the master must create for
mail_owner before dropping root (Postfix's create-missing), modules imported before the drop
(roost.master.preload), mailboxes and the users file readable by mail_owner.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import pwd

import pytest

from tests.e2e.server import Server, wait_for
from tests.interop.test_postfix_sasl import _processes_with


@pytest.fixture
def server():
    if os.geteuid() != 0:
        pytest.fail("the --system layout test starts roost as root (CI runs the suite as root)",
                    pytrace=False)
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        pytest.fail("the postfix account is missing (scripts/setup.sh --test installs postfix)",
                    pytrace=False)
    instance = Server(users=("alice@example.test:Secret-pw1",), system=True)
    try:
        instance.init()
        instance.start()
        yield instance
    finally:
        instance.cleanup()


def test_unprivileged_workers_do_the_whole_job(server):
    owner = pwd.getpwnam("postfix").pw_uid
    for pid in _processes_with(server.dir):
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
        assert uids == [str(owner)] * 4, (pid, uids)
    with server.smtp_client() as client:
        client.sendmail("sender@example.org", ["alice@example.test"],
                        b"Subject: system layout\r\n\r\nhello\r\n")
    maildir = os.path.join(server.state, "mail", "example.test", "alice", "Maildir", "new")
    assert wait_for(lambda: os.path.isdir(maildir) and os.listdir(maildir)), server.maillog()[-3000:]
    assert os.stat(os.path.join(maildir, os.listdir(maildir)[0])).st_uid == owner
    imap = imaplib.IMAP4("127.0.0.1", server.base + 143)
    try:
        assert imap.login("alice@example.test", "Secret-pw1")[0] == "OK", server.maillog()[-3000:]
        assert imap.select("INBOX", readonly=True) == ("OK", [b"1"])
        _, data = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: system layout" in data[0][1]
    finally:
        imap.logout()
    pop = poplib.POP3("127.0.0.1", server.base + 110, timeout=30)
    try:
        pop.user("alice@example.test")
        assert pop.pass_("Secret-pw1").startswith(b"+OK")
        assert pop.stat()[0] == 1
    finally:
        pop.quit()
    log = server.maillog()
    assert "status=sent" in log and "Permission denied" not in log, log[-3000:]
