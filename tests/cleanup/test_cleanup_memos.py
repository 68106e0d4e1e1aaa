"""cleanup's per-process memos give what the uncached code gives: the Date text of a second
(mail_date), a header_checks result parsed once per distinct text (Checks.match), header
bytes stored as received when nothing rewrote them, and queue files that only appear once
complete (the anonymous queue file)."""

from __future__ import annotations

import os
import time

from roost.cleanup import received
from roost.cleanup.checks import Checks, parse_action
from tests.cleanup.test_service import client, deliver, make_service, stored


def test_mail_date_cache_matches_a_fresh_formatting():
    now = int(time.time())
    for when in (now, now + 0.25, now + 0.99, now + 1, now - 86400 * 180, now + 0.5, now):
        assert received.mail_date(when) == received._format_date(int(when))
    assert received.mail_date(now + 0.1) == received.mail_date(now + 0.9)
    assert received.mail_date(now) != received.mail_date(now + 1)


def test_parsed_actions_are_shared_and_equal_to_parse_action(tmp_path):
    table = tmp_path / "hc"
    table.write_text("/^Subject: a/ HOLD\n/^Subject: b/ REJECT 5.7.0 nope\n/^Subject: c/ bogus\n")
    checks = Checks([f"regexp:{table}"])
    first = checks.match("Subject: a")
    assert first is checks.match("Subject: a one more")  # parsed once
    assert first == parse_action("HOLD")
    assert checks.match("Subject: b") == parse_action("REJECT 5.7.0 nope")
    assert checks.match("Subject: c").action == "UNKNOWN"
    assert checks.match("Subject: d") is None


def test_header_bytes_pass_unchanged_and_rewritten_ones_change(tmp_path):
    service, _ = make_service(tmp_path, "local_header_rewrite_clients = static:all\n")
    raw = "X-Latin1: caf\udce9\n".encode("utf-8", "surrogateescape")  # a byte that is not UTF-8
    message = b"From: alice\r\nSubject: s\xc3\xa9\r\n" + raw.replace(b"\n", b"\r\n") + b"\r\nbody\r\n"
    result, _ = deliver(service, message, info=client())
    content = open_content(service, result.queue_id)
    assert b"From: alice@example.test\n" in content
    assert b"Subject: s\xc3\xa9\n" in content and raw in content


def test_the_queue_file_appears_only_when_complete(tmp_path):
    service, _ = make_service(tmp_path)
    message = service.open(origin="smtpd", client=client(), sender="a@example.net", envelope={})
    message.add_recipient("b@example.test")
    message.write(b"Subject: x\r\n\r\nbody\r\n")
    incoming = service.layout.queue_dir("incoming")
    assert os.listdir(incoming) == []
    result = message.finish()
    assert os.listdir(incoming) == [result.queue_id]
    assert stored(service, result.queue_id)[2].endswith("body\n")


def open_content(service, queue_id: str) -> bytes:
    from roost.queue.reader import read_content, read_envelope
    _queue, path = service.layout.find(queue_id)
    return read_content(read_envelope(path))


def test_crlf_only_shortcut_stores_the_same_content(tmp_path):
    """write(data, crlf_only=True) (CRs deleted instead of CRLF replaced) stores what write()
    stores, however the content is cut, also when the body starts with bytes the header
    splitter held back from an earlier chunk (then the shortcut is not taken)."""
    import random
    service, _ = make_service(tmp_path)
    rng = random.Random(11)
    tokens = [b"\r\n", b"a", b"Subject: x", b"X-Y: z", b" folded", b"\r", b"body line", b"\r\r\n", b"\n", b":"]
    for _ in range(60):
        message = b"".join(rng.choice(tokens) for _ in range(rng.randrange(1, 40)))
        cuts = sorted(rng.sample(range(1, len(message)), min(len(message) - 1, rng.randrange(0, 5)))) if len(message) > 1 else []
        chunks = [message[a:b] for a, b in zip([0, *cuts], [*cuts, len(message)])]
        stored_texts = []
        for shortcut in (False, True):
            msg = service.open(origin="smtpd", client=client(), sender="a@example.net", envelope={})
            msg.add_recipient("b@example.test")
            for chunk in chunks:
                truthful = chunk.count(b"\r") == chunk.count(b"\r\n")
                if shortcut and truthful:
                    msg.write(chunk, crlf_only=True)
                else:
                    msg.write(chunk)
            result = msg.finish()
            stored_texts.append(open_content(service, result.queue_id).split(b"\n", 1)[1])  # past Received:
        assert stored_texts[0].split(b"\n", 2)[2] == stored_texts[1].split(b"\n", 2)[2], (message, cuts)
