"""pipe(8): delivery to an external command named in master.cf.

    maildrop  unix  -  n  n  -  -  pipe  flags=DRhu user=vmail argv=/usr/bin/maildrop -d ${recipient}

Attributes (pipe(8) "SINGLE-RECIPIENT DELIVERY" / "COMMAND ATTRIBUTE SYNTAX"): `user=name[:group]`
(required, never root), `flags=`, `null_sender=` (default MAILER-DAEMON), `size=` (larger
messages bounce 5.2.3), `directory=`, `argv=` (last; the rest of the line is the command).
Macros in argv: ${sender}, ${recipient} (an argument holding it is repeated once per
recipient), ${original_recipient}, ${user}, ${extension}, ${domain}, ${mailbox}, ${nexthop},
${queue_id}, ${size}; `$$` is a dollar; `{a b}` keeps spaces in one argument.
Flags: F (From_ line), R (Return-Path:), D (Delivered-To:), O (X-Original-To:), B (blank
line at the end), . (dot-stuffing), > (>From quoting), h (lowercase domain), u (lowercase
user), q (quote addresses: not needed without a shell, accepted).
Exit status as local(8) commands (roost.delivery.command: sysexits); success is
`delivered via SERVICE service` plus ` (OUTPUT)` when the command printed something (its first
100 characters, trailing white space dropped), relay=SERVICE; the time limit is SERVICE_time_limit, else
command_time_limit.

Invariants: `deliver` never raises; the command never runs as root; no shell is involved.
Security: argv comes from master.cf, only macro values come from the envelope, and each
expands inside one argument (no word splitting, no shell).
"""

from __future__ import annotations

import os
import re
from typing import BinaryIO, Iterator

from roost.delivery import BOUNCED, DEFERRED, SENT, DeliveryRequest, RecipientResult
from roost.delivery.command import run_command
from roost.delivery.logline import Timer, log_results
from roost.delivery.mailbox import delivery_headers, lf_chunks
from roost.delivery.privileges import account, privs_of
from roost.tables.access import split_extension

SUCCESS_OUTPUT = 100   # characters of output in a success text (observed from Postfix 3.7)
_MACRO = re.compile(r"\$(\$|\{(\w+)\}|(\w+))")


def parse_args(args: tuple[str, ...] | list[str]) -> tuple[dict[str, str], list[str]]:
    """({attribute: value}, argv) from the words after `pipe` in master.cf."""
    attributes: dict[str, str] = {}
    argv: list[str] = []
    words = list(args)
    for index, word in enumerate(words):
        name, sep, value = word.partition("=")
        if sep and name == "argv":
            argv = ([value] if value else []) + words[index + 1:]
            break
        if sep:
            attributes[name] = value
    return attributes, [w[1:-1] if w.startswith("{") and w.endswith("}") else w for w in argv]


def _values(request: DeliveryRequest, recipient, flags: str, null_sender: str, size: int,
            delimiter: str) -> dict[str, str]:
    local, _, domain = recipient.address.rpartition("@") if "@" in recipient.address else (recipient.address, "", "")
    if "h" in flags:
        domain = domain.lower()
    if "u" in flags:
        local = local.lower()
    user, extension = split_extension(local, delimiter)
    return {"sender": request.sender or null_sender, "recipient": f"{local}@{domain}" if domain else local,
            "original_recipient": recipient.original or recipient.address, "user": user,
            "extension": extension[1:], "domain": domain, "mailbox": local, "nexthop": request.nexthop,
            "queue_id": request.queue_id, "size": str(size)}


PER_RECIPIENT = {"recipient", "original_recipient", "user", "extension", "domain", "mailbox"}


def expand_argv(argv: list[str], per_recipient: list[dict[str, str]]) -> list[str]:
    out: list[str] = []
    for word in argv:
        names = {m.group(2) or m.group(3) for m in _MACRO.finditer(word)}
        repeats = per_recipient if names & PER_RECIPIENT else per_recipient[:1]
        for values in repeats:
            out.append(_MACRO.sub(lambda m: "$" if m.group(1) == "$" else values.get(m.group(2) or m.group(3), ""),
                                  word))
    return out


