"""The whole path on one `roost init` server: SMTP in (smtpd → cleanup → incoming), the queue
manager, the virtual delivery agent into the Maildir, IMAP and POP3 out; `sendmail` through
maildrop and pickup; a bounce for an unknown local user; `roost flush`; the log lines of
every stage in Postfix's format.
"""

from __future__ import annotations

import imaplib
import os
import re
import smtplib
import subprocess
import sys

import pytest

from tests.conftest import free_port_base, run_roost
from tests.net.test_imap_server import ImapRoost, _wait

USER = "alice@example.test"
PASSWORD = "Secret-pw1"


@pytest.fixture(scope="module")
def roost(tmp_path_factory):
    inst = ImapRoost(str(tmp_path_factory.mktemp("flow")), free_port_base())
    inst.smtp = inst.base + 25
    try:
        init = run_roost("init", inst.dir, "--port-base", str(inst.base), "--user",
                         f"{USER}:{PASSWORD}", "--user", "bob@example.test:Bob-pw2")
        assert init.returncode == 0, init.stderr
        with open(os.path.join(inst.dir, "dovecot.conf"), "a", encoding="utf-8") as conf:
            conf.write("auth_failure_delay = 0\n")
        inst.start()
        yield inst
    finally:
        inst.stop()


def inbox_subjects(roost, user=USER, password=PASSWORD) -> list[str]:
    imap = imaplib.IMAP4("127.0.0.1", roost.imap, timeout=30)
    try:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        _typ, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [part[1].decode().strip() for part in data if isinstance(part, tuple)]
    except imaplib.IMAP4.error:
        return []
    finally:
        imap.logout()


def test_smtp_to_imap(roost):
    body = "Subject: through the queue\r\nFrom: carol@remote.example\r\n\r\nhello\r\n"
    with smtplib.SMTP("127.0.0.1", roost.smtp, timeout=30) as smtp:
        smtp.ehlo("client.example")
        code, text = smtp.docmd("MAIL FROM:<carol@remote.example>")
        assert code == 250
        assert smtp.docmd("RCPT TO:<alice@example.test>")[0] == 250
        assert smtp.docmd("RCPT TO:<bob@example.test>")[0] == 250
        code, text = smtp.data(body)
        assert code == 250 and text.startswith(b"2.0.0 Ok: queued as ")
        queue_id = text.split()[-1].decode()
    assert _wait(lambda: "Subject: through the queue" in inbox_subjects(roost), 20)
    assert _wait(lambda: "Subject: through the queue" in inbox_subjects(
        roost, "bob@example.test", "Bob-pw2"), 20)
    log = roost.maillog()
    assert re.search(rf"postfix/smtpd\[\d+\]: {queue_id}: client=", log)
    assert re.search(rf"postfix/qmgr\[\d+\]: {queue_id}: from=<carol@remote.example>, size=\d+, "
                     r"nrcpt=2 \(queue active\)", log)
    assert re.search(rf"{queue_id}: to=<alice@example.test>, relay=virtual, .*status=sent", log)
    assert _wait(lambda: re.search(rf"postfix/qmgr\[\d+\]: {queue_id}: removed", roost.maillog()), 10)


def test_sendmail_to_imap(roost):
    env = dict(os.environ, MAIL_CONFIG=roost.dir)
    done = subprocess.run([sys.executable, "-m", "roost", "sendmail", "-t", "-f",
                           "cron@example.test"],
                          input=b"To: alice@example.test\nSubject: from cron\n\nbackup ok\n",
                          capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _wait(lambda: "Subject: from cron" in inbox_subjects(roost), 20), roost.maillog()[-3000:]
    assert re.search(r"postfix/pickup\[\d+\]: \w+: uid=\d+ from=<cron@example.test>",
                     roost.maillog())


def test_unknown_virtual_user_is_refused_at_rcpt(roost):
    with smtplib.SMTP("127.0.0.1", roost.smtp, timeout=30) as smtp:
        smtp.ehlo("client.example")
        smtp.docmd("MAIL FROM:<carol@remote.example>")
        code, text = smtp.docmd("RCPT TO:<nobody@example.test>")
    assert code == 550 and text.startswith(b"5.1.1 <nobody@example.test>: Recipient address "
                                           b"rejected: User unknown in virtual mailbox table")


def test_flush_answers(roost):
    assert roost.roost("flush").returncode == 0


def test_undeliverable_mail_comes_back_to_the_sender(roost):
    env = dict(os.environ, MAIL_CONFIG=roost.dir)
    done = subprocess.run([sys.executable, "-m", "roost", "sendmail", "-f", USER,
                           "ghost@example.test"],
                          input=b"Subject: to a ghost\n\nanyone there?\n",
                          capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _wait(lambda: "Subject: Undelivered Mail Returned to Sender" in inbox_subjects(roost),
                 20), roost.maillog()[-3000:]
    log = roost.maillog()
    assert re.search(r"postfix/virtual\[\d+\]: (\w+): to=<ghost@example.test>, relay=virtual, .*"
                     r"dsn=5\.1\.1, status=bounced", log), log[-2000:]
    assert re.search(r"postfix/bounce\[\d+\]: \w+: sender non-delivery notification: \w+", log)
