"""Debian's real Postfix delivers into roost over LMTP (inet and unix), one recipient over quota.

A roost made by `roost init` (users alice and bob, `quota_rule = *:storage=100K`, bob's
Maildir already holding 200 KB that another program put there) serves `service lmtp`; a
private Postfix instance has `virtual_transport = lmtp:inet:127.0.0.1:PORT` (second test:
`lmtp:unix:PATH`, roost's unix_listener). swaks sends one message through that Postfix to
both users in one transaction. Postfix's log must show alice's recipient `status=sent (250
2.0.0 <alice@example.test> ... Saved)` and bob's `status=bounced` with roost's `552 5.2.2`
quota reply; alice's delivered file must be exactly the sent message plus the trace headers
(Return-Path, roost's LMTP Received, Postfix's Received). Needs root (Postfix's master).
Every process is stopped by pid in the finaliser.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from tests.conftest import free_port_base, require_tool
from tests.net.lmtp_support import RoostInstance, processes_with, wait_for
from tests.support.postfix import CORE_SERVICES, NO_LOCAL_MAIL, PrivatePostfix

SMTP_OFFSET = 53  # inside the port block free_port_base claimed, unused by roost init

MAIN_CF = NO_LOCAL_MAIL + """\
myhostname = mx.example.test
default_transport = error:never relays
smtpd_tls_security_level = none
virtual_mailbox_domains = example.test
virtual_mailbox_maps = inline:{{ alice@example.test=ok, bob@example.test=ok }}
virtual_transport = {transport}
lmtp_destination_recipient_limit = 50
"""

MESSAGE = (b"From: Sender <sender@example.org>\r\n"
           b"To: alice@example.test, bob@example.test\r\n"
           b"Subject: LMTP interop\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <interop-1@example.org>\r\n"
           b"\r\n"
           b"Hello over LMTP.\r\n"
           b"..a line that starts with a dot\r\n"
           b"From the start of a line\r\n"
           + b"x" * 70 + b"\r\n")


def _fill_maildir(maildir: str, size: int) -> None:
    """Mail another program (procmail, cp) left in bob's Maildir: he is over quota."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    name = f"1700000000.M1P1.elsewhere,S={size}"
    with open(os.path.join(maildir, "cur", name + ":2,S"), "wb") as handle:
        handle.write(b"Subject: big\n\n" + b"y" * (size - 15) + b"\n")


@pytest.fixture(params=["inet", "unix"])
def stack(request):
    if os.geteuid() != 0:
        pytest.fail("test_postfix_lmtp must run as root: Postfix's master starts as root",
                    pytrace=False)
    for tool in ("postfix", "swaks"):
        require_tool(tool)
    base = tempfile.mkdtemp(prefix="roost-postfix-lmtp-", dir="/tmp")
    os.chmod(base, 0o755)
    port_base = free_port_base()
    roost = postfix = None
    try:
        roost = RoostInstance(os.path.join(base, "roost"), port_base,
                              quota_rule="*:storage=100K")
        for directory in ("run", os.path.join("run", "dovecot")):
            path = os.path.join(roost.dir, directory)
            os.makedirs(path, exist_ok=True)
            os.chmod(path, 0o755)
        os.chmod(roost.dir, 0o755)
        _fill_maildir(roost.maildir("bob"), 200 * 1024)
        roost.start()
        transport = (f"lmtp:inet:127.0.0.1:{roost.lmtp_port}" if request.param == "inet"
                     else f"lmtp:unix:{roost.lmtp_socket}")
        assert request.param == "inet" or os.path.exists(roost.lmtp_socket), roost.lmtp_socket
        # as with Postfix's own private/ directory: closed to listing, the socket reachable
        # by lmtp(8) (user postfix)
        directory = os.path.dirname(roost.lmtp_socket)
        while directory.startswith(roost.dir + "/"):
            os.chmod(directory, os.stat(directory).st_mode | 0o111)
            directory = os.path.dirname(directory)
        postfix = PrivatePostfix(MAIN_CF.format(transport=transport),
                                 smtpd_port=port_base + SMTP_OFFSET,
                                 services=CORE_SERVICES + ("lmtp",), syslog_name="postfix-roost-lmtp",
                                 directory=os.path.join(base, "postfix"))
        postfix.start()
        roost.kind = request.param
        yield roost, postfix
    finally:
        if postfix is not None:
            postfix.stop()
        if roost is not None:
            roost.stop()
        leftovers = processes_with(os.path.join(base, "roost"))
        shutil.rmtree(base, ignore_errors=True)
        assert not leftovers, f"processes left running: {leftovers}"


def stack_kind(roost) -> str:
    return roost.kind


def test_postfix_delivers_to_two_users_one_over_quota(stack, tmp_path):
    roost, postfix = stack
    message_file = tmp_path / "message.eml"
    message_file.write_bytes(MESSAGE[:-2])  # swaks ends the data with CRLF before the dot
    sent = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{postfix.port}", "--ehlo", "client.example.test",
         "--from", "sender@example.org", "--to", "alice@example.test,bob@example.test",
         "--data", f"@{message_file}", "--timeout", "20"],
        capture_output=True, text=True, timeout=40)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    queue_id = re.search(r"250 2\.0\.0 Ok: queued as (\w+)", sent.stdout).group(1)

    def both_done() -> bool:
        log = postfix.read_log()
        return (re.search(rf"{queue_id}: to=<alice@example\.test>.*status=\w+", log)
                and re.search(rf"{queue_id}: to=<bob@example\.test>.*status=\w+", log))

    assert wait_for(both_done, 60), postfix.read_log()[-4000:] + roost.maillog()[-3000:]
    log = postfix.read_log()
    alice = re.search(rf"{queue_id}: to=<alice@example\.test>.*", log).group(0)
    bob = re.search(rf"{queue_id}: to=<bob@example\.test>.*", log).group(0)
    assert "status=sent (250 2.0.0 <alice@example.test> " in alice and " Saved)" in alice, alice
    assert "status=bounced" in bob, bob
    assert "552 5.2.2 <bob@example.test> Quota exceeded (mailbox for user is full)" in bob, bob
    # one LMTP transaction carried both recipients
    assert re.search(r"lmtp\(alice@example\.test\)<\d+><[A-Za-z0-9+/]{22}>: msgid=<interop-1@example\.org>: "
                     r"saved mail to INBOX", roost.maillog()), roost.maillog()[-3000:]
    assert re.search(r"lmtp\(bob@example\.test\)<\d+><[^>]+:R2>: msgid=<interop-1@example\.org>: "
                     r"save failed to INBOX: Quota exceeded", roost.maillog())

    delivered = roost.messages("alice")
    assert len(delivered) == 1
    data = delivered[0]
    original = MESSAGE.replace(b"\r\n", b"\n")
    assert data.endswith(original)
    trace = data[:-len(original)].decode()
    lines = re.findall(r"^\S.*(?:\n\s.*)*", trace, re.M)
    assert lines[0] == "Return-Path: <sender@example.org>"
    peer = r" \(\[127\.0\.0\.1\]\)" if stack_kind(roost) == "inet" else ""
    assert re.fullmatch(r"Received: from mx\.example\.test" + peer + r"\n"
                        r"\tby \S+ with LMTP\n\tid \S+\n"
                        r"\t\(envelope-from <sender@example\.org>\); .+", lines[1]), lines[1]
    assert lines[2].startswith("Received: from client.example.test") and "(Postfix)" in lines[2]
    assert len(lines) == 3, lines  # nothing else added (two recipients: no Delivered-To)
    assert len(roost.messages("bob")) == 1  # only what was already there
