"""`sendmail`: the Sendmail-compatible submission command (Postfix sendmail(1) + postdrop(1)).

Reads a message on standard input and drops it into `$queue_directory/maildrop` as a queue
file (sender, recipients, DSN attributes, the message as typed); the queue manager's pickup
step (roost.qmgr.pickup) then passes it through cleanup like any other mail. What the caller
may set (sendmail(1)): `-f`/`-r sender` (default: the invoking user's login name, qualified
later with myorigin), `-F full name`, `-t` (recipients also from To:, Cc:, Bcc:; Bcc: is
removed), `-i`/`-oi` (a line with a single "." does not end the message; without it, it
does), `-N never|success,delay,failure`, `-R hdrs|full`, `-V envid`, `-B 7bit|8bitmime`,
`-C dir` (configuration), `-bp` (= mailq), `-bi` (= newaliases), `-q` (flush the queue);
`-bm`, `-oXXX`, `-v`, `-odX`, `-oem`, `-L`, `-n`, `-m` are accepted and ignored like
Postfix. `-bs`, `-bd` and `-bv` are refused with a message.

Exit status (sysexits.h, as Postfix): 0 queued, 64 EX_USAGE, 65 EX_DATAERR (no recipients),
75 EX_TEMPFAIL (the queue cannot be written).
Invariants: a maildrop file is complete (end record, execute bit) or removed; the message is
stored with LF line ends.
Security: runs as the invoking user; maildrop is mode 1733 (write-only, sticky), so users
cannot read or remove each other's submissions; pickup takes the submitter's identity from
the file's owner, never from its contents.
"""

from __future__ import annotations

import email.utils
import os
import pwd
import sys
from collections.abc import Sequence

from roost.qmgr.trigger import send_request
from roost.queue import QueueLayout, QueueFileWriter
from roost.queue.records import notify_mask

EX_USAGE, EX_DATAERR, EX_TEMPFAIL, EX_SOFTWARE = 64, 65, 75, 70
DEFAULT_CONFIG_DIR = "/etc/roost"
IGNORED_FLAGS = ("-bm", "-v", "-n", "-m", "-U", "-G", "-ba", "-bl")
MAX_HEADER_BYTES = 1 << 20  # -t parses at most this much header


class Usage(Exception):
    pass


def parse_options(argv: Sequence[str]) -> tuple[dict, list[str]]:
    opts: dict = {"sender": None, "fullname": None, "extract": False, "dots": True,
                  "notify": None, "ret": None, "envid": None, "body": None, "config": None,
                  "mode": "deliver"}
    args = list(argv)
    recipients: list[str] = []
    takes_value = {"-f": "sender", "-r": "sender", "-F": "fullname", "-N": "notify",
                   "-R": "ret", "-V": "envid", "-B": "body", "-C": "config", "-L": None,
                   "-O": None, "-h": None}
    while args:
        arg = args.pop(0)
        if arg == "--":
            recipients += args
            break
        if not arg.startswith("-") or arg == "-":
            recipients.append(arg)
            continue
        flag = arg[:2]
        if flag in takes_value:
            value = arg[2:] if len(arg) > 2 else (args.pop(0) if args else None)
            if value is None:
                raise Usage(f"option requires an argument -- '{flag[1]}'")
            if takes_value[flag]:
                opts[takes_value[flag]] = value
        elif arg == "-t":
            opts["extract"] = True
        elif arg in ("-i", "-oi"):
            opts["dots"] = False
        elif arg == "-bp":
            opts["mode"] = "mailq"
        elif arg == "-bi" or arg == "-I":
            opts["mode"] = "newaliases"
        elif arg.startswith("-q"):
            opts["mode"] = "flush"
        elif arg in ("-bs", "-bd", "-bv", "-bh", "-bH"):
            raise Usage(f"{arg}: not supported by roost's sendmail")
        elif arg.startswith("-o") or arg.startswith("-X") or arg in IGNORED_FLAGS:
            continue  # sendmail compatibility options Postfix ignores too
        else:
            raise Usage(f"invalid option -- '{arg[1:2]}'")
    return opts, recipients


