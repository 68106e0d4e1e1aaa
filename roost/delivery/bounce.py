"""Delivery status notifications as Postfix's bounce(8) writes them (RFC 3464, RFC 3462).

`notices(kind, ...)` decides who is told what, `compose(kind, ...)` writes the message:
  kind "failure"  Subject "Undelivered Mail Returned to Sender"   (Action: failed)
       "delay"    Subject "Delayed Mail (still being retried)"    (Action: delayed, Will-Retry-Until)
       "success"  Subject "Successful Mail Delivery Report"        (Action: delivered / relayed)
A multipart/report; report-type=delivery-status (RFC 3462 §1) with three parts: the human
text ("This is the mail system at host ..."), message/delivery-status (RFC 3464 §2: per-message
Reporting-MTA, Original-Envelope-Id, X-Postfix-Queue-ID, X-Postfix-Sender, Arrival-Date; per
recipient Final-Recipient, Original-Recipient, Action, Status, Remote-MTA, Diagnostic-Code),
and the original: message/rfc822 (failure with RET=FULL or no RET, up to bounce_size_limit)
or text/rfc822-headers (RET=HDRS, delay warnings, success reports).
Boundary `QUEUEID.UNIXTIME/MYHOSTNAME`; long lines folded at 79 columns with a 4-space indent;
all observed from Postfix 3.7's bounce(8) (tests compare with a private Postfix).

Who (RFC 3461 §4.1 NOTIFY, postconf(5) notify_classes): NOTIFY=NEVER tells nobody; without
NOTIFY, failures and delays are reported, never successes; mail from the null sender (a
bounce) is never bounced (RFC 3464 §2 / RFC 5321 §6.1), it goes to 2bounce_notice_recipient
when notify_classes has 2bounce; notify_classes bounce/delay send a headers-only postmaster
copy to bounce_notice_recipient / delay_notice_recipient from double_bounce_sender.

Invariants: pure (no I/O besides reading the original through the opener); CRLF output.
Security: recipient texts come from servers: control characters are removed before they
become header-like DSN fields, so no field can be forged.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Sequence

from roost.cleanup.received import mail_date
from roost.delivery import RecipientResult, envelope_param

WRAP = 79
INDENT = 4
FAILURE, DELAY, SUCCESS = "failure", "delay", "success"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

SUBJECT = {FAILURE: "Undelivered Mail Returned to Sender", DELAY: "Delayed Mail (still being retried)",
           SUCCESS: "Successful Mail Delivery Report"}
POSTMASTER_SUBJECT = {FAILURE: "Postmaster Copy: Undelivered Mail", DELAY: "Postmaster Warning: Delayed Mail",
                      SUCCESS: "Successful Mail Delivery Report"}
FOOTER = ("For further assistance, please send mail to postmaster.\n\n"
          "If you do so, please include this problem report. You can\n"
          "delete your own text from the attached returned message.\n\n"
          "                   The mail system\n")
INTRO = {
    FAILURE: ("I'm sorry to have to inform you that your message could not\n"
              "be delivered to one or more recipients. It's attached below.\n\n" + FOOTER),
    DELAY: ("####################################################################\n"
            "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n"
            "####################################################################\n\n"
            "Your message could not be delivered for more than {delay} hour(s).\n"
            "It will be retried until it is {lifetime} day(s) old.\n\n" + FOOTER),
    SUCCESS: ("Your message was successfully delivered to the destination(s)\n"
              "listed below. If the message was delivered to mailbox you will\n"
              "receive no further notifications. Otherwise you may still receive\n"
              "notifications of mail delivery errors from other systems.\n\n"
              "                   The mail system\n"),
}
POSTMASTER_INTRO = ("Enclosed is the mail delivery report that you requested.\n\n"
                    "                   The mail system\n")
ORIGINAL_PART = {  # (description, content type) for full / headers-only returns
    (FAILURE, True): ("Undelivered Message", "message/rfc822"),
    (FAILURE, False): ("Undelivered Message Headers", "text/rfc822-headers"),
    (DELAY, True): ("Undelivered Message", "message/rfc822"),
    (DELAY, False): ("Undelivered Message Headers", "text/rfc822-headers"),
    (SUCCESS, True): ("Message", "message/rfc822"),
    (SUCCESS, False): ("Message Headers", "text/rfc822-headers"),
}
ACTION = {FAILURE: "failed", DELAY: "delayed"}


@dataclass(frozen=True)
class Notice:
    kind: str
    sender: str                  # envelope sender of the notice ("" for notices to the sender)
    recipients: tuple[str, ...]
    postmaster: bool             # a copy for the postmaster (headers only)
    results: tuple[RecipientResult, ...]


def wrap(line: str, width: int = WRAP, indent: int = INDENT) -> list[str]:
    """Postfix's line_wrap: break at spaces so no line exceeds `width`; later lines indented."""
    words = line.split(" ")
    lines, current = [], ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > width:
            lines.append(current)
            current = " " * indent + word
        else:
            current = candidate
    lines.append(current)
    return lines


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text)


