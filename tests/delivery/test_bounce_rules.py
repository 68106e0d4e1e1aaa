"""Who gets a delivery status notification (RFC 3461 NOTIFY, null sender, notify_classes) and
the RET / bounce_size_limit choice of what is returned. The message texts themselves are
compared with Postfix's in test_postfix_oracle.py."""

from __future__ import annotations

import email
import email.policy
import io

from roost.delivery import Recipient, RecipientResult
from roost.delivery.bounce import DELAY, FAILURE, SUCCESS, compose, notices, wrap
from tests.delivery.helpers import MESSAGE, settings_of


def result(address, status="bounced", notify=None, dsn=None):
    dsn = dsn or {"bounced": "5.1.1", "deferred": "4.4.1", "sent": "2.0.0"}[status]
    return RecipientResult(Recipient(address, notify=notify, original=address), status, dsn, "some text", "local")


def test_notify_rules():
    settings = settings_of()
    results = [result("a@x.test"), result("b@x.test", notify="NEVER"), result("c@x.test", notify="SUCCESS"),
               result("d@x.test", notify="FAILURE,DELAY"), result("e@x.test", "sent", notify="SUCCESS"),
               result("f@x.test", "sent"), result("g@x.test", "deferred"), result("h@x.test", "deferred", "FAILURE")]
    [failure] = notices(FAILURE, "s@y.test", results, settings)
    assert [r.recipient.address for r in failure.results] == ["a@x.test", "d@x.test"]
    assert failure.sender == "" and failure.recipients == ("s@y.test",) and not failure.postmaster
    [success] = notices(SUCCESS, "s@y.test", results, settings)
    assert [r.recipient.address for r in success.results] == ["e@x.test"]
    [delay] = notices(DELAY, "s@y.test", results, settings)
    assert [r.recipient.address for r in delay.results] == ["g@x.test"]


