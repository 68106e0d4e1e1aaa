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
import shutil
import signal
import subprocess
import tempfile

import pytest

from roost.store.mbox.store import MboxUserStore
from tests.conftest import free_port_base, require_tool
from tests.master.helpers import alive, kill_quietly, wait_until

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {etc}
queue_directory = {spool}
data_directory = {data}
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {log}
maillog_file_prefixes = {base}
syslog_name = postfix-roost-mbox
myhostname = mx.example.test
mydestination = localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
alias_maps =
alias_database =
local_recipient_maps =
mail_spool_directory = {mailspool}
home_mailbox =
mailbox_command =
biff = no
default_transport = error:never relays
"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _session_members(pid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(pid) and alive(int(entry)):
            members.append(int(entry))
    return members


@pytest.fixture
def postfix():
    if os.geteuid() != 0:
        pytest.fail("needs root: Postfix's master starts as root", pytrace=False)
    for tool in ("postfix", "swaks"):
        require_tool(tool)
    base = tempfile.mkdtemp(prefix="roost-mbox-local-", dir="/tmp")
    os.chmod(base, 0o755)
    etc, spool, data = (os.path.join(base, name) for name in ("etc", "spool", "data"))
    mailspool = os.path.join(base, "mail")
    for path in (etc, spool, data, mailspool):
        os.makedirs(path)
    os.chmod(mailspool, 0o1777)
    os.chown(data, pwd.getpwnam("postfix").pw_uid, pwd.getpwnam("postfix").pw_gid)
    port = free_port_base() + 54
    log = os.path.join(base, "postfix.log")
    with open(os.path.join(etc, "main.cf"), "w") as handle:
        handle.write(MAIN_CF.format(etc=etc, spool=spool, data=data, log=log, base=base,
                                    mailspool=mailspool))
    with open(os.path.join(etc, "master.cf"), "w") as handle:
        handle.write(MASTER_CF.format(port=port))
    master = None
    try:
        for action in ("check", "start"):
            done = subprocess.run(["postfix", "-c", etc, action], capture_output=True, text=True,
                                  timeout=30)
            assert done.returncode == 0, f"postfix {action}: {done.stdout}{done.stderr}"
        pid_file = os.path.join(spool, "pid", "master.pid")
        master = wait_until(lambda: os.path.exists(pid_file) and int(open(pid_file).read()), 10)
        yield port, mailspool, log
    finally:
        if master:
            members = _session_members(master)
            subprocess.run(["postfix", "-c", etc, "stop"], capture_output=True, timeout=30)
            if not wait_until(lambda: not any(alive(pid) for pid in members), 10):
                for pid in members:
                    kill_quietly(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


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
