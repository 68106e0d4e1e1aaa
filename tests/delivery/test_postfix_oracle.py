"""Differential tests against a private Debian Postfix 3.7: the same messages through Postfix
and through roost's agents give the same mbox bytes, the same DSN messages (failure, delay,
success) and the same smtp(8) log texts, up to queue ids, dates and time stamps."""

from __future__ import annotations

import asyncio
import io
import os
import re

import pytest

from roost.config.diagnostics import Diagnostics
from roost.delivery import Recipient, RecipientResult
from roost.delivery import bounce
from roost.delivery import local as local_agent
from roost.delivery import smtp as smtp_agent
from roost.delivery.local import User
from roost.tables import clear_cache
from roost.tables.indexed import build
from tests.conftest import RecordingLog, free_port_base
from tests.delivery.helpers import FakeResolver, Sink, request, settings_of
from tests.delivery.postfix_oracle import PrivatePostfix

ORIGINAL = (b"From: root@oracle.test\r\nTo: x@remote.test\r\nSubject: hello\r\n"
            b"Message-ID: <orig1@oracle.test>\r\n\r\nbody line\r\nFrom me\r\n")
COMMAND_ALIASES = {
    "tempfail": "|/bin/sh -c 'exit 75'", "nouser": "|/bin/sh -c 'exit 67'",
    "plain": "|/bin/sh -c 'echo oops; exit 1'", "sig": "|/bin/sh -c 'kill -9 $$'", "okcmd": "|/bin/cat",
    "slow": "|/bin/sleep 30", "fwd": "someone@remote.test",
}
DATE = re.compile(r"[A-Z][a-z]{2}, [ \d]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\)")


@pytest.fixture(scope="module")
def oracle():
    base = free_port_base()
    sink = postfix = None
    try:
        sink = Sink("127.0.0.13", base + 26, "-f", "RCPT")
        aliases = "postmaster: root\n" + "".join(f'{name}: "{target}"\n' for name, target in COMMAND_ALIASES.items())
        postfix = PrivatePostfix(base + 25, aliases=aliases, extra=(
            "delay_warning_time = 1s\ncommand_time_limit = 2s\ndefault_transport = error:no remote\n"
            f"transport_maps = inline:{{closed.test=smtp:[127.0.0.12]:{base + 27}, "
            f"sink.test=smtp:[127.0.0.13]:{base + 26}}}\n"))
        postfix.start()
        postfix.send("root@oracle.test", ["y@closed.test"], ORIGINAL)
        postfix.send("root@oracle.test", ["nosuchuser@oracle.test"], ORIGINAL)
        postfix.send("root@oracle.test", ["root@oracle.test"], ORIGINAL, rcpt_options=["NOTIFY=SUCCESS"])
        postfix.send("root@oracle.test", ["postmaster@oracle.test"], ORIGINAL)
        postfix.send("root@oracle.test", ["x@sink.test"], ORIGINAL)
        for name in COMMAND_ALIASES:   # null sender: no bounces to wait for
            postfix.send("", [f"{name}@oracle.test"], ORIGINAL)
        postfix.wait_log("to=<slow@oracle.test>", 30)
        postfix.wait_log("sender delay notification", 30)
        postfix.wait_log("sender delivery status notification", 30)
        log = postfix.wait_log("sender non-delivery notification", 30)
        messages = _wait_messages(postfix, 6)   # 2 deliveries, 4 notices
        yield {"log": log, "messages": messages, "port": base + 26, "closed": base + 27}
    finally:
        if postfix is not None:
            postfix.stop()
        if sink is not None:
            sink.stop()


def _wait_messages(postfix, count):
    from tests.master.helpers import wait_until
    path = os.path.join(postfix.mail, "root")

    def split():
        data = open(path, "rb").read() if os.path.exists(path) else b""
        parts = re.split(rb"\n(?=From \S+  [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n)", data)
        return [p for p in parts if p]

    wait_until(lambda: len(split()) >= count, 20, 0.1)
    return split()


def _find(messages, *needles: bytes) -> bytes:
    found = [m for m in messages if all(needle in m for needle in needles)]
    assert found, needle
    return found[0]


def _strip_delivery(message: bytes) -> bytes:
    """Drop the From_ line and local(8)'s delivery headers, and the trailing mbox blank line."""
    lines = message.split(b"\n")[1:]
    while lines and lines[0].split(b":")[0] in (b"Return-Path", b"X-Original-To", b"Delivered-To"):
        lines.pop(0)
    return b"\n".join(lines).rstrip(b"\n") + b"\n"


