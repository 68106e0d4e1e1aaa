"""The seeds end to end, on one whole roost server configured with the seeds' own lines
(tests/data/seeds; ports moved to high ones, paths into a temporary directory):

- seed 004: `echo ... | mail -s ... -r root@linuxprobe.com boss@linuxprobe.com` with Debian's
  s-nail pointed at `roost sendmail` lands in boss's mbox in mail_spool_directory, owned by boss;
- seed 003/004 aliases (`student2011: std001,...`, `mailer-daemon: postmaster`,
  `postmaster: root`, `zhangsan: root`) deliver to every member after `newaliases`;
- seed 003's access table (`120.114.141.60 OK`, `.edu.cn OK`, `ban.com REJECT`,
  `192.168.2. REJECT`) blocks and allows relaying as written, answer for answer what a real
  Postfix with the same table says; the client addresses are moved into 127/8 (127.0.0.60
  and 127.0.2.) because tests may use loopback only, and the domain entries are applied to
  the sender's domain (check_sender_access), the users the seed means;
- seed 002's smtpd_sender_login_maps (`bob@abc.mail bob`, `postmaster@abc.mail bob`) with
  reject_sender_login_mismatch lets SASL user `bob` send as those two addresses only.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import pwd
import re
import smtplib
import subprocess
import sys

import pytest

from tests.cleanup.postfix_ref import PostfixRef
from tests.conftest import SEEDS, require_tool
from tests.e2e.server import Server, ensure_system_user, wait_for

SEED_003 = (SEEDS / "003_12da88521dd6b068.txt").read_text(encoding="utf-8")
SEED_002 = (SEEDS / "002_70b3b8095a47f0b7.txt").read_text(encoding="utf-8")
SEED_004 = (SEEDS / "004_d742b6072eacad9c.txt").read_text(encoding="utf-8")
MEMBERS = ("std001", "std002", "std003", "std004")
BOB_PASSWORD = "Bob-pw2"


def seed_lines(text: str, start: str, count: int) -> str:
    """`count` indented lines of a seed, from the one starting with `start`."""
    lines = [line.strip() for line in text.splitlines()]
    index = lines.index(start)
    return "\n".join(lines[index:index + count]) + "\n"


def seed_004_main_cf() -> str:
    """The seed's `sed -i` edits of main.cf, as lines."""
    sed = re.search(r"sed -i '1i (.*?)' /etc/postfix/main.cf", SEED_004).group(1)
    lines = sed.replace("\\n", "\n").replace("\\$", "$") + "\n"
    mydestination = re.search(r"s,\^mydestination =\.\*,(.*?),' ", SEED_004).group(1)
    return lines + mydestination.replace("\\$", "$").replace("\\,", ",") + "\n"


@pytest.fixture(scope="module")
def server():
    require_tool("s-nail")
    for name in ("boss", *MEMBERS):
        ensure_system_user(name)
    inst = Server()
    try:
        inst.init()
        spool = os.path.join(inst.base_dir, "spool-mail")
        os.makedirs(spool)
        os.chmod(spool, 0o1777)
        inst.spool = spool
        aliases = seed_lines(SEED_003, "mailer-daemon: postmaster", 4)
        aliases += seed_lines(SEED_003, "student2011: std001,std002,std003,std004", 1)
        aliases += "zhangsan: root\n"   # seed 004's alias
        inst.write("aliases", aliases)
        access = seed_lines(SEED_003, "120.114.141.60      OK", 4)
        access = access.replace("120.114.141.60", "127.0.0.60").replace("192.168.2.", "127.0.2.")
        inst.write("access", access)
        inst.write("sender_login_maps", seed_lines(SEED_002, "bob@abc.mail   bob", 2))
        inst.append("users", f"bob:{{PLAIN}}{BOB_PASSWORD}:0:0::{inst.dir}/mail/bob::\n")
        inst.append("dovecot.conf", "auth_default_realm =\nauth_failure_delay = 0\n")
        main_cf = seed_004_main_cf()
        assert "mydestination = $myhostname, $mydomain" in main_cf
        inst.append("main.cf", "\n# seed 004\n" + main_cf + f"mail_spool_directory = {spool}\n"
                    "home_mailbox =\nvirtual_mailbox_domains = example.test\n"
                    # seed 003: relaying decided by the access table (see the module docstring)
                    "mynetworks = 127.0.0.1/32\n"
                    "relay_domains = $mydestination, qq.com, 126,com\n"
                    "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,\n"
                    f"  check_client_access hash:{inst.dir}/access,\n"
                    f"  check_sender_access hash:{inst.dir}/access, reject_unauth_destination\n"
                    "default_transport = discard\nrelay_transport = discard\n"
                    # seed 002
                    "smtpd_sender_restrictions = reject_sender_login_mismatch\n"
                    f"smtpd_sender_login_maps = hash:{inst.dir}/sender_login_maps\n")
        for table in ("access", "sender_login_maps"):
            done = inst.roost("postmap", f"hash:{inst.dir}/{table}")
            assert done.returncode == 0, done.stderr
        done = inst.roost("newaliases")
        assert done.returncode == 0, done.stderr
        inst.start()
        yield inst
    finally:
        inst.cleanup()


