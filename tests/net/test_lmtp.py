"""roost.net.lmtp sessions in memory: per-recipient replies, trace headers, pipelining,
byte-at-a-time input, limits, store failures, and garbage input (hypothesis)."""

from __future__ import annotations

import asyncio
import os
import re

from hypothesis import given, settings, strategies as st

from roost.auth.lookup import UserRecord
from roost.lmtp.headers import trace_headers
from roost.lmtp.recipient import split_detail
from roost.net.lmtp import LmtpConfig, LmtpSession
from roost.net.server import Connection
from roost.store import open_user_store
from roost.store.api import StoreError
from roost.store.location import MailSettings
from tests.conftest import RecordingLog

REPLY_LINE = re.compile(rb"[2-5]\d\d[ -][^\r\n]*\r\n")


class FakeLookup:
    def __init__(self, users: dict[str, dict]):
        self.users = users
        self.asked: list[tuple[str, str]] = []

    def lookup_user(self, name: str, service: str = ""):
        self.asked.append((name, service))
        extra = self.users.get(name)
        if extra is None:
            return None
        return UserRecord(name, None, None, None, None, dict(extra))


class FakeWriter:
    def __init__(self):
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, name, default=None):
        return default


class LogSetup:
    def __init__(self):
        self.lines: list[tuple[str, str, str]] = []

    def dovecot(self, service: str):
        setup = self

        class Log(RecordingLog):
            def log(self, level: str, text: str) -> None:
                setup.lines.append((service, level, text))

        return Log()


def make_config(tmp_path, users=None, *, quota="*:storage=10K", **overrides) -> LmtpConfig:
    mail = MailSettings(mail_location=f"maildir:{tmp_path}/mail/%u", first_valid_uid=0,
                        first_valid_gid=0, plugin={"quota_rule": quota} if quota else {})
    values = dict(hostname="mx.roost.test", login_greeting="Dovecot ready.",
                  recipient_delimiter="+", save_to_detail=False, add_received=True,
                  quota_tempfail=False, mail_temp_dir=str(tmp_path / "spool"),
                  message_size_limit=0,
                  lookup=FakeLookup(users if users is not None else {"alice": {}, "bob": {}}),
                  open_store=lambda user: open_user_store(user, mail), log_setup=LogSetup())
    values.update(overrides)
    return LmtpConfig(**values)


async def run_session(config: LmtpConfig, data: bytes, *, byte_at_a_time: bool = False,
                      peer: str = "127.0.0.1") -> bytes:
    reader = asyncio.StreamReader()
    writer = FakeWriter()
    conn = Connection(reader=reader, writer=writer, listener=None, config=None,
                      log=RecordingLog(), session_id="t", peer_host=peer, peer_port=None,
                      local_host="127.0.0.1", local_port=24, tls=False, ssl_context=None)
    task = asyncio.ensure_future(LmtpSession(conn, config).run())
    pieces = [data[i:i + 1] for i in range(len(data))] if byte_at_a_time else [data]
    for piece in pieces:
        reader.feed_data(piece)
        await asyncio.sleep(0)
    reader.feed_eof()
    await asyncio.wait_for(task, 20)
    return bytes(writer.data)


def session(config, data, **kwargs) -> list[str]:
    out = asyncio.run(run_session(config, data, **kwargs))
    return out.decode().split("\r\n")[:-1]


def maildir_messages(tmp_path, user: str, folder: str = "") -> list[bytes]:
    base = tmp_path / "mail" / user / folder
    found = []
    for sub in ("new", "cur"):
        directory = base / sub
        if directory.is_dir():
            for name in sorted(os.listdir(directory)):
                found.append((directory / name).read_bytes())
    return found


MESSAGE = b"Subject: hi\r\nMessage-ID: <m1@example.org>\r\n\r\nbody\r\n..dotted\r\n"
TRANSACTION = (b"LHLO client.test\r\nMAIL FROM:<sender@example.org>\r\n"
               b"RCPT TO:<alice@example.test>\r\nRCPT TO:<nosuch>\r\nRCPT TO:<bob+news>\r\n"
               b"DATA\r\n" + MESSAGE + b".\r\nQUIT\r\n")