def _body(source: BinaryIO, flags: str) -> Iterator[bytes]:
    """LF content with the `.`, `>` and `B` flags applied line-wise across chunk borders."""
    pending = b""
    for chunk in lf_chunks(source):
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        pending, complete = data[cut:], data[:cut]
        if complete:
            yield _lines(complete, flags)
    if pending:
        yield _lines(pending + b"\n", flags)
    if "B" in flags:
        yield b"\n"


def _lines(text: bytes, flags: str) -> bytes:
    if ">" in flags:
        text = re.sub(rb"(?m)^From ", b">From ", text)
    if "." in flags:
        text = re.sub(rb"(?m)^\.", b"..", text)
    return text


async def deliver(request: DeliveryRequest, settings, *, resolver=None, log, service: str = "pipe",
                  args: tuple[str, ...] = ()) -> list[RecipientResult]:
    timer = Timer(request)
    results = await _deliver(request, settings, service, args)
    log_results(log, request.queue_id, results, timer)
    return results


async def _deliver(request, settings, service, args) -> list[RecipientResult]:
    def every(status, dsn, text):
        return [RecipientResult(r, status, dsn, text, service) for r in request.recipients]

    try:
        attributes, argv = parse_args(args)
        if not argv:
            return every(DEFERRED, "4.3.5", f"service {service}: missing argv= command-line attribute")
        user_spec = attributes.get("user", "")
        if not user_spec:
            return every(DEFERRED, "4.3.5", f"service {service}: missing user= command-line attribute")
        name, _, group = user_spec.partition(":")
        found = account(name)
        uid, gid = (found[0], found[1]) if found else privs_of(name)
        if group:
            import grp
            gid = grp.getgrnam(group).gr_gid if not group.isdigit() else int(group)
        if uid == 0 and os.geteuid() == 0:   # pipe(8) refuses root privileges
            return every(DEFERRED, "4.3.5", f"service {service}: user= command-line attribute specifies root privileges")
        flags = attributes.get("flags", "")
        with request.content() as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
        limit = int(attributes.get("size", "0") or 0)
        if limit and size > limit:
            return every(BOUNCED, "5.2.3", "message too large")
        delimiter = settings.get("recipient_delimiter")
        values = [_values(request, r, flags, attributes.get("null_sender", "MAILER-DAEMON"), size, delimiter)
                  for r in request.recipients]
        command_argv = expand_argv(argv, values)
        first = request.recipients[0]
        headers = delivery_headers(request.sender, (first.original or first.address) if "O" in flags else None,
                                   first.address if "D" in flags else None)
        if "R" not in flags:
            headers = headers.split(b"\n", 1)[1]
        timeout = settings.time(f"{service}_time_limit") or settings.time("command_time_limit")
        env = {name: os.environ[name] for name in settings.list("export_environment") if name in os.environ}
        env.setdefault("PATH", "/usr/bin:/bin")
        with request.content() as source:
            outcome = await run_command(" ".join(command_argv), source, sender=request.sender or "MAILER-DAEMON",
                                        headers=headers, env=env, uid=uid, gid=gid, timeout=timeout,
                                        cwd=attributes.get("directory"), argv=command_argv,
                                        from_line="F" in flags, body=_body(source, flags))
        text = outcome.text
        if outcome.status == SENT:   # pipe(8) quotes the start of the command's output
            summary = outcome.output.rstrip()[:SUCCESS_OUTPUT]
            text = f"delivered via {service} service" + (f" ({summary})" if summary else "")
        return every(outcome.status, outcome.dsn, text)
    except Exception as exc:   # the contract: never raise
        return every(DEFERRED, "4.3.0", f"unexpected error in pipe delivery: {exc!r}")
