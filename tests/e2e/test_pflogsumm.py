"""Debian's pflogsumm over the maillog of a mixed run of a whole roost server counts what
happened: messages received (SMTP and sendmail), delivered, deferred, bounced and rejected."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import require_tool
from tests.e2e.server import Server, wait_for

ALICE, BOB = "alice@example.test", "bob@example.test"


def send(server, sender, recipients, source="127.0.0.1"):
    client = server.smtp_client(source)
    try:
        assert client.mail(sender)[0] == 250
        accepted = [r for r in recipients if client.rcpt(r)[0] == 250]
        if accepted:
            code, _ = client.data(f"From: {sender}\r\nSubject: mixed\r\n\r\nhi\r\n")
            assert code == 250
    finally:
        client.quit()


def test_pflogsumm_counts_a_mixed_run():
    tool = require_tool("pflogsumm")
    server = Server(users=(f"{ALICE}:Secret-pw1", f"{BOB}:Secret-pw2"))
    try:
        server.init()
        closed = server.base + 99   # nobody listens there: the relayhost defers
        server.append("main.cf", f"relayhost = [127.0.0.1]:{closed}\nsmtp_connect_timeout = 2s\n"
                      "mynetworks = 127.0.0.1/32\n")
        server.start()
        send(server, "carol@remote.example", [ALICE])                            # 1 delivery
        send(server, "carol@remote.example", [ALICE, BOB])                       # 2 deliveries
        send(server, "carol@remote.example", [BOB, "nobody@example.test"])       # 1 + 1 reject
        send(server, "carol@remote.example", ["ghost2@example.test"])            # 1 reject
        send(server, "carol@remote.example", ["friend@far.example"], source="127.0.0.9")  # reject
        send(server, ALICE, ["friend@far.example"])                              # deferred
        env = dict(os.environ, MAIL_CONFIG=server.dir)
        done = subprocess.run([sys.executable, "-m", "roost", "sendmail", "-f", ALICE,
                               "ghost@example.test"], input=b"Subject: ghost\n\nboo\n",
                              capture_output=True, env=env, timeout=60)       # bounced
        assert done.returncode == 0, done.stderr
        log_done = lambda: (re.search(r"to=<friend@far.example>, .*status=deferred", server.maillog())
                            and re.search(r"to=<ghost@example.test>, .*status=bounced", server.maillog())
                            and len(re.findall(r"status=sent", server.maillog())) >= 5)
        assert wait_for(log_done, 30), server.maillog()[-3000:]
        server.stop()
        server.started = False
        log = server.maillog()
        report = subprocess.run([tool, os.path.join(server.dir, "data", "maillog")],
                                capture_output=True, text=True, timeout=60).stdout
    finally:
        server.cleanup()
    totals = {name: int(count) for count, name in
              re.findall(r"^\s+(\d+)\s+(received|delivered|forwarded|deferred|bounced|rejected)\b",
                         report, re.M)}
    # received: 4 SMTP messages that got a queue ID + 1 from sendmail (pickup); delivered:
    # 4 SMTP recipients + the non-delivery notice to alice; rejected: 3 RCPT commands
    assert totals == {"received": 5, "delivered": 5, "forwarded": 0, "deferred": 1,
                      "bounced": 1, "rejected": 3}, report + log
    assert re.search(r"^\s+1\s+deferred\s+\(1\s+deferrals\)", report, re.M), report