def mbox_messages(server, user: str) -> list:
    path = os.path.join(server.spool, user)
    if not os.path.exists(path):
        return []
    return [email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
            for m in mailbox.mbox(path)]


def test_seed_004_mail_command_lands_in_boss_mbox(server):
    wrapper = os.path.join(server.base_dir, "sendmail")
    with open(wrapper, "w", encoding="utf-8") as handle:
        handle.write(f"#!/bin/sh\nMAIL_CONFIG={server.dir} exec {sys.executable} -m roost sendmail "
                     '"$@"\n')
    os.chmod(wrapper, 0o755)
    command = re.search(r"^(echo \"boos .*? boss@linuxprobe.com)$", SEED_004, re.M).group(1)
    body, subject = re.match(r'echo "(.*?)" \| mail -s "(.*?)" ', command).groups()
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run(["s-nail", "-S", f"mta={wrapper}", "-s", subject, "-r",
                           "root@linuxprobe.com", "boss@linuxprobe.com"],
                          input=(body + "\n").encode(), capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: mbox_messages(server, "boss")), server.maillog()[-3000:]
    [message] = mbox_messages(server, "boss")
    assert message["Subject"] == subject
    assert message.get_content().strip() == body
    assert message["Return-Path"] == "<root@linuxprobe.com>"
    assert message["Delivered-To"] == "boss@linuxprobe.com"
    path = os.path.join(server.spool, "boss")
    with open(path, "rb") as handle:
        assert handle.readline().startswith(b"From root@linuxprobe.com ")
    assert os.stat(path).st_uid == pwd.getpwnam("boss").pw_uid
    assert wait_for(lambda: re.search(r"postfix/local\[\d+\]: \w+: to=<boss@linuxprobe.com>, "
                                      r"relay=local, .*status=sent \(delivered to mailbox\)",
                                      server.maillog())), server.maillog()[-2000:]


def send(server, sender: str, recipients, source: str = "127.0.0.1", login=None):
    client = server.smtp_client(source, tls=login is not None)
    try:
        if login:
            client.login(*login)
        code, text = client.mail(sender)
        if code != 250:
            return code, text.decode()
        for recipient in recipients:
            code, text = client.rcpt(recipient)
            if code != 250:
                return code, text.decode()
        code, text = client.data(f"From: {sender}\r\nSubject: to {recipients[0]}\r\n\r\nhi\r\n")
        return code, text.decode()
    finally:
        client.quit()


def test_aliases_deliver_to_every_member(server):
    assert send(server, "teacher@linuxprobe.com", ["student2011@linuxprobe.com"])[0] == 250
    assert send(server, "x@linuxprobe.com", ["zhangsan@linuxprobe.com"])[0] == 250
    assert send(server, "y@linuxprobe.com", ["mailer-daemon@linuxprobe.com"])[0] == 250
    for member in MEMBERS:
        assert wait_for(lambda: any(m["Subject"] == "to student2011@linuxprobe.com"
                                    for m in mbox_messages(server, member))), member
    assert wait_for(lambda: {"to zhangsan@linuxprobe.com", "to mailer-daemon@linuxprobe.com"} <=
                    {m["Subject"] for m in mbox_messages(server, "root")}), server.maillog()[-3000:]
    assert wait_for(lambda: "orig_to=<mailer-daemon@linuxprobe.com>" in server.maillog())
    log = server.maillog()
    for member in MEMBERS:
        assert re.search(rf"to=<{member}@linuxprobe.com>, orig_to=<student2011@linuxprobe.com>, "
                         r"relay=local, .*status=sent", log)
    assert re.search(r"to=<root@linuxprobe.com>, orig_to=<mailer-daemon@linuxprobe.com>, "
                     r"relay=local, .*status=sent", log)