def test_null_sender_is_never_bounced_and_postmaster_copies():
    settings = settings_of()
    assert notices(FAILURE, "", [result("a@x.test")], settings) == []
    assert notices(FAILURE, "double-bounce@mx.roost.test", [result("a@x.test")], settings) == []
    twice = settings_of("notify_classes = 2bounce, bounce, delay\nbounce_notice_recipient = admin\n")
    [double] = notices(FAILURE, "", [result("a@x.test")], twice)
    assert double.postmaster and double.recipients == ("postmaster@mx.roost.test",)
    assert double.sender == "double-bounce@mx.roost.test"
    to_sender, copy = notices(FAILURE, "s@y.test", [result("a@x.test")], twice)
    assert copy.recipients == ("admin@mx.roost.test",) and copy.postmaster
    message = compose(copy, queue_id="ABC", original_sender="s@y.test", arrival_time=0,
                      content=lambda: io.BytesIO(MESSAGE), envelope={}, settings=twice)
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    assert parsed["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert parsed.get_payload()[2]["Content-Type"] == "text/rfc822-headers"   # headers only for the postmaster


def _parts(message: bytes):
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    return parsed, parsed.get_payload()


def test_ret_hdrs_full_envid_orcpt_and_size_limit():
    settings = settings_of("bounce_size_limit = 60\n")
    orcpt = RecipientResult(Recipient("a@x.test", orcpt="rfc822;A@X.test", original="a@x.test"), "bounced", "5.1.1",
                            "unknown user", "local")
    [notice] = notices(FAILURE, "s@y.test", [orcpt], settings_of())
    full = compose(notice, queue_id="ABC", original_sender="s@y.test", arrival_time=0,
                   content=lambda: io.BytesIO(MESSAGE), envelope={"ENVID": "env-1"}, settings=settings_of())
    parsed, parts = _parts(full)
    assert parts[2]["Content-Type"] == "message/rfc822"
    assert b"Hello.\r\n.leading dot\r\n" in full
    report = parts[1].as_string()
    assert "Original-Envelope-Id: env-1" in report and "Original-Recipient: rfc822;A@X.test" in report
    assert "Action: failed" in report and "Status: 5.1.1" in report
    hdrs = compose(notice, queue_id="ABC", original_sender="s@y.test", arrival_time=0,
                   content=lambda: io.BytesIO(MESSAGE), envelope={"RET": "HDRS"}, settings=settings_of())
    assert _parts(hdrs)[1][2]["Content-Type"] == "text/rfc822-headers" and b"Hello." not in hdrs
    big = compose(notice, queue_id="ABC", original_sender="s@y.test", arrival_time=0,
                  content=lambda: io.BytesIO(MESSAGE), envelope={}, settings=settings)
    returned = big.split(b"Content-Type: message/rfc822\r\n", 1)[1].split(b"\r\n\r\n", 1)[1]
    assert b"Hello." not in big and len(returned.split(b"\r\n--ABC.")[0]) <= 60 + len("Return-Path: <s@y.test>\r\n")
    assert all(len(line) <= 79 for line in full.split(b"\r\n"))


def test_wrap_matches_postfix_folding():
    assert wrap("a " * 10) == ["a " * 9 + "a "]
    long = "<x@remote.test>: host 127.0.0.11[127.0.0.11] said: 500 5.3.0 Error: command failed (in reply to RCPT TO command)"
    assert wrap(long) == ["<x@remote.test>: host 127.0.0.11[127.0.0.11] said: 500 5.3.0 Error: command",
                          "    failed (in reply to RCPT TO command)"]


def test_send_notices_logs_like_postfix_and_uses_expanded_targets():
    import asyncio

    from roost.delivery.notify import send_notices
    from tests.conftest import RecordingLog
    from tests.delivery.helpers import request

    sent = []

    async def submit(sender, recipients, data):
        sent.append((sender, recipients, data))
        return f"NEW{len(sent)}"

    alias = RecipientResult(Recipient("list@x.test", original="list@x.test"), "sent", "2.0.0", "delivered to mailbox",
                            "local", expanded=(result("gone@x.test"), result("ok@x.test", "sent")))
    log = RecordingLog()
    settings = settings_of("notify_classes = bounce\n")
    ids = asyncio.run(send_notices(FAILURE, request("list@x.test"), [alias], settings, log, submit=submit))
    assert ids == ["NEW1", "NEW2"]
    assert [text for _, text in log.lines] == ["4ABCDEF12: sender non-delivery notification: NEW1",
                                               "4ABCDEF12: postmaster non-delivery notification: NEW2"]
    assert sent[0][0] == "" and sent[0][1] == ("alice@example.org",)
    assert b"<gone@x.test>: some text" in sent[0][2] and b"ok@x.test" not in sent[0][2]
    assert sent[1][0] == "double-bounce@mx.roost.test"
    assert asyncio.run(send_notices(FAILURE, request("a@x.test", sender=""), [result("a@x.test")], settings_of(),
                                    RecordingLog(), submit=submit)) == []


def test_delay_warning_due():
    from roost.delivery.notify import delay_warning_due
    assert not delay_warning_due(0, 10 ** 6, settings_of(), False)           # delay_warning_time = 0h: never
    four_hours = settings_of("delay_warning_time = 4h\n")
    assert not delay_warning_due(0, 4 * 3600 - 1, four_hours, False)
    assert delay_warning_due(0, 4 * 3600, four_hours, False)
    assert not delay_warning_due(0, 5 * 3600, four_hours, True)


def test_queue_file_attribute_names_are_understood():
    from roost.delivery import envelope_param
    assert envelope_param({"dsn_ret": "HDRS", "dsn_envid": "e1"}, "RET") == "HDRS"
    assert envelope_param({"RET": "FULL"}, "RET") == "FULL" and envelope_param(None, "RET") is None
    [notice] = notices(FAILURE, "s@y.test", [result("a@x.test")], settings_of())
    message = compose(notice, queue_id="ABC", original_sender="s@y.test", arrival_time=0,
                      content=lambda: io.BytesIO(MESSAGE), envelope={"dsn_ret": "HDRS", "dsn_envid": "e1"},
                      settings=settings_of())
    assert b"text/rfc822-headers" in message and b"Original-Envelope-Id: e1" in message
