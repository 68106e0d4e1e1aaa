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


def test_large_message_spills_from_memory_to_mail_temp_dir(tmp_path, monkeypatch):
    small, _size = store_agent._spool(request("alice", transport="lmtp"), str(tmp_path / "none"))
    small.close()
    assert not os.path.exists(tmp_path / "none")   # in memory: the directory was not needed
    monkeypatch.setattr(store_agent, "MEMORY_SPOOL", 64)
    big = b"Subject: big\r\n\r\n" + b"0123456789abcdef\r\n" * 5000
    req = request("alice", transport="lmtp", nexthop="unix:/run/dovecot/lmtp", message=big)
    spool, size = store_agent._spool(req, str(tmp_path / "spool"))
    try:
        spool.seek(0)
        assert size == len(big) and spool.read() == big
        assert os.path.isdir(tmp_path / "spool")   # the disk file lives (unnamed) there
    finally:
        spool.close()
    results = asyncio.run(store_agent.deliver(req, settings_of(), log=RecordingLog(),
                                              lmtp_config=config(tmp_path)))
    assert [r.status for r in results] == ["sent"]
    [name] = os.listdir(tmp_path / "alice" / "Maildir" / "new")
    assert (tmp_path / "alice" / "Maildir" / "new" / name).read_bytes().endswith(
        big.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n"))


def test_store_deliveries_of_a_batch_share_the_fsync_of_new(tmp_path, monkeypatch):
    from roost.delivery import commit_thread
    from roost.store.maildir import deliver as maildir_deliver
    from tests.delivery.test_commit_thread import run_batched

    direct, batched = [], []
    monkeypatch.setattr(maildir_deliver, "fsync_dir", lambda path: direct.append(path))
    real = commit_thread.fsync_directory
    monkeypatch.setattr(commit_thread, "fsync_directory", lambda path: (batched.append(path), real(path)))
    lmtp = config(tmp_path)
    jobs = [commit_thread.StoreJob(store_agent._deliver_blocking, request("alice", transport="lmtp",
                                                                           queue_id=f"4ABCDEF1{n}"),
                                   lmtp, settings_of()) for n in range(3)]
    run_batched(commit_thread.CommitThread(), jobs)
    assert [[stage for stage, _reply in job.value] for job in jobs] == [["dot"]] * 3
    assert all(reply.code == 250 for job in jobs for _stage, reply in job.value)
    new = str(tmp_path / "alice" / "Maildir" / "new")
    assert len(os.listdir(new)) == 3
    assert direct == [] and batched == [new]   # one fsync of new/ for the three, by the batch
    # outside the commit thread the store syncs at once, as before
    open_store = lmtp.open_store
    with open(os.path.join(tmp_path, "message"), "w+b") as spool:
        spool.write(b"Subject: x\r\n\r\nbody\r\n")
        spool.flush()
        from roost.lmtp.delivery import SpoolReader
        open_store(Lookup(str(tmp_path)).lookup_user("alice", "lmtp")).deliver(
            "INBOX", SpoolReader(b"", spool.fileno(), os.path.getsize(spool.name)))
    assert direct == [new]


def test_spool_takes_the_queue_lf_chunks_when_the_request_has_them(tmp_path):
    """A request from the queue manager carries its content as LF chunks (lf_content): the
    spool is made from them, CRLF as content() would read, without opening content()."""
    from dataclasses import replace

    body = b"Subject: s\r\n\r\nline one\r\n" + b"x" * 70000 + b"\r\nend\r\n"
    plain = request("alice", transport="lmtp", message=body)
    lf = body.replace(b"\r\n", b"\n")

    def never_opened():
        raise AssertionError("content() opened although lf_content was there")
    chunked = replace(plain, content=never_opened,
                      lf_content=lambda: iter((lf[:5], lf[5:40000], lf[40000:])))
    spooled = []
    for req in (plain, chunked):
        spool, size = store_agent._spool(req, str(tmp_path / "spool"))
        try:
            spool.seek(0)
            spooled.append((size, spool.read()))
        finally:
            spool.close()
    assert spooled == [(len(body), body)] * 2
