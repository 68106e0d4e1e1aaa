"""roost reads an mbox that Debian's Postfix local(8) wrote, and Postfix keeps appending to an
mbox roost has given UIDs: the messages, their order and their bytes survive both ways.

A private Postfix (its own config, queue and a spool directory `mail_spool_directory`)
delivers mail for `nobody` (a system user local(8) can run as) into SPOOL/nobody with its
default `mailbox_delivery_lock = fcntl, dotlock`. Needs root (Postfix's master).
"""

from __future__ import annotations

import io
import os
import pwd
import re
import subprocess

import pytest

from roost.store.mbox.store import MboxUserStore
from tests.conftest import free_port_base, require_tool
from tests.master.helpers import wait_until
from tests.support.postfix import CORE_SERVICES, PrivatePostfix

MAIN_CF = """\
myhostname = mx.example.test
mydestination = localhost
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
mail_spool_directory = {mailspool}
home_mailbox =
mailbox_command =
biff = no
default_transport = error:never relays
"""

SERVICES = tuple(name for name in CORE_SERVICES if name != "discard") + ("local",)


@pytest.fixture
def postfix():
    if os.geteuid() != 0:
        pytest.fail("needs root: Postfix's master starts as root", pytrace=False)
    for tool in ("postfix", "swaks"):
        require_tool(tool)
    instance = PrivatePostfix(smtpd_port=free_port_base() + 54, services=SERVICES,
                              syslog_name="postfix-roost-mbox", prefix="roost-mbox-local-")
    try:
        mailspool = instance.path("mail")
        os.makedirs(mailspool)
        os.chmod(mailspool, 0o1777)
        instance.main_cf = MAIN_CF.format(mailspool=mailspool)
        instance.start()
        yield instance.port, mailspool, instance.log
    finally:
        instance.stop()


def send(port: int, subject: str, body: str) -> None:
    done = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--from", "sender@example.org",
         "--to", "nobody@localhost", "--header", f"Subject: {subject}", "--body", body,
         "--timeout", "20"], capture_output=True, text=True, timeout=40)
    assert done.returncode == 0, done.stdout + done.stderr


def delivered(log: str, count: int) -> bool:
    if not os.path.exists(log):
        return False
    return open(log, errors="replace").read().count("status=sent (delivered to mailbox)") >= count


def subjects(store: MboxUserStore) -> list[tuple[int, str, bytes]]:
    mailbox = store.open_mailbox("INBOX")
    found = []
    for info in mailbox.messages():
        with mailbox.open_message(info.uid) as stream:
            data = stream.read()
        found.append((info.uid, re.search(rb"Subject: (.*)\r\n", data).group(1).decode(), data))
    return found


def test_roost_and_postfix_local_share_an_mbox(postfix):
    port, mailspool, log = postfix
    send(port, "first", "From the body, escaped by local(8)")
    send(port, "second", "plain")
    assert wait_until(lambda: delivered(log, 2), 30), open(log).read()[-2000:]
    path = os.path.join(mailspool, "nobody")
    raw = open(path, "rb").read()
    assert raw.startswith(b"From sender@example.org  ") and b"\n>From the body" in raw
    assert b"X-UID" not in raw  # Postfix writes no Dovecot headers

    store = MboxUserStore("nobody", os.path.join(mailspool, ".folders"), path)
    found = subjects(store)
    assert [(uid, subject) for uid, subject, _ in found] == [(1, "first"), (2, "second")]
    assert found[0][2].startswith(b"Return-Path: <sender@example.org>\r\nX-Original-To: "
                                  b"nobody@localhost\r\nDelivered-To: nobody@localhost\r\n")
    assert b"\r\n>From the body, escaped by local(8)\r\n" in found[0][2]
    store.deliver("INBOX", io.BytesIO(b"Subject: third\r\n\r\nfrom roost\r\n"))
    os.chown(path, pwd.getpwnam("nobody").pw_uid, os.stat(path).st_gid)

    send(port, "fourth", "after roost")  # local(8) appends behind roost's message
    assert wait_until(lambda: delivered(log, 3), 30), open(log).read()[-2000:]
    again = subjects(MboxUserStore("nobody", os.path.join(mailspool, ".folders"), path))
    assert [(uid, subject) for uid, subject, _ in again] == [
        (1, "first"), (2, "second"), (3, "third"), (4, "fourth")]
    assert again[0][2] == found[0][2]
