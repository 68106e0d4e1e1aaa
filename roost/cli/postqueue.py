"""`postqueue`: the user interface to the queue (Postfix postqueue(1)).

  -p        list the queue like mailq (roost.cli.mailq), -j the same as JSON lines
  -f        flush: every deferred message is tried now (the queue manager's `F` request)
  -i ID     try one deferred message now (its retry time is set to now, then `D`)
  -s SITE   try now the deferred mail with a recipient in SITE (a domain, ETRN's job)
  -c DIR    configuration directory; -v accepted.
Exit status: 0, 64 for a usage error, 69 when the queue manager does not answer a flush
(`postqueue: fatal: Cannot flush mail queue - mail system is down`, Postfix's words).
Invariants: -i and -s only change retry times (file mtimes) inside `deferred`.
Security: queue IDs are validated before any path is built; no message content is read
except the envelope for -s.
"""

from __future__ import annotations

import getopt
import os
import sys
import time

from roost.cli import mailq
from roost.cli.mainconf import config_directory, main_settings
from roost.qmgr.trigger import send_request
from roost.queue import QueueFileError, QueueLayout, is_queue_id, read_envelope

EX_USAGE, EX_UNAVAILABLE = 64, 69
USAGE = "usage: postqueue -f | postqueue -i queueid | postqueue -j | postqueue -p | postqueue -s site"


def due_now(path: str) -> None:
    now = time.time()
    os.utime(path, (now, now))


def schedule_site(layout: QueueLayout, site: str) -> int:
    site = site.lower().strip("[]")
    count = 0
    for _queue_id, path in list(layout.scan("deferred")):
        try:
            qf = read_envelope(path)
        except QueueFileError:
            continue
        if any(r.address.lower().rpartition("@")[2] == site for r in qf.pending_recipients):
            due_now(path)
            count += 1
    return count


def main(argv: list[str]) -> int:
    try:
        options, _args = getopt.getopt(argv[1:], "c:fi:jps:v")
    except getopt.GetoptError:
        print(f"postqueue: fatal: {USAGE}", file=sys.stderr)
        return EX_USAGE
    flags = dict(options)
    if "-p" in flags or "-j" in flags:
        return mailq.main(argv)
    settings = main_settings(config_directory(flags.get("-c")))
    queue_directory = settings.get("queue_directory")
    layout = QueueLayout.from_settings(settings)
    if "-i" in flags:
        queue_id = flags["-i"]
        if not is_queue_id(queue_id):
            print(f"postqueue: fatal: invalid queue id: {queue_id}", file=sys.stderr)
            return EX_USAGE
        found = layout.find(queue_id, ("deferred",))
        if found is not None:
            due_now(found[1])
        request = "D"
    elif "-s" in flags:
        schedule_site(layout, flags["-s"])
        request = "D"
    elif "-f" in flags:
        request = "F"
    else:
        print(f"postqueue: fatal: {USAGE}", file=sys.stderr)
        return EX_USAGE
    if not send_request(queue_directory, request):
        print("postqueue: fatal: Cannot flush mail queue - mail system is down", file=sys.stderr)
        return EX_UNAVAILABLE
    return 0