def test_per_recipient_replies_and_delivery(tmp_path):
    config = make_config(tmp_path, {"alice@example.test": {}, "bob": {}})
    lines = session(config, TRANSACTION)
    assert lines[0] == "220 mx.roost.test Dovecot ready."
    assert "250-PIPELINING" in lines and "250-ENHANCEDSTATUSCODES" in lines
    assert "250-8BITMIME" in lines and any(line[4:].startswith("SIZE") for line in lines)
    tail = lines[lines.index("250 2.1.0 OK"):]
    assert tail[1] == "250 2.1.5 OK"
    assert tail[2] == "550 5.1.1 <nosuch> User doesn't exist: nosuch"
    assert tail[3] == "250 2.1.5 OK"
    assert tail[4] == "354 OK"
    assert re.fullmatch(r"250 2\.0\.0 <alice@example\.test> [A-Za-z0-9+/]{22} Saved", tail[5])
    assert re.fullmatch(r"250 2\.0\.0 <bob\+news> [A-Za-z0-9+/]{22}:R3 Saved", tail[6])
    assert tail[7] == "221 2.0.0 Bye"
    assert config.lookup.asked == [("alice@example.test", "lmtp"), ("nosuch", "lmtp"),
                                   ("bob", "lmtp")]
    [alice] = maildir_messages(tmp_path, "alice@example.test")
    assert alice.endswith(MESSAGE.replace(b"\r\n", b"\n").replace(b"..dotted", b".dotted"))
    head = alice[:alice.index(b"Subject: hi")].decode()
    assert head.startswith("Return-Path: <sender@example.org>\nReceived: from client.test "
                           "([127.0.0.1])\n\tby mx.roost.test with LMTP\n\tid ")
    assert "Delivered-To" not in head  # two recipients
    logs = config.log_setup.lines
    assert any(service.startswith("lmtp(alice@example.test)<") and
               text == "msgid=<m1@example.org>: saved mail to INBOX" for service, _l, text in logs)
    assert any(text == "Connect from 127.0.0.1" for _s, _l, text in logs)
    assert any(text == "Disconnect from 127.0.0.1: Logged out (state=READY)" for _s, _l, text in logs)


def test_single_recipient_gets_delivered_to_and_for(tmp_path):
    config = make_config(tmp_path)
    data = (b"LHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice+x>\r\nDATA\r\n" + MESSAGE + b".\r\n"
            b"MAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nDATA\r\n" + MESSAGE + b".\r\nQUIT\r\n")
    lines = session(config, data)
    saved = [line for line in lines if line.endswith(" Saved")]
    assert re.fullmatch(r"250 2\.0\.0 <alice\+x> [A-Za-z0-9+/]{22} Saved", saved[0])
    assert re.fullmatch(r"250 2\.0\.0 <alice> [A-Za-z0-9+/]{22}:T2 Saved", saved[1])
    first, second = maildir_messages(tmp_path, "alice")
    texts = sorted([first.decode(), second.decode()])
    assert any(t.startswith("Return-Path: <>\nDelivered-To: alice+x\nReceived: from c ([127.0.0.1])")
               and "\t(envelope-from <>)\n\tfor <alice+x>; " in t for t in texts)
    assert any(re.search(r"\tid [A-Za-z0-9+/]{22}:T2\n", t) for t in texts)


def test_quota_exceeded_is_552_and_others_still_get_mail(tmp_path):
    config = make_config(tmp_path, quota="*:storage=1K")
    big = b"Subject: big\r\n\r\n" + b"x" * 3000 + b"\r\n"
    data = (b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n"
            + big + b".\r\nQUIT\r\n")
    config_small = make_config(tmp_path, quota="*:storage=1K")
    lines = session(config_small, data)
    assert "552 5.2.2 <alice> Quota exceeded (mailbox for user is full)" in lines
    assert "552 5.2.2 <bob> Quota exceeded (mailbox for user is full)" in lines
    lines = session(make_config(tmp_path, quota=None), data)
    assert sum(line.endswith(" Saved") for line in lines) == 2
    logs = config_small.log_setup.lines
    assert any(text == "msgid=unspecified: save failed to INBOX: Quota exceeded (mailbox for "
                       "user is full)" for _s, _l, text in logs)


def test_quota_full_tempfail_answers_452(tmp_path):
    config = make_config(tmp_path, quota="*:storage=1K", quota_tempfail=True)
    data = (b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nDATA\r\n"
            + b"Subject: b\r\n\r\n" + b"x" * 3000 + b"\r\n.\r\n")
    assert "452 4.2.2 <alice> Quota exceeded (mailbox for user is full)" in session(config, data)