def read_message(stream, dots_end: bool) -> bytes:
    """Standard input, LF line ends; without -i a line with a lone "." ends it."""
    lines = []
    for line in iter(stream.readline, b""):
        if line.endswith(b"\r\n"):
            line = line[:-2] + b"\n"
        if dots_end and line in (b".\n", b"."):
            break
        lines.append(line)
    data = b"".join(lines)
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data


def split_header(message: bytes) -> tuple[bytes, bytes]:
    end = message.find(b"\n\n")
    if end < 0:
        return message, b""
    return message[:end + 1], message[end + 1:]


def extract_recipients(message: bytes) -> tuple[list[str], bytes]:
    """Addresses of To:, Cc:, Bcc: (sendmail -t); the message without its Bcc: fields."""
    header, body = split_header(message)
    if len(header) > MAX_HEADER_BYTES:  # not a header: leave the message alone
        return [], message
    fields: list[list[bytes]] = []
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    found: list[str] = []
    kept = []
    for field in fields:
        name = field[0].split(b":", 1)[0].strip().lower()
        if name in (b"to", b"cc", b"bcc"):
            value = b"".join(field).split(b":", 1)[1].decode("utf-8", "replace")
            found += [address for _name, address in email.utils.getaddresses([value]) if address]
        if name != b"bcc":
            kept.append(b"".join(field))
    return found, b"".join(kept) + body


def invoking_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid{os.getuid()}"


def queue_directory(config_dir: str) -> str:
    from roost.cli.mainconf import main_settings
    return main_settings(config_dir).get("queue_directory")


def drop(config_dir: str, opts: dict, recipients: list[str], message: bytes) -> int:
    queue_dir = queue_directory(config_dir)
    layout = QueueLayout(queue_dir)
    try:
        writer = QueueFileWriter(layout, queue="maildrop")
    except OSError as exc:
        print(f"sendmail: fatal: cannot write to {layout.queue_dir('maildrop')}: "
              f"{exc.strerror} (is the mail system set up? roost init)", file=sys.stderr)
        return EX_TEMPFAIL
    try:
        if opts["fullname"]:
            writer.fullname(opts["fullname"])
        for name, key in (("ENVID", "envid"), ("RET", "ret"), ("BODY", "body")):
            if opts[key]:
                writer.attribute(name, opts[key].upper() if name != "ENVID" else opts[key])
        writer.sender(opts["sender"] if opts["sender"] is not None else invoking_user())
        mask = notify_mask(opts["notify"]) if opts["notify"] else 0
        for recipient in recipients:
            writer.recipient(recipient, notify=mask)
        writer.start_content()
        writer.content(message)
        writer.finish()
    except ValueError as exc:  # a bad -N keyword
        writer.abort()
        print(f"sendmail: fatal: {exc}", file=sys.stderr)
        return EX_USAGE
    except OSError as exc:
        writer.abort()
        print(f"sendmail: fatal: queue file write error: {exc.strerror}", file=sys.stderr)
        return EX_TEMPFAIL
    send_request(queue_dir, "W")
    return 0


def main(argv: list[str]) -> int:
    try:
        opts, recipients = parse_options(argv[1:])
    except Usage as exc:
        print(f"sendmail: fatal: usage: {exc}", file=sys.stderr)
        return EX_USAGE
    config_dir = opts["config"] or os.environ.get("MAIL_CONFIG") or DEFAULT_CONFIG_DIR
    if opts["mode"] == "mailq":
        from roost.cli import mailq
        os.environ["MAIL_CONFIG"] = config_dir
        return mailq.main(["mailq"])
    if opts["mode"] == "newaliases":
        from roost.cli import newaliases
        return newaliases.main(["newaliases", "-c", config_dir])
    if opts["mode"] == "flush":
        send_request(queue_directory(config_dir), "F")
        return 0
    message = read_message(sys.stdin.buffer, opts["dots"])
    if opts["extract"]:
        found, message = extract_recipients(message)
        recipients += found
    if not recipients:
        print("sendmail: fatal: No recipient addresses found in message header"
              if opts["extract"] else "sendmail: fatal: usage: no recipients specified",
              file=sys.stderr)
        return EX_DATAERR if opts["extract"] else EX_USAGE
    return drop(config_dir, opts, recipients, message)
