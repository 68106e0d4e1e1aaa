"""The own-LMTP shortcut (roost.delivery.store): userdb lookup and a real Maildir store,
reported as lmtp(8) would log the same conversation."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

from roost.auth.lookup import UserRecord
from roost.delivery import store as store_agent
from roost.store import MailSettings, QuotaExceeded, open_user_store
from tests.conftest import RecordingLog
from tests.delivery.helpers import request, settings_of


class Lookup:
    def __init__(self, root):
        self.root = root

    def lookup_user(self, name, service):
        if name in ("alice", "full"):
            return UserRecord(name, str(os.geteuid()), str(os.getegid()), f"{self.root}/{name}",
                              f"maildir:{self.root}/{name}/Maildir")
        return None


def config(tmp_path):
    mail = MailSettings(first_valid_uid=0, first_valid_gid=0)

    def open_store(user):
        store = open_user_store(user, mail)
        if user.user == "full":
            def refuse(*args, **kwargs):
                raise QuotaExceeded("Quota exceeded (mailbox for user is full)")
            store.deliver = refuse
        return store
    return SimpleNamespace(lookup=Lookup(str(tmp_path)), recipient_delimiter="+", mail_temp_dir=str(tmp_path / "tmp"),
                           hostname="mx.roost.test", add_received=True, save_to_detail=False, quota_tempfail=False,
                           open_store=open_store, log_setup=None)


def test_store_shortcut_delivers_and_reports_like_lmtp(tmp_path):
    log = RecordingLog()
    req = request("alice+news", "nosuch", "full", transport="lmtp", nexthop="unix:/run/dovecot/lmtp")
    results = asyncio.run(store_agent.deliver(req, settings_of(), log=log, lmtp_config=config(tmp_path)))
    assert [r.status for r in results] == ["sent", "bounced", "bounced"]
    assert results[0].relay == "mx.roost.test[/run/dovecot/lmtp]"
    assert results[0].text.startswith("250 2.0.0 <alice+news> ") and results[0].text.endswith(" Saved")
    assert results[1].text == ("host mx.roost.test[/run/dovecot/lmtp] said: 550 5.1.1 <nosuch> User doesn't "
                               "exist: nosuch (in reply to RCPT TO command)")
    assert results[2].dsn == "5.2.2" and results[2].text.endswith("(in reply to end of DATA command)")
    new = tmp_path / "alice" / "Maildir" / "new"
    [name] = os.listdir(new)
    content = (new / name).read_bytes()
    assert b"Return-Path: <alice@example.org>" in content and b"Hello.\n.leading dot\n" in content.replace(b"\r", b"")
    assert all(text.startswith("4ABCDEF12: to=<") for _, text in log.lines)
