"""`postcat`: show queue files, as Postfix 3.7's postcat(1) prints them.

`postcat [-behq] [-c config_dir] [files...]`: -q takes queue IDs and looks in the queues
(maildrop, incoming, active, deferred, hold, corrupt under queue_directory, any hash
depth); without -q the arguments are file names. -e envelope (and extracted) records, -h
the primary header, -b the body; with none of them everything is shown. The
`*** ENVELOPE RECORDS name ***` style section markers appear when -e is given or no
section option is, as Postfix does; `name` is the path relative to queue_directory for
-q and the path as given otherwise. Records print as `message_size:`, `message_arrival_time:`,
`named_attribute: name=value`, `sender:`, `original_recipient:`, `recipient:`,
`done_recipient:`, `dsn_orig_rcpt` (shown as named_attribute like Postfix), `notify_flags:`.
Errors: `postcat: fatal: open queue file ID: No such file or directory`, exit 1.

Invariants: read-only; a damaged file prints what could be read, then an error line.
Security: queue IDs are validated before they become paths.
"""

from __future__ import annotations

import getopt
import os
import sys
import time

from roost.cli.mainconf import ConfigMissing, config_directory, main_settings
from roost.queue import records as rec
from roost.queue.layout import BadQueueId, QueueLayout
from roost.queue.reader import QueueFile, QueueFileError, iter_content, parse_stream

USAGE = "usage: postcat [-bdehnoqv] [-c config_dir] [file(s)...]"


def _record_line(rtype: int, payload: bytes) -> str | None:
    text = payload.decode("utf-8", "surrogateescape")
    if rtype == rec.SIZE:
        return f"message_size: {text}"
    if rtype == rec.TIME:
        seconds = int(text.split()[0]) if text.split() and text.split()[0].isdigit() else 0
        return f"message_arrival_time: {_asctime(seconds)}"
    if rtype == rec.DSN_NOTIFY:
        return f"notify_flags: {rec.notify_words(int(text)) if text.isdigit() else text}"
    if rtype == rec.DSN_ORCPT:
        return f"named_attribute: dsn_orig_rcpt={text}"
    label = _LABELS.get(rtype)
    return None if label is None else f"{label}: {text}"


# record type -> postcat's label for the records shown as they are
_LABELS = {rec.FULLNAME: "sender_fullname", rec.ATTR: "named_attribute", rec.SENDER: "sender",
           rec.ORIG_RCPT: "original_recipient", rec.RCPT: "recipient", rec.DONE: "done_recipient"}


def _asctime(seconds: int) -> str:
    t = time.localtime(seconds)
    return time.strftime("%a %b ", t) + f"{t.tm_mday:2d}" + time.strftime(" %H:%M:%S %Y", t)


def show(qf: QueueFile, name: str, *, envelope: bool, header: bool, body: bool, markers: bool,
         out) -> None:
    write = out.write
    if markers:
        write(f"*** ENVELOPE RECORDS {name} ***\n")
    extracted = [r for r in qf.records if r[0] > qf.data_offset]
    if envelope:
        for _offset, rtype, payload in qf.records:
            if _offset > qf.data_offset:
                break
            line = _record_line(rtype, payload)
            if line is not None:
                write(line + "\n")
    if markers:
        write(f"*** MESSAGE CONTENTS {name} ***\n")
    if header or body:
        _show_content(qf, header, body, out)
    if markers:
        write(f"*** HEADER EXTRACTED {name} ***\n")
    if envelope:
        for _offset, rtype, payload in extracted:
            line = _record_line(rtype, payload)
            if line is not None:
                write(line + "\n")
    if markers:
        write(f"*** MESSAGE FILE END {name} ***\n")


def _show_content(qf: QueueFile, header: bool, body: bool, out) -> None:
    """Primary header = lines up to the first empty line; the body starts with that line."""
    in_header = True
    pending = b""
    buffer = out.buffer if hasattr(out, "buffer") else None

    def emit(data: bytes) -> None:
        if buffer is not None:
            out.flush()
            buffer.write(data)
        else:
            out.write(data.decode("utf-8", "surrogateescape"))

    for chunk in iter_content(qf):
        if not in_header:
            if body:
                emit(chunk)
            continue
        data = pending + chunk
        pending = b""
        position = 0
        while in_header:
            newline = data.find(b"\n", position)
            if newline < 0:
                pending = data[position:]
                break
            line = data[position:newline]
            if line == b"" or (line[:1] not in (b" ", b"\t") and b":" not in line):
                in_header = False
                if body:
                    emit(data[position:])
                break
            if header:
                emit(data[position:newline + 1])
            position = newline + 1
    if pending:
        if in_header and header:
            emit(pending + b"\n")
        elif not in_header and body:
            emit(pending)
    # Postfix prints every stored line with a newline; roost stores the final line end too.


def main(argv: list[str]) -> int:
    try:
        options, args = getopt.getopt(argv[1:], "bc:dehnoqv")
    except getopt.GetoptError:
        print(USAGE, file=sys.stderr)
        return 1
    config_option = None
    envelope = header = body = by_id = False
    for flag, value in options:
        if flag == "-c":
            config_option = value
        elif flag == "-e":
            envelope = True
        elif flag == "-h":
            header = True
        elif flag == "-b":
            body = True
        elif flag == "-q":
            by_id = True
    markers = envelope or not (header or body)
    if not (envelope or header or body):
        envelope = header = body = True
    try:
        layout = QueueLayout.from_settings(main_settings(config_directory(config_option), required=True)) if by_id else None
    except ConfigMissing as exc:
        print(f"postcat: fatal: {exc}", file=sys.stderr)
        return 1
    status = 0
    for arg in args:
        if by_id:
            try:
                found = layout.find(arg)
            except BadQueueId:
                found = None
            if found is None:
                print(f"postcat: fatal: open queue file {arg}: No such file or directory", file=sys.stderr)
                return 1
            path = found[1]
            name = os.path.relpath(path, layout.root)
        else:
            path = name = arg
        qf = QueueFile(path, os.path.basename(path))
        try:
            with open(path, "rb", buffering=0) as handle:
                parse_stream(handle.read, qf)
        except OSError as exc:
            print(f"postcat: fatal: open {arg}: {exc.strerror}", file=sys.stderr)
            return 1
        except QueueFileError as exc:
            print(f"postcat: fatal: {name}: {exc}", file=sys.stderr)
            return 1
        show(qf, name, envelope=envelope, header=header, body=body, markers=markers, out=sys.stdout)
        sys.stdout.flush()
    if not args:
        print(USAGE, file=sys.stderr)
        return 1
    return status
