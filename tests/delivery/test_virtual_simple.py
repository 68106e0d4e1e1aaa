"""virtual(8), error(8)/retry/discard(8), and the agent registry."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile

import pytest

from roost.delivery import Recipient
from roost.delivery import virtual as virtual_agent
from roost.delivery.agents import agent_for
from roost.tables import clear_cache
from tests.conftest import RecordingLog
from tests.delivery.helpers import MESSAGE, request, settings_of


@pytest.fixture
def base():
    path = tempfile.mkdtemp(prefix="roost-virtual-")
    os.chmod(path, 0o777)   # the mailbox owner (nobody when root) creates its mailboxes here
    clear_cache()
    yield path
    clear_cache()
    shutil.rmtree(path, ignore_errors=True)


def owner() -> int:
    return pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()


def virtual_settings(base, extra=""):
    uid = owner()
    return settings_of(
        f"virtual_mailbox_base = {base}\n"
        "virtual_mailbox_maps = inline:{alice@example.test=example.test/alice/, "
        "bob@example.test=example.test/bob.mbox, @catch.test=catch/}\n"
        f"virtual_uid_maps = static:{uid}\nvirtual_gid_maps = static:{uid}\n"
        f"virtual_minimum_uid = {min(uid, 100)}\nrecipient_delimiter = +\n{extra}")


def run(agent, req, settings):
    log = RecordingLog()
    results = asyncio.run(agent(req, settings, resolver=None, log=log))
    return results, [text for _, text in log.lines]


def test_virtual_maildir_mbox_catchall_and_unknown(base):
    settings = virtual_settings(base)
    req = request("alice+tag@example.test", "bob@example.test", "anyone@catch.test", "nobody@example.test",
                  transport="virtual")
    results, lines = run(virtual_agent.deliver, req, settings)
    assert [(r.status, r.text) for r in results] == [
        ("sent", "delivered to maildir"), ("sent", "delivered to mailbox"), ("sent", "delivered to maildir"),
        ("bounced", 'unknown user: "nobody@example.test"')]
    new = os.path.join(base, "example.test", "alice", "new")
    [name] = os.listdir(new)
    stat = os.stat(os.path.join(new, name))
    assert stat.st_uid == owner()
    data = open(os.path.join(new, name), "rb").read()
    assert data.startswith(b"Return-Path: <alice@example.org>\nX-Original-To: alice+tag@example.test\n"
                           b"Delivered-To: alice+tag@example.test\n")
    assert open(os.path.join(base, "example.test", "bob.mbox"), "rb").read().startswith(b"From alice@example.org  ")
    assert lines[0].startswith("4ABCDEF12: to=<alice+tag@example.test>, relay=virtual, delay=")
    assert lines[3].endswith('dsn=5.1.1, status=bounced (unknown user: "nobody@example.test")')


def test_virtual_limits_uid_and_loops(base):
    small = virtual_settings(base, "virtual_mailbox_limit = 100\n")
    results, _ = run(virtual_agent.deliver, request("bob@example.test", transport="virtual"), small)
    assert results[0].status == "bounced" and results[0].dsn == "5.2.2"
    assert not os.path.getsize(os.path.join(base, "example.test", "bob.mbox"))   # truncated back
    low = virtual_settings(base, "virtual_minimum_uid = 1000000\n")
    results, _ = run(virtual_agent.deliver, request("alice@example.test", transport="virtual"), low)
    assert results[0].status == "deferred" and "bad uid" in results[0].text
    looped = request("alice@example.test", transport="virtual",
                     message=b"Delivered-To: alice@example.test\r\n" + MESSAGE)
    results, _ = run(virtual_agent.deliver, looped, virtual_settings(base))
    assert (results[0].status, results[0].dsn) == ("bounced", "5.4.6")


def test_error_retry_discard_agents():
    settings = settings_of()
    results, lines = run(agent_for("error"), request("a@x.test", transport="error",
                                                     nexthop="5.1.1 mailbox unavailable"), settings)
    assert (results[0].status, results[0].dsn, results[0].text, results[0].relay) == (
        "bounced", "5.1.1", "mailbox unavailable", "none")
    assert lines[0].endswith("relay=none, delay=" + lines[0].split("delay=")[1].split(",")[0] +
                             ", delays=" + lines[0].split("delays=")[1].split(",")[0] +
                             ", dsn=5.1.1, status=bounced (mailbox unavailable)")
    results, _ = run(agent_for("retry"), request("a@x.test", transport="retry", nexthop="try later"), settings)
    assert (results[0].status, results[0].dsn) == ("deferred", "4.0.0")
    results, _ = run(agent_for("discard"), request(Recipient("a@x.test"), transport="discard", nexthop="spam"),
                     settings)
    assert (results[0].status, results[0].text) == ("sent", "spam")
    assert agent_for("no-such-agent") is None