def _drop_cleanup_headers(message: bytes) -> bytes:
    """The Received and Message-Id lines Postfix's cleanup adds to a bounce (roost's cleanup adds its own)."""
    head, _, body = message.partition(b"\n\n")
    lines = head.split(b"\n")
    kept, skip = [], False
    for line in lines:
        if line.startswith((b"Received:", b"Message-Id:")):
            skip = True
            continue
        if skip and line[:1] in (b" ", b"\t"):
            continue
        skip = False
        kept.append(line)
    return b"\n".join(kept) + b"\n\n" + body


def _normal(text: bytes, *ids: str) -> str:
    out = text.replace(b"\r\n", b"\n").decode()
    out = DATE.sub("DATE", out)
    out = re.sub(r"\.\d{9,10}/", ".STAMP/", out)
    for number, queue_id in enumerate(ids):
        out = out.replace(queue_id, f"QUEUEID{number}")
    return out


def _original_from_bounce(message: bytes) -> tuple[bytes, str]:
    """The returned original (without Return-Path) and the original queue id."""
    queue_id = re.search(rb"X-Postfix-Queue-ID: (\w+)", message).group(1).decode()
    start = message.index(b"\nReturn-Path: <root@oracle.test>\n") + 1
    original = message[start:].split(b"\n", 1)[1]
    original = original[:original.rindex(b"\n--")]
    return original.replace(b"\n", b"\r\n"), queue_id


def _roost_notice(kind, result, original, queue_id, settings, envelope=None):
    notice = bounce.notices(kind, "root@oracle.test", [result], settings)[0]
    return bounce.compose(notice, queue_id=queue_id, original_sender="root@oracle.test", arrival_time=0,
                          content=lambda: io.BytesIO(original), envelope=envelope or {}, settings=settings)


def _oracle_settings():
    return settings_of("myhostname = oracle.test\nmyorigin = oracle.test\ndelay_warning_time = 1s\n")


def test_failure_bounce_matches_postfix(oracle):
    theirs = _find(oracle["messages"], b"Subject: Undelivered Mail Returned to Sender", b"nosuchuser")
    original, queue_id = _original_from_bounce(theirs)
    result = RecipientResult(Recipient("nosuchuser@oracle.test", original="nosuchuser@oracle.test"), "bounced",
                             "5.1.1", 'unknown user: "nosuchuser"', "local")
    ours = _roost_notice(bounce.FAILURE, result, original, queue_id, _oracle_settings())
    expected = _drop_cleanup_headers(_strip_delivery(theirs))
    assert _normal(ours, queue_id) == _normal(expected, queue_id)


def test_delay_warning_matches_postfix(oracle):
    theirs = _find(oracle["messages"], b"Subject: Delayed Mail (still being retried)", b"y@closed.test")
    head = theirs.split(b"Content-Type: text/rfc822-headers", 1)[1].split(b"\n\n", 1)[1]
    original = head[:head.rindex(b"\n--")].split(b"\n", 1)[1].replace(b"\n", b"\r\n") + b"\r\nbody line\r\n"
    queue_id = re.search(rb"X-Postfix-Queue-ID: (\w+)", theirs).group(1).decode()
    text = f"connect to 127.0.0.12[127.0.0.12]:{oracle['closed']}: Connection refused"
    result = RecipientResult(Recipient("y@closed.test", original="y@closed.test"), "deferred", "4.4.1", text, "none")
    ours = _roost_notice(bounce.DELAY, result, original, queue_id, _oracle_settings())
    assert _normal(ours, queue_id) == _normal(_drop_cleanup_headers(_strip_delivery(theirs)), queue_id)


def test_success_report_matches_postfix(oracle):
    theirs = _find(oracle["messages"], b"Subject: Successful Mail Delivery Report")
    head = theirs.split(b"Content-Type: text/rfc822-headers", 1)[1].split(b"\n\n", 1)[1]
    original = head[:head.rindex(b"\n--")].split(b"\n", 1)[1].replace(b"\n", b"\r\n") + b"\r\nbody\r\n"
    queue_id = re.search(rb"X-Postfix-Queue-ID: (\w+)", theirs).group(1).decode()
    result = RecipientResult(Recipient("root@oracle.test", notify="SUCCESS", original="root@oracle.test"), "sent",
                             "2.0.0", "delivered to mailbox", "local")
    ours = _roost_notice(bounce.SUCCESS, result, original, queue_id, _oracle_settings())
    assert _normal(ours, queue_id) == _normal(_drop_cleanup_headers(_strip_delivery(theirs)), queue_id)