RELAY_CASES = [
    ("127.0.0.60", "anyone@example.org"),      # 120.114.141.60  OK
    ("127.0.2.9", "anyone@example.org"),       # 192.168.2.      REJECT
    ("127.0.0.77", "prof@mail.edu.cn"),        # .edu.cn         OK
    ("127.0.0.77", "prof@edu.cn"),
    ("127.0.0.77", "spam@ban.com"),            # ban.com         REJECT
    ("127.0.0.77", "spam@mx.ban.com"),
    ("127.0.0.77", "someone@example.org"),     # not listed: reject_unauth_destination
    ("127.0.0.1", "local@example.org"),        # mynetworks
]


@pytest.fixture(scope="module")
def postfix(server):
    """A real Postfix with the same access table and relay restrictions: the oracle for what
    the seed's lines do "as written" (Postfix ignores `192.168.2.` with its trailing dot, and
    `.edu.cn` while parent_domain_matches_subdomains lists smtpd_access_maps, its default)."""
    require_tool("postfix")
    require_tool("postmap")
    ref = PostfixRef(server.base + 26, "")
    try:
        os.makedirs(ref.base, exist_ok=True)
        access = ref.write_file("access", open(server.path("access"), encoding="utf-8").read())
        ref.extra = ("mynetworks = 127.0.0.1/32\nrelay_domains = $mydestination, qq.com, 126,com\n"
                     "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,\n"
                     f"  check_client_access hash:{access},\n"
                     f"  check_sender_access hash:{access}, reject_unauth_destination\n")
        ref.start()   # smtpd opens the table per connection: compile it now
        subprocess.run(["postmap", "-c", ref.etc, f"hash:{access}"], check=True,
                       capture_output=True, timeout=30)
        yield ref
    finally:
        ref.stop()


def _normalized(text: str) -> str:
    return re.sub(r"<[^<>]*\[(127\.[0-9.]+)\]>", r"<client[\1]>", text)


@pytest.mark.parametrize("source, sender", RELAY_CASES)
def test_seed_003_access_table_controls_relaying_as_postfix_does(server, postfix, source, sender):
    code, text = send(server, sender, ["friend@far-away.example"], source=source)
    if code == 250:
        text = "queued"
    expected = postfix.send(sender, ["friend@far-away.example"], b"Subject: x\r\n\r\nhi\r\n",
                            source=source)
    expected_code, expected_text = expected
    if expected_code == 250:
        expected_text = "queued"
    assert (code, _normalized(text)) == (expected_code, _normalized(expected_text))


def test_seed_003_table_allows_and_blocks(server):
    """What the seed's table does, in words: the listed address may relay, ban.com may not
    even reach local users, an unlisted client may not relay."""
    assert send(server, "anyone@example.org", ["friend@far-away.example"],
                source="127.0.0.60")[0] == 250
    code, text = send(server, "spam@ban.com", ["boss@linuxprobe.com"], source="127.0.0.77")
    assert code == 554 and text.endswith("Sender address rejected: Access denied")
    code, text = send(server, "x@example.org", ["friend@far-away.example"], source="127.0.0.77")
    assert code == 554 and text.endswith("Relay access denied")


@pytest.mark.parametrize("sender, allowed", [
    ("bob@abc.mail", True), ("postmaster@abc.mail", True),
    ("alice@abc.mail", False), ("boss@linuxprobe.com", False)])
def test_seed_002_sender_login_maps(server, sender, allowed):
    client = server.smtp_client(tls=True)
    try:
        client.login("bob", BOB_PASSWORD)
        assert client.mail(sender)[0] == 250
        code, text = client.rcpt("friend@far-away.example")   # smtpd_delay_reject = yes
        if allowed:
            assert code == 250, text
        else:
            assert code == 553, text
            assert text.decode() == (f"5.7.1 <{sender}>: Sender address rejected: "
                                     "not owned by user bob")
    finally:
        client.quit()


def test_seed_002_unauthenticated_client_cannot_use_bobs_address(server):
    client = server.smtp_client(source="127.0.0.60")
    try:
        assert client.mail("bob@abc.mail")[0] == 250
        code, text = client.rcpt("boss@linuxprobe.com")
        assert (code, text) == (553, b"5.7.1 <bob@abc.mail>: Sender address rejected: not logged in")
    finally:
        try:
            client.quit()
        except smtplib.SMTPException:
            client.close()
