"""`mailq` / `postqueue -p` / `postqueue -j` output against Debian Postfix 3.7's for the
same messages: both queues get the same three messages (one held by header_checks, one
with the null sender and two recipients, one of 3 KB); listings are compared after queue
IDs and arrival times are replaced by placeholders (the sizes must match exactly)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from roost.cli import mailq
from tests.cleanup.postfix_ref import PostfixRef, started_reference
from tests.cleanup.test_differential import roost_service, run_roost
from tests.conftest import free_port_base, require_tool

MESSAGES = [
    ("alice@example.org", ["bob@example.net"], "Subject: first\r\nFrom: alice\r\n\r\nbody\r\n"),
    ("", ["bob@example.net", "carol@example.net"], "Subject: bounce\r\n\r\nbody\r\n"),
    ("alice@example.org", ["dave@example.net"], "Subject: hold-me\r\n\r\n" + "x" * 3000 + "\r\n"),
]
QUEUE_ID = re.compile(r"^[0-9A-F]{10,12}(?=[ !*])", re.M)
ARRIVAL = re.compile(r"\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    require_tool("postqueue")
    ref = started_reference("test_mailq", free_port_base() + 54, {"header_checks": "/^Subject: hold-me/ HOLD\n"})
    try:
        roost_dir = tmp_path_factory.mktemp("roost-mailq")
        (roost_dir / "main.cf").write_text(f"queue_directory = {roost_dir / 'queue'}\n")
        yield ref, roost_dir
    finally:
        ref.stop()


def postfix_listing(ref: PostfixRef, *flags: str) -> str:
    done = subprocess.run(["postqueue", "-c", ref.etc, *flags], capture_output=True, text=True, timeout=30)
    return done.stdout


def normalize(text: str) -> str:
    return ARRIVAL.sub("ARRIVAL", QUEUE_ID.sub(lambda m: "Q" * len(m.group(0)), text))


def blocks(text: str) -> list[str]:
    head, *rest = text.split("\n", 1)
    return [head] + sorted(rest[0].split("\n\n")) if rest else [head]


def mirror_deferral(ref: PostfixRef, service) -> None:
    """Give roost's copies the state Postfix's queue manager gave its own: moved to
    deferred/, with the defer log Postfix wrote (the reason mailq shows)."""
    from roost.queue.layout import QueueLayout
    from roost.queue.reader import read_envelope
    theirs = QueueLayout(ref.spool)
    logs = {}
    for queue_id, path in theirs.scan("deferred"):
        qf = read_envelope_postfix(ref, queue_id)
        logs[qf] = open(theirs.path("defer", queue_id), encoding="utf-8").read()
    layout = service.layout
    for queue_id, path in list(layout.scan("incoming")):
        qf = read_envelope(path)
        key = (qf.sender or "", tuple(r.address for r in qf.recipients))
        if key in logs:
            target = os.path.join(layout.ensure_directory("deferred", queue_id), queue_id)
            os.rename(path, target)
            os.makedirs(layout.directory("defer", queue_id), exist_ok=True)
            with open(layout.path("defer", queue_id), "w", encoding="utf-8") as handle:
                handle.write(logs[key])


def read_envelope_postfix(ref: PostfixRef, queue_id: str) -> tuple:
    text = ref.postcat(queue_id, "-e")
    sender = next(line[8:] for line in text.splitlines() if line.startswith("sender: "))
    recipients = tuple(line[11:] for line in text.splitlines() if line.startswith("recipient: "))
    return sender, recipients


def test_listing_matches_postfix(pair):
    """One test, in order: both queues empty, then the same three messages in both."""
    ref, roost_dir = pair
    service, _ = roost_service(ref, str(roost_dir / "queue"))
    assert postfix_listing(ref, "-p") == "Mail queue is empty\n"
    assert mailq.listing(str(roost_dir)) == "Mail queue is empty\n"
    assert postfix_listing(ref, "-j") == mailq.listing(str(roost_dir), as_json=True) == ""
    for sender, recipients, text in MESSAGES:
        code, reply = ref.send(sender, recipients, text.encode())
        assert code == 250, reply
        _, result = run_roost(service, sender, recipients, text.encode(), "127.0.0.1")
        assert result.status in ("queued", "held")
    # wait until Postfix's queue manager has moved everything out of incoming/active
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        listing = postfix_listing(ref, "-p")
        if "3 Requests" in listing and "*" not in listing and listing.count("(deferred transport)") == 2:
            break
        time.sleep(0.1)
    mirror_deferral(ref, service)
    theirs = postfix_listing(ref, "-p")
    ours = mailq.listing(str(roost_dir))
    assert blocks(normalize(ours)) == blocks(normalize(theirs)), (ours, theirs)

    their_json = sorted((json.loads(line) for line in postfix_listing(ref, "-j").splitlines()),
                        key=lambda item: item["message_size"])
    our_json = sorted((json.loads(line) for line in mailq.listing(str(roost_dir), as_json=True).splitlines()),
                      key=lambda item: item["message_size"])
    for item in their_json + our_json:
        item.pop("queue_id")
        item.pop("arrival_time")
        item["queue_name"] = "hold" if item["queue_name"] == "hold" else "pending"
    assert our_json == their_json


def test_mailq_command(tmp_path, capsys):
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path / 'queue'}\n")
    assert mailq.main(["mailq", "-c", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "Mail queue is empty\n"
    assert mailq.main(["postqueue", "-j", "-c", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("prog", ["mailq", "postqueue"])
def test_missing_configuration_like_postfix(tmp_path, capsys, monkeypatch, prog):
    require_tool(prog)
    missing = str(tmp_path / "nowhere")
    theirs = subprocess.run([prog, "-p"] if prog == "postqueue" else [prog], capture_output=True, text=True,
                            env=dict(os.environ, MAIL_CONFIG=missing), timeout=30)
    monkeypatch.setenv("MAIL_CONFIG", missing)
    code = mailq.main([prog, "-p"] if prog == "postqueue" else [prog])
    assert code == theirs.returncode
    assert capsys.readouterr().err == theirs.stderr