def test_detail_mailbox_and_inbox_fallback(tmp_path):
    config = make_config(tmp_path, save_to_detail=True)
    store = config.open_store(UserRecord("alice", None, None, None, None, {}))
    store.create_mailbox("news")
    data = (b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice+news>\r\nRCPT TO:<alice+nope>\r\n"
            b"DATA\r\n" + MESSAGE + b".\r\n")
    lines = session(config, data)
    assert sum(line.endswith(" Saved") for line in lines) == 2
    assert len(maildir_messages(tmp_path, "alice", ".news")) == 1
    assert len(maildir_messages(tmp_path, "alice")) == 1
    texts = [text for _s, _l, text in config.log_setup.lines]
    assert "msgid=<m1@example.org>: saved mail to news" in texts
    assert "msgid=<m1@example.org>: saved mail to INBOX" in texts


def test_byte_at_a_time_gives_the_same_replies(tmp_path):
    whole = session(make_config(tmp_path / "a", {"alice@example.test": {}, "bob": {}}), TRANSACTION)
    single = session(make_config(tmp_path / "b", {"alice@example.test": {}, "bob": {}}),
                     TRANSACTION, byte_at_a_time=True)
    strip = [re.sub(r"[A-Za-z0-9+/]{22}", "ID", line) for line in whole]
    assert strip == [re.sub(r"[A-Za-z0-9+/]{22}", "ID", line) for line in single]


def test_store_failure_is_451_and_the_session_goes_on(tmp_path):
    def broken(user):
        raise StoreError("disk on fire")

    config = make_config(tmp_path, open_store=broken)
    data = (b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nDATA\r\n" + MESSAGE + b".\r\n"
            b"NOOP\r\nQUIT\r\n")
    lines = session(config, data)
    assert any(line.startswith("451 4.2.0 <alice> Internal error occurred.") for line in lines)
    assert lines[-2:] == ["250 2.0.0 OK", "221 2.0.0 Bye"]


def test_a_store_bug_fails_only_that_recipient(tmp_path):
    good = make_config(tmp_path).open_store

    def flaky(user):
        if user.user == "alice":
            raise_later = good(user)
            raise_later.deliver = lambda *args, **kwargs: 1 / 0
            return raise_later
        return good(user)

    lines = session(make_config(tmp_path, open_store=flaky),
                    b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n"
                    b"DATA\r\n" + MESSAGE + b".\r\n")
    assert lines[-2].startswith("451 4.2.0 <alice> ") and lines[-1].endswith(" Saved")


