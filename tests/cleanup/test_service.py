"""CleanupService / CleanupMessage behaviour that the differential tests cannot reach:
TLS and SASL Received lines, local submissions, limits, aborts, failures, streaming."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.cleanup import CleanupService, ClientInfo
from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf_text
from roost.config.settings import Settings
from roost.queue.reader import read_content, read_envelope
from tests.conftest import RecordingLog
from tests.queue.test_writer import postfix_message_size

TLS = ("(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
       "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\n"
       "\t(No client certificate requested)")


def make_service(tmp_path, extra: str = "") -> tuple[CleanupService, RecordingLog]:
    queue = tmp_path / "queue"
    text = (f"queue_directory = {queue}\nmyhostname = mail.example.test\nmydomain = example.test\n"
            f"myorigin = $mydomain\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n{extra}")
    diags = Diagnostics()
    settings_ = Settings.from_main_cf(parse_main_cf_text(text, str(tmp_path / "main.cf"), diags), str(tmp_path), diags)
    log = RecordingLog()
    return CleanupService(settings_, log), log


def client(**changes) -> ClientInfo:
    values = dict(name="client.example.org", address="192.0.2.7", port=5555, helo="helo.example.org",
                  protocol="ESMTP", tls=None, sasl_method=None, sasl_username=None, session_id="s1")
    values.update(changes)
    return ClientInfo(**values)


def deliver(service, message: bytes, recipients=("bob@example.net",), sender="alice@example.org",
            origin="smtpd", info=None, envelope=None, chunk=4096):
    msg = service.open(origin=origin, client=info if info is not None or origin != "smtpd" else client(),
                       sender=sender, envelope=envelope or {})
    for recipient in recipients:
        msg.add_recipient(recipient)
    for start in range(0, len(message), chunk):
        msg.write(message[start:start + chunk])
    return msg, msg.finish()


def stored(service, queue_id):
    queue, path = service.layout.find(queue_id)
    qf = read_envelope(path)
    return queue, qf, read_content(qf).decode("utf-8", "surrogateescape")


def test_received_with_tls_and_authenticated_sender(tmp_path):
    service, _ = make_service(tmp_path, "smtpd_tls_received_header = yes\nsmtpd_sasl_authenticated_header = yes\n")
    info = client(tls=TLS, sasl_method="PLAIN", sasl_username="alice", protocol="ESMTPSA")
    _, result = deliver(service, b"Subject: x\r\n\r\nbody\r\n", info=info)
    _, _, content = stored(service, result.queue_id)
    received = content.split("\nSubject:", 1)[0]
    date = received.rsplit("; ", 1)[1]
    assert received == (
        "Received: from helo.example.org (client.example.org [192.0.2.7])\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
        "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\n"
        "\t(No client certificate requested)\n"
        "\t(Authenticated sender: alice)\n"
        f"\tby mail.example.test (Postfix) with ESMTPSA id {result.queue_id}\n"
        f"\tfor <bob@example.net>; {date}")


def test_tls_and_sasl_details_are_off_by_default(tmp_path):
    service, _ = make_service(tmp_path)
    _, result = deliver(service, b"Subject: x\r\n\r\nb\r\n", info=client(tls=TLS, sasl_username="alice"))
    content = stored(service, result.queue_id)[2]
    assert "using TLS" not in content and "Authenticated sender" not in content


def test_ipv6_client_and_missing_helo(tmp_path):
    service, _ = make_service(tmp_path)
    _, result = deliver(service, b"Subject: x\r\n\r\nb\r\n", info=client(address="2001:db8::1", helo=None))
    content = stored(service, result.queue_id)[2]
    assert content.startswith("Received: from client.example.org (client.example.org [IPv6:2001:db8::1])\n")


def test_local_submission_received_and_added_headers(tmp_path):
    service, log = make_service(tmp_path)
    _, result = deliver(service, b"Subject: cron\n\noutput\n", sender="root", origin="sendmail",
                        envelope={"UID": "0", "FULLNAME": "Cron Daemon"})
    queue, qf, content = stored(service, result.queue_id)
    assert qf.sender == "root@example.test"
    lines = content.split("\n")
    assert lines[0] == "Received: by mail.example.test (Postfix, from userid 0)"
    assert lines[1].startswith(f"\tid {result.queue_id}; ")
    assert "From: Cron Daemon <root@example.test>" in lines
    assert any(line.startswith("Message-Id: <") and line.endswith(f".{result.queue_id}@mail.example.test>")
               for line in lines)
    assert log.lines[0][1].startswith(f"{result.queue_id}: message-id=<")


def test_message_size_limit(tmp_path):
    service, _ = make_service(tmp_path, "message_size_limit = 1000\n")
    msg, result = deliver(service, b"Subject: big\r\n\r\n" + b"x" * 2000 + b"\r\n")
    assert (result.status, result.reply.code, result.reply.enhanced) == ("rejected", 552, "5.3.4")
    assert result.reply.text == "Message size exceeds fixed limit"
    assert os.listdir(service.layout.queue_dir("incoming")) == []


def test_abort_midway_leaves_nothing(tmp_path):
    service, _ = make_service(tmp_path)
    msg = service.open(origin="smtpd", client=client(), sender="a@example.org", envelope={})
    msg.add_recipient("b@example.net")
    msg.write(b"Subject: x\r\n\r\n" + b"y" * 100000)
    msg.abort()
    msg.abort()
    assert os.listdir(service.layout.queue_dir("incoming")) == []
    msg.write(b"more")  # ignored after abort


def test_abort_after_finish_keeps_the_message(tmp_path):
    service, _ = make_service(tmp_path)
    msg, result = deliver(service, b"Subject: x\r\n\r\nb\r\n")
    msg.abort()
    assert service.layout.find(result.queue_id)


def test_body_is_not_split_into_lines_without_body_checks(tmp_path, monkeypatch):
    service, _ = make_service(tmp_path)
    from roost.cleanup.service import CleanupMessage
    monkeypatch.setattr(CleanupMessage, "_line_body", lambda *a: pytest.fail("per-line body path used"))
    _, result = deliver(service, b"Subject: x\r\n\r\n" + b"line\r\n" * 10000, chunk=65536)
    assert result.status == "queued"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1000])
def test_crlf_split_anywhere_becomes_lf(tmp_path, chunk):
    service, _ = make_service(tmp_path)
    body = b"a\r\nb\rc\r\n\r\nlast\r\n"
    _, result = deliver(service, b"Subject: x\r\n\r\n" + body, chunk=chunk)
    content = stored(service, result.queue_id)[2]
    assert content.endswith("\n\na\nb\rc\n\nlast\n")


def test_always_bcc_once(tmp_path):
    service, _ = make_service(tmp_path, "always_bcc = archive@example.net\n")
    _, result = deliver(service, b"Subject: x\r\n\r\nb\r\n", recipients=("bob@example.net", "archive@example.net"))
    qf = stored(service, result.queue_id)[1]
    assert [r.address for r in qf.recipients] == ["bob@example.net", "archive@example.net"]
    assert result.nrcpt == 2


def test_filter_and_redirect_are_recorded(tmp_path):
    (tmp_path / "hc").write_text("/^Subject: f/ FILTER smtp:[127.0.0.1]:10025\n/^X-R:/ REDIRECT other\n")
    service, log = make_service(tmp_path, f"header_checks = regexp:{tmp_path}/hc\n")
    _, result = deliver(service, b"Subject: f\r\nX-R: 1\r\n\r\nb\r\n")
    qf = stored(service, result.queue_id)[1]
    assert qf.attributes["content_filter"] == "smtp:[127.0.0.1]:10025"
    assert qf.attributes["redirect_to"] == "other@example.test"
    assert any(": filter: header Subject: f from client.example.org[192.0.2.7];" in t for _, t in log.lines)


def test_unreadable_table_defers(tmp_path):
    service, log = make_service(tmp_path, f"header_checks = regexp:{tmp_path}/missing\n")
    _, result = deliver(service, b"Subject: x\r\n\r\nb\r\n")
    assert (result.status, result.reply.code, result.reply.enhanced) == ("rejected", 451, "4.3.0")
    assert os.listdir(service.layout.queue_dir("incoming")) == []
    assert any(level == "warning" for level, _ in log.lines)


def test_recipient_after_content_goes_to_the_extracted_section(tmp_path):
    service, _ = make_service(tmp_path)
    msg = service.open(origin="smtpd", client=client(), sender="a@example.org", envelope={"ENVID": "e1", "RET": "HDRS"})
    msg.add_recipient("b@example.net", orcpt="rfc822;b@example.net", notify="SUCCESS,DELAY")
    msg.write(b"Subject: x\r\n\r\nbody\r\n")
    msg.add_recipient("late@example.net")
    result = msg.finish()
    qf = stored(service, result.queue_id)[1]
    first, late = qf.recipients
    assert (first.orcpt, first.notify, first.extracted) == ("rfc822;b@example.net", 10, False)
    assert late.address == "late@example.net" and late.extracted
    assert qf.attributes["dsn_envid"] == "e1" and qf.attributes["dsn_ret"] == "HDRS"


def test_no_recipients_is_refused(tmp_path):
    service, _ = make_service(tmp_path)
    _, result = deliver(service, b"Subject: x\r\n\r\nb\r\n", recipients=())
    assert result.status == "rejected" and result.reply.code == 554


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=300))
def test_garbage_content_never_raises(tmp_path, data, chunk):
    service, _ = make_service(tmp_path, "header_size_limit = 100\n")
    _, result = deliver(service, data, chunk=chunk)
    assert result.status in ("queued", "rejected")
    if result.status == "queued":
        queue, qf, content = stored(service, result.queue_id)
        assert qf.content_size == postfix_message_size(content.encode("utf-8", "surrogateescape"))
        os.unlink(qf.path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([b"--a", b"--a--", b"Content-Type: multipart/x; boundary=b", b"--b", b"",
                                 b"Content-Type: message/rfc822", b" folded", b"X-Bad: 1", b"bad line", b"\xff"]),
                max_size=30), st.integers(min_value=1, max_value=50))
def test_mime_and_checks_path_never_raises(tmp_path, lines, chunk):
    (tmp_path / "rules").write_text("/^X-Bad:/ IGNORE\n/^bad line/ REPLACE good line\n/^--b$/ WARN w\n")
    service, _ = make_service(tmp_path, f"header_checks = regexp:{tmp_path}/rules\nbody_checks = regexp:{tmp_path}/rules\n")
    message = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"\r\n".join(lines)
    _, result = deliver(service, message, chunk=chunk)
    assert result.status == "queued"
    content = stored(service, result.queue_id)[2]
    assert "X-Bad" not in content and "bad line" not in content
    os.unlink(stored(service, result.queue_id)[1].path)


def test_smtputf8_flag_in_the_size_record(tmp_path):
    service, _ = make_service(tmp_path)
    _, result = deliver(service, "Subject: ünïcode\r\n\r\nb\r\n".encode(), envelope={"SMTPUTF8": "yes"},
                        recipients=("bøb@example.net",))
    qf = stored(service, result.queue_id)[1]
    assert qf.smtputf8 == 1 and qf.recipients[0].address == "bøb@example.net"


def test_undisclosed_recipients_and_always_add_missing_headers(tmp_path):
    service, log = make_service(tmp_path, "undisclosed_recipients_header = To: undisclosed-recipients:;\n"
                                          "always_add_missing_headers = yes\n")
    _, result = deliver(service, b"Subject: x\r\n\r\nb\r\n")  # a remote client (192.0.2.7)
    content = stored(service, result.queue_id)[2]
    assert "\nTo: undisclosed-recipients:;\n" in content and "\nMessage-Id: <" in content
    assert "\nFrom: alice@example.org\n" in content


def test_remote_mail_gets_nothing_added_by_default(tmp_path):
    service, log = make_service(tmp_path)
    _, result = deliver(service, b"Subject: x\r\nFrom: alice\r\n\r\nb\r\n")
    content = stored(service, result.queue_id)[2]
    assert "Message-Id" not in content and "\nFrom: alice\n" in content  # not qualified either
    assert log.lines == [("info", f"{result.queue_id}: message-id=<>")]
