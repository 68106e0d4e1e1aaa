"""`mailq` and `postqueue -p`: the queue listing in Postfix 3.7's showq(8) format.

Short queue IDs (observed from Postfix 3.7):

    -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
    2D2F5212015!     305 Mon Nov 23 22:12:15  MAILER-DAEMON
                                             bob@example.net

    -- 0 Kbytes in 1 Request.

`%-11s %7d %20.20s %s` (the ID with its status appended: `*` active, `!` hold, nothing
otherwise; size = the queue file's message size; asctime of the arrival; the sender or
MAILER-DAEMON), each pending recipient indented to column 41, a blank line after each
message; with enable_long_queue_ids the columns are `%-17s %8d %19.19s %s` under
`----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------`. A deferred
recipient's reason (from the defer log, when present) is shown above it as `(reason)`,
right-aligned to column 78.
The total is the sum of sizes in whole Kbytes (rounded down); an empty queue prints
`Mail queue is empty`. Queues are listed in showq's order: maildrop, incoming, active,
deferred, hold. `postqueue -j` prints one JSON object per message like Postfix 3.7.

Invariants: read-only; an unreadable or incomplete file is skipped, as showq does.
Security: only files whose names are queue IDs are opened.
"""

from __future__ import annotations

import getopt
import json
import os
import sys
import time
from dataclasses import dataclass

from roost.cli.mainconf import ConfigMissing, config_directory, main_settings
from roost.queue.layout import SHOWQ_QUEUES, QueueLayout
from roost.queue.reader import QueueFile, QueueFileError, read_envelope

STATUS_CHAR = {"active": "*", "hold": "!"}
REASON_WIDTH = 78


@dataclass
class Entry:
    queue: str
    qf: QueueFile
    reasons: dict[str, str]


def collect(layout: QueueLayout) -> list[Entry]:
    entries = []
    for queue in SHOWQ_QUEUES:
        for queue_id, path in layout.scan(queue):
            try:
                qf = read_envelope(path, queue_id)
            except QueueFileError:
                continue
            entries.append(Entry(queue, qf, _defer_reasons(layout, queue_id) if queue in ("deferred", "hold") else {}))
    return entries


def _defer_reasons(layout: QueueLayout, queue_id: str) -> dict[str, str]:
    """recipient -> reason from the defer log (`recipient=...` / `reason=...` lines)."""
    reasons: dict[str, str] = {}
    try:
        with open(layout.path("defer", queue_id), encoding="utf-8", errors="replace") as handle:
            recipient = None
            for line in handle:
                key, _, value = line.rstrip("\n").partition("=")
                if key == "recipient":
                    recipient = value
                elif key == "reason" and recipient is not None:
                    reasons[recipient] = value
    except OSError:
        pass
    return reasons


def _asctime(seconds: float) -> str:
    t = time.localtime(seconds)
    return time.strftime("%a %b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", t)


def format_listing(entries: list[Entry], long_ids: bool) -> str:
    if not entries:
        return "Mail queue is empty\n"
    if long_ids:
        lines = ["----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------"]
        indent = 47
    else:
        lines = ["-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"]
        indent = 41
    total = 0
    for entry in entries:
        qf = entry.qf
        total += qf.content_size
        ident = qf.queue_id + STATUS_CHAR.get(entry.queue, "")
        sender = qf.sender or "MAILER-DAEMON"
        arrival = _asctime(qf.arrival)
        if long_ids:
            lines.append(f"{ident:<17} {qf.content_size:8d} {arrival[:19]:19.19} {sender}")
        else:
            lines.append(f"{ident:<11} {qf.content_size:7d} {arrival[:20]:20.20} {sender}")
        shown_reason = None
        for recipient in qf.pending_recipients:
            reason = entry.reasons.get(recipient.address)
            if reason and reason != shown_reason:  # as showq: once per run of equal reasons
                lines.append(f"({reason})".rjust(REASON_WIDTH))
                shown_reason = reason
            lines.append(" " * indent + recipient.address)
        lines.append("")
    count = len(entries)
    lines.append(f"-- {total // 1024} Kbytes in {count} Request{'s' if count != 1 else ''}.")
    return "\n".join(lines) + "\n"


def format_json(entries: list[Entry]) -> str:
    out = []
    for entry in entries:
        qf = entry.qf
        recipients = []
        for recipient in qf.pending_recipients:
            item = {"address": recipient.address}
            if entry.reasons.get(recipient.address):
                item["delay_reason"] = entry.reasons[recipient.address]
            recipients.append(item)
        out.append(json.dumps({"queue_name": entry.queue, "queue_id": qf.queue_id,
                               "arrival_time": int(qf.arrival), "message_size": qf.content_size,
                               "forced_expire": False, "sender": qf.sender or "MAILER-DAEMON",
                               "recipients": recipients}, separators=(", ", ": ")))
    return "".join(line + "\n" for line in out)


def listing(config_dir: str, as_json: bool = False) -> str:

    settings = main_settings(config_dir, required=True)
    entries = collect(QueueLayout.from_settings(settings))
    return format_json(entries) if as_json else format_listing(entries, settings.bool("enable_long_queue_ids"))


def main(argv: list[str]) -> int:
    """`mailq [-c dir]` (sendmail -bp) ; `postqueue -p` / `-j` route here too."""

    try:
        options, _args = getopt.getopt(argv[1:], "c:pjv")
    except getopt.GetoptError:
        print(f"usage: {os.path.basename(argv[0]) if argv else 'mailq'} [-c config_dir]", file=sys.stderr)
        return 64
    config_option = None
    as_json = False
    for flag, value in options:
        if flag == "-c":
            config_option = value
        elif flag == "-j":
            as_json = True
    try:
        sys.stdout.write(listing(config_directory(config_option), as_json))
    except ConfigMissing as exc:
        prog = os.path.basename(argv[0]) if argv else "mailq"
        print(f"{prog}: fatal: {exc}", file=sys.stderr)
        return 75 if prog == "mailq" else 69  # Postfix: sendmail EX_TEMPFAIL, postqueue EX_UNAVAILABLE
    return 0