def test_lookup_failure_is_temporary(tmp_path):
    class Broken:
        def lookup_user(self, name, service=""):
            raise OSError("passwd-file unreadable")

    lines = session(make_config(tmp_path, lookup=Broken()),
                    b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nQUIT\r\n")
    assert "451 4.3.0 <alice> Temporary user lookup failure" in lines


def test_sequence_errors_and_unknown_commands(tmp_path):
    lines = session(make_config(tmp_path),
                    b"MAIL FROM:<a>\r\nHELO x\r\nLHLO c\r\nRCPT TO:<alice>\r\nDATA\r\n"
                    b"VRFY alice\r\nRSET\r\nQUIT\r\n")
    assert lines[1] == "250 2.1.0 OK"  # MAIL before LHLO is taken, as Dovecot's lmtp does
    assert lines[2].startswith("500 ")
    codes = [line[:3] for line in lines if line[3:4] == " "]
    assert codes[-5:] == ["503", "503", "252", "250", "221"]  # VRFY: Try RCPT instead


def test_idle_client_is_disconnected(tmp_path):
    config = make_config(tmp_path, idle_timeout=0.2)

    async def idle() -> bytes:
        reader = asyncio.StreamReader()
        writer = FakeWriter()
        conn = Connection(reader=reader, writer=writer, listener=None, config=None,
                          log=RecordingLog(), session_id="t", peer_host="", peer_port=None,
                          local_host="", local_port=None, tls=False, ssl_context=None)
        reader.feed_data(b"LHLO c\r\n")
        await asyncio.wait_for(LmtpSession(conn, config).run(), 5)
        return bytes(writer.data)

    out = asyncio.run(idle())
    assert out.endswith(b"421 4.4.2 Disconnected for inactivity\r\n")


def test_large_message_is_spooled_not_held(tmp_path):
    body = b"".join(b"%07d " % i + b"y" * 70 + b"\r\n" for i in range(40000))  # ~3 MB
    message = b"Subject: large\r\n\r\n" + body
    lines = session(make_config(tmp_path, quota=None),
                    b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nDATA\r\n" + message + b".\r\n")
    assert lines[-1].endswith(" Saved")
    [stored] = maildir_messages(tmp_path, "alice")
    assert stored.endswith(message.replace(b"\r\n", b"\n"))
    assert os.listdir(tmp_path / "spool") == []  # unnamed spool files leave nothing behind


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_breaks_the_session(tmp_path_factory, garbage):
    tmp = tmp_path_factory.mktemp("lmtp")
    out = asyncio.run(run_session(make_config(tmp), b"LHLO c\r\n" + garbage + b"\r\nQUIT\r\n"))
    assert out.startswith(b"220 ")
    position = 0
    while position < len(out):
        match = REPLY_LINE.match(out, position)
        assert match, out[position:position + 80]
        position = match.end()


def test_split_detail():
    assert split_detail("alice+news@example.test", "+") == ("alice@example.test", "news")
    assert split_detail("alice-x+y@d", "+-") == ("alice@d", "x+y")
    assert split_detail("+alice@d", "+") == ("+alice@d", "")
    assert split_detail("alice", "") == ("alice", "")


def test_trace_headers_cannot_be_injected():
    head = trace_headers(sender="a\r\nX-Evil: 1", recipient="b\nX: y", helo="h\r\nZ: z",
                         client_ip="127.0.0.1", hostname="mx", transaction_id="id", when=0)
    assert head.count(b"\r\n") == 7 and b"\nX" not in head and b"\nZ" not in head


def test_delivery_into_mbox_location(tmp_path):
    mail = MailSettings(mail_location=f"mbox:{tmp_path}/mbox/%u:INBOX={tmp_path}/spool-mail/%u",
                        first_valid_uid=0, first_valid_gid=0)
    config = make_config(tmp_path, open_store=lambda user: open_user_store(user, mail))
    lines = session(config, b"LHLO c\r\nMAIL FROM:<bounces@example.org>\r\nRCPT TO:<alice>\r\n"
                            b"DATA\r\n" + MESSAGE + b"From me\r\n.\r\n")
    assert lines[-1].endswith(" Saved")
    text = (tmp_path / "spool-mail" / "alice").read_bytes()
    assert text.startswith(b"From bounces@example.org  ")
    assert b"\nReturn-Path: <bounces@example.org>\nDelivered-To: alice\n" in text
    assert b"\n>From me\n" in text and b"\nX-UID: 1\n" in text


def test_chunking_bdat_delivers_per_recipient(tmp_path):
    lines = session(make_config(tmp_path),
                    b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n"
                    b"BDAT 14\r\nSubject: x\r\n\r\nBDAT 9 LAST\r\n.body\r\n\r\nQUIT\r\n")
    assert lines[-4] == "250 2.0.0 OK"
    assert lines[-3].startswith("250 2.0.0 <alice> ") and lines[-2].startswith("250 2.0.0 <bob> ")
    [stored] = maildir_messages(tmp_path, "alice")
    assert stored.endswith(b"\nSubject: x\n\n.body\n\n")  # BDAT data is not dot-stuffed


def test_rcpt_check_quota_refuses_users_already_over(tmp_path):
    config = make_config(tmp_path, quota="*:storage=10K", rcpt_check_quota=True)
    grace = b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nDATA\r\nSubject: g\r\n\r\n" \
        + (b"x" * 98 + b"\r\n") * 105 + b".\r\n"
    assert session(config, grace)[-1].endswith(" Saved")  # within the 10% grace: now over
    lines = session(config, b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n")
    assert lines[-2:] == ["552 5.2.2 <alice> Quota exceeded (mailbox for user is full)",
                          "250 2.1.5 OK"]


def test_unwritable_spool_directory_is_a_temporary_failure(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = make_config(tmp_path, mail_temp_dir=str(blocker / "spool"))
    lines = session(config, b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\n"
                            b"DATA\r\n" + MESSAGE + b".\r\nNOOP\r\n")
    assert lines[-3:] == ["451 4.3.0 <alice> Temporary internal failure",
                          "451 4.3.0 <bob> Temporary internal failure", "250 2.0.0 OK"]


def test_overlong_command_line_is_refused_and_the_session_goes_on(tmp_path):
    lines = session(make_config(tmp_path),
                    b"LHLO c\r\nMAIL FROM:<" + b"a" * 5000 + b"@x>\r\nNOOP\r\nQUIT\r\n")
    assert lines[-3][:1] == "5" and lines[-2:] == ["250 2.0.0 OK", "221 2.0.0 Bye"]


def test_lmtp_hdr_delivery_address_none_drops_delivered_to(tmp_path):
    config = make_config(tmp_path, delivered_to=False, add_received=False)
    session(config, b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<alice>\r\nDATA\r\n" + MESSAGE + b".\r\n")
    [stored] = maildir_messages(tmp_path, "alice")
    assert stored.startswith(b"Return-Path: <s@x>\nSubject: hi\n")  # no Delivered-To, no Received