def _wants(result: RecipientResult, kind: str) -> bool:
    notify = (result.recipient.notify or "").upper()
    if not notify:
        return kind in (FAILURE, DELAY)   # RFC 3461 §4.1: the default is FAILURE,DELAY
    options = {part.strip() for part in notify.split(",")}
    return "NEVER" not in options and kind.upper() in options


def _address(settings, value: str) -> str:
    """A notice address parameter's value, qualified with myorigin like Postfix's rewrite."""
    if value and "@" not in value:
        value = f"{value}@{settings.get('myorigin') or settings.get('myhostname')}"
    return value


def notices(kind: str, sender: str, results: Sequence[RecipientResult], settings) -> list[Notice]:
    """Which notices to send for these results (the ones of `kind`'s status)."""
    wanted_status = {FAILURE: "bounced", DELAY: "deferred", SUCCESS: "sent"}[kind]
    relevant = [r for r in results if r.status == wanted_status]
    if not relevant:
        return []
    classes = {c.lower() for c in settings.list("notify_classes")}
    double_bounce = _address(settings, settings.get("double_bounce_sender"))
    out: list[Notice] = []
    if sender and sender.lower() != double_bounce.lower():
        to_sender = tuple(r for r in relevant if _wants(r, kind))
        if to_sender:
            out.append(Notice(kind, "", (sender,), False, to_sender))
    elif kind == FAILURE and not sender and "2bounce" in classes:
        out.append(Notice(kind, double_bounce, (_address(settings, settings.get("2bounce_notice_recipient")),), True,
                          tuple(relevant)))
    copy_class = {FAILURE: "bounce", DELAY: "delay"}.get(kind)
    if copy_class and copy_class in classes and sender:
        notice_recipient = (settings.get("bounce_notice_recipient") if kind == FAILURE
                            else settings.get("delay_notice_recipient"))
        out.append(Notice(kind, double_bounce, (_address(settings, notice_recipient),), True, tuple(relevant)))
    return out


def _human_line(kind: str, result: RecipientResult) -> str:
    text = _clean(result.text)
    if kind == SUCCESS:
        text = f"delivery via {result.relay}: {text}"
    return f"<{result.recipient.address}>: {text}"


def _diagnostic(kind: str, result: RecipientResult) -> list[str]:
    lines = []
    if result.remote_mta and result.remote_reply:
        lines.append(f"Remote-MTA: dns; {result.remote_mta}")
        lines.append(f"Diagnostic-Code: {result.diagnostic_type}; {_clean(result.remote_reply)}")
    else:
        text = _clean(result.text)
        if kind == SUCCESS:
            text = f"delivery via {result.relay}: {text}"
        lines.append(f"Diagnostic-Code: X-Postfix; {text}")
    return lines


def _read_original(opener: Callable[[], BinaryIO], limit: int, headers_only: bool) -> bytes:
    """The original with CRLF lines: its header only, or up to `limit` bytes cut at a line end
    (bounce_size_limit: Postfix truncates the returned message, it keeps the part type)."""
    with opener() as source:
        data = source.read(1024 * 1024) if headers_only else source.read(limit if limit > 0 else -1)
    data = data.replace(b"\r\n", b"\n")
    if headers_only:
        end = data.find(b"\n\n")
        data = data[:end + 1] if end >= 0 else data
    elif limit > 0 and len(data) >= limit:
        cut = data.rfind(b"\n")
        data = data[:cut + 1] if cut >= 0 else data
    return data.replace(b"\n", b"\r\n")