def test_local_mbox_bytes_match_postfix(oracle, tmp_path):
    theirs = _find(oracle["messages"], b"X-Original-To: postmaster@oracle.test")
    content = _strip_delivery(theirs).replace(b"\n", b"\r\n")
    aliases = tmp_path / "aliases"
    aliases.write_text("postmaster: root\n")
    assert build("hash", str(aliases), Diagnostics(), aliases=True)
    clear_cache()
    settings = settings_of(f"myhostname = oracle.test\nmyorigin = oracle.test\nmydestination = oracle.test\n"
                           f"alias_maps = hash:{aliases}\nmail_spool_directory = {tmp_path}\n")
    users = {"root": User("root", os.geteuid(), os.getegid(), str(tmp_path / "home"))}
    req = request("postmaster@oracle.test", sender="root@oracle.test", transport="local", message=content)
    asyncio.run(local_agent.deliver(req, settings, log=RecordingLog(), users=users.get))
    ours = open(tmp_path / "root", "rb").read()
    stamp = re.compile(rb"^From root@oracle.test  .*\n")
    assert stamp.sub(b"FROM\n", ours) == stamp.sub(b"FROM\n", theirs.rstrip(b"\n") + b"\n\n")


def test_smtp_status_texts_match_postfix(oracle):
    settings = settings_of()
    log = RecordingLog()
    asyncio.run(smtp_agent.deliver(request("x@sink.test", nexthop=f"[127.0.0.13]:{oracle['port']}"), settings,
                                   resolver=FakeResolver({}), log=log))
    asyncio.run(smtp_agent.deliver(request("y@closed.test", nexthop=f"[127.0.0.12]:{oracle['closed']}"), settings,
                                   resolver=FakeResolver({}), log=log))

    def tail(line: str) -> str:
        return re.sub(r"^.*?: to=", "to=", re.sub(r"delay=[\d.]+, delays=[\d./]+", "DELAYS", line))
    theirs = [tail(line) for line in oracle["log"].splitlines()
              if "/smtp[" in line and "to=<" in line]
    ours = [tail(text) for _, text in log.lines]
    assert ours[0] in theirs, (ours, theirs)
    assert ours[1] in theirs, (ours, theirs)


def test_remote_failure_bounce_matches_postfix(oracle):
    theirs = _find(oracle["messages"], b"Subject: Undelivered Mail Returned to Sender", b"x@sink.test")
    original, queue_id = _original_from_bounce(theirs)
    results = asyncio.run(smtp_agent.deliver(
        request(Recipient("x@sink.test", original="x@sink.test"), nexthop=f"[127.0.0.13]:{oracle['port']}"),
        settings_of(), resolver=FakeResolver({}), log=RecordingLog()))
    assert results[0].remote_mta == "127.0.0.13" and results[0].remote_reply.startswith("5")
    ours = _roost_notice(bounce.FAILURE, results[0], original, queue_id, _oracle_settings())
    assert _normal(ours, queue_id) == _normal(_drop_cleanup_headers(_strip_delivery(theirs)), queue_id)


def test_local_command_and_forward_texts_match_postfix(oracle, tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("".join(f'{name}: "{target}"\n' for name, target in COMMAND_ALIASES.items()))
    assert build("hash", str(aliases), Diagnostics(), aliases=True)
    clear_cache()
    settings = settings_of(f"myhostname = oracle.test\nmyorigin = oracle.test\nmydestination = oracle.test\n"
                           f"alias_maps = hash:{aliases}\ncommand_time_limit = 2s\n")

    async def forwarder(**kw):
        return "NEWID"
    log = RecordingLog()
    req = request(*[f"{name}@oracle.test" for name in COMMAND_ALIASES], sender="", transport="local")
    asyncio.run(local_agent.deliver(req, settings, log=log, forwarder=forwarder))

    def texts(lines):
        found = {}
        for line in lines:
            match = re.search(r"to=<(\w+)@oracle.test>, relay=local, .*?(dsn=\S+ status=\w+ \(.*\))$",
                              line.replace(", status", " status"))
            if match:
                found.setdefault(match.group(1), re.sub(r"forwarded as \w+", "forwarded as ID", match.group(2)))
        return found
    theirs = texts(oracle["log"].splitlines())
    ours = texts(text for _, text in log.lines)
    assert set(ours) == set(COMMAND_ALIASES)
    assert {name: theirs.get(name) for name in COMMAND_ALIASES} == ours
