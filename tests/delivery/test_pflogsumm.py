"""Debian's pflogsumm reads the agents' log lines (written through roost.log's Postfix sink)
and counts deliveries, deferrals and bounces as it would for Postfix."""

from __future__ import annotations

import asyncio
import re
import subprocess

from roost.delivery import local as local_agent
from roost.delivery import simple
from roost.delivery import smtp as smtp_agent
from roost.delivery.local import User
from roost.log import LogSink, PostfixLogger
from tests.conftest import free_port_base, require_tool
from tests.delivery.helpers import FakeResolver, request, settings_of


def test_pflogsumm_counts_agent_lines(tmp_path):
    tool = require_tool("pflogsumm")
    path = tmp_path / "mail.log"
    sink = LogSink(path=str(path))
    local_log = PostfixLogger(sink, "postfix/local", "mx")
    smtp_log = PostfixLogger(sink, "postfix/smtp", "mx")
    error_log = PostfixLogger(sink, "postfix/error", "mx")
    settings = settings_of(f"mydestination = x.test\nalias_maps =\nmail_spool_directory = {tmp_path}\n")
    users = {"boss": User("boss", 0, 0, str(tmp_path))}.get

    async def scenario():
        await local_agent.deliver(request("boss@x.test", "nosuch@x.test", transport="local", queue_id="1A2B3C4D5E"),
                                  settings, log=local_log, users=users)
        closed = f"[127.0.0.22]:{free_port_base() + 25}"
        for _ in range(2):
            await smtp_agent.deliver(request("far@y.test", nexthop=closed, queue_id="2B3C4D5E6F"), settings,
                                     resolver=FakeResolver({}), log=smtp_log)
        await simple.deliver_discard(request("gone@z.test", transport="discard", queue_id="3C4D5E6F70"),
                                     settings, log=error_log)
        await simple.deliver_error(request("err@z.test", transport="error", nexthop="5.1.1 no", queue_id="4D5E6F7081"),
                                   settings, log=error_log)
    asyncio.run(scenario())
    sink.close()
    report = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60).stdout
    totals = dict((name, int(count)) for count, name in re.findall(r"^\s+(\d+)\s+(delivered|deferred|bounced)",
                                                                    report, re.M))
    assert totals == {"delivered": 2, "deferred": 1, "bounced": 2}, report
    assert re.search(r"deferred\s+\(2\s+deferrals\)", report), report