def compose(notice: Notice, *, queue_id: str, original_sender: str, arrival_time: float,
            content: Callable[[], BinaryIO], envelope: dict, settings, now: float | None = None,
            next_retry_until: float | None = None) -> bytes:
    now = time.time() if now is None else now
    kind = notice.kind
    host = settings.get("myhostname")
    boundary = f"{queue_id}.{int(now)}/{host}"
    headers = [
        f"Date: {mail_date(now)}",
        f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
        f"Subject: {(POSTMASTER_SUBJECT if notice.postmaster else SUBJECT)[kind]}",
        f"To: {notice.recipients[0]}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
    ]
    text = [f"This is the mail system at host {host}.", ""]
    if notice.postmaster:
        text += POSTMASTER_INTRO.split("\n")
    else:
        delay_hours = int(settings.time("delay_warning_time") // 3600)
        lifetime_days = int(settings.time("maximal_queue_lifetime") // 86400)
        text += INTRO[kind].format(delay=delay_hours, lifetime=lifetime_days).split("\n")
    for result in notice.results:
        text += wrap(_human_line(kind, result))
        text.append("")
    report = [f"Reporting-MTA: dns; {host}"]
    envid = envelope_param(envelope, "ENVID")
    if envid:
        report.append(f"Original-Envelope-Id: {_clean(envid)}")
    report += [f"X-Postfix-Queue-ID: {queue_id}", f"X-Postfix-Sender: rfc822; {original_sender}",
               f"Arrival-Date: {mail_date(arrival_time)}"]
    for result in notice.results:
        recipient = result.recipient
        report.append("")
        report.append(f"Final-Recipient: rfc822; {recipient.address}")
        if recipient.orcpt:
            report.append(f"Original-Recipient: {_clean(recipient.orcpt)}")
        elif recipient.original:
            report.append(f"Original-Recipient: rfc822;{recipient.original}")
        # RFC 3464 §2.3.3: handed to another MTA is "relayed", into a mailbox "delivered"
        action = ACTION.get(kind) or ("relayed" if result.remote_reply else "delivered")
        report.append(f"Action: {action}")
        report.append(f"Status: {result.dsn}")
        for line in _diagnostic(kind, result):
            report += wrap(line)
        if kind == DELAY:
            lifetime = settings.time("maximal_queue_lifetime")
            until = next_retry_until if next_retry_until is not None else arrival_time + lifetime
            report.append(f"Will-Retry-Until: {mail_date(until)}")
    full = kind == FAILURE and not notice.postmaster and (envelope_param(envelope, "RET") or "FULL").upper() == "FULL"
    original = _read_original(content, settings.size("bounce_size_limit"), headers_only=not full)
    description, content_type = ORIGINAL_PART[(kind, full)]
    out = [*headers, "", "This is a MIME-encapsulated message.", "",
           f"--{boundary}", "Content-Description: Notification", "Content-Type: text/plain; charset=utf-8",
           "Content-Transfer-Encoding: 8bit", "", *text,
           f"--{boundary}", "Content-Description: Delivery report", "Content-Type: message/delivery-status",
           "", *report, "",
           f"--{boundary}", f"Content-Description: {description}", f"Content-Type: {content_type}",
           "Content-Transfer-Encoding: 8bit", ""]
    head = "\r\n".join(out).encode("utf-8", "replace") + b"\r\n"
    return_path = f"Return-Path: <{original_sender}>\r\n".encode("utf-8", "replace")
    # RFC 2046 §5.1.1: the CRLF before a boundary belongs to the boundary
    return head + return_path + original + b"\r\n" + f"--{boundary}--\r\n".encode()


__all__ = ["Notice", "notices", "compose", "wrap", "FAILURE", "DELAY", "SUCCESS"]
