"""roost's lmtp(8) client against a real Dovecot 2.3 LMTP server (unix socket and TCP):
per-recipient RCPT and end-of-data replies (unknown user, over quota), Maildir content."""

from __future__ import annotations

import asyncio
import os

import pytest

from roost.delivery import smtp as smtp_agent
from tests.conftest import RecordingLog, free_port_base
from tests.delivery.helpers import MESSAGE, FakeResolver, request, settings_of
from tests.support.dovecot import PASSWD_FILE_DBS, PrivateDovecot, quota_plugin

CONF = """\
protocols = lmtp
hostname = mx.dc.test
mail_location = maildir:{base}/mail/%u
mail_uid = 65534
mail_gid = 65534
mail_plugins = $mail_plugins quota
""" + PASSWD_FILE_DBS + quota_plugin("*:storage=10K") + """\
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""


@pytest.fixture(scope="module")
def dovecot():
    port = free_port_base() + 24
    instance = PrivateDovecot(CONF, prefix="roost-delivery-lmtp-", port=port)
    try:
        instance.make_dirs("mail")
        instance.write_users(("alice", "bob"))
        instance.start(port)
        yield instance.base, port
    finally:
        instance.stop()


def _deliver(req):
    log = RecordingLog()
    results = asyncio.run(smtp_agent.deliver(req, settings_of(), resolver=FakeResolver({}), log=log, lmtp=True))
    return results, [text for _, text in log.lines if ": to=<" in text]


def test_lmtp_unix_socket_per_recipient_results(dovecot):
    base, _ = dovecot
    path = os.path.join(base, "run", "lmtp")
    big = b"Subject: big\r\n\r\n" + b"z" * 78 * 300 + b"\r\n"
    results, lines = _deliver(request("alice", "nosuch", transport="lmtp", nexthop=f"unix:{path}"))
    assert [r.status for r in results] == ["sent", "bounced"]
    assert results[0].text.startswith("250 2.0.0 <alice> ") and results[0].text.endswith(" Saved")
    assert results[1].dsn == "5.1.1" and "(in reply to RCPT TO command)" in results[1].text
    assert results[0].relay == f"mx.roost.test[{path}]"
    new = os.path.join(base, "mail", "alice", "new")
    [name] = os.listdir(new)
    content = open(os.path.join(new, name), "rb").read()
    assert b"\n.leading dot\n" in content and content.endswith(b"Hello.\n.leading dot\n")
    results, _ = _deliver(request("bob", transport="lmtp", nexthop=f"unix:{path}", message=big))
    assert results[0].status == "bounced" and results[0].dsn == "5.2.2"
    assert results[0].text.endswith("(in reply to end of DATA command)")


def test_lmtp_inet(dovecot):
    base, port = dovecot
    results, lines = _deliver(request("bob", transport="lmtp", nexthop=f"inet:127.0.0.1:{port}", message=MESSAGE))
    assert results[0].status == "sent" and results[0].relay == f"127.0.0.1[127.0.0.1]:{port}"
    assert lines[0].startswith(f"4ABCDEF12: to=<bob>, relay=127.0.0.1[127.0.0.1]:{port}, delay=")


def test_missing_socket_defers_with_postfix_text(tmp_path):
    path = str(tmp_path / "nothing")
    results, lines = _deliver(request("alice", transport="lmtp", nexthop=f"unix:{path}"))
    assert (results[0].status, results[0].dsn, results[0].relay) == ("deferred", "4.4.1", "none")
    # observed from Postfix 3.7's lmtp(8): "connect to HOST[/path]: No such file or directory"
    assert results[0].text == f"connect to mx.roost.test[{path}]: No such file or directory"
