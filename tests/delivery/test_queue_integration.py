"""Notices and local(8) forwards go through the real cleanup into a real queue file
(roost.cleanup / roost.queue, written by other parts): envelope and content read back."""

from __future__ import annotations

import asyncio
import os

from roost.config.diagnostics import Diagnostics
from roost.delivery import Recipient, RecipientResult
from roost.delivery import local as local_agent
from roost.delivery.bounce import FAILURE
from roost.delivery.notify import send_notices
from roost.queue import iter_content, read_envelope
from roost.tables import clear_cache
from roost.tables.indexed import build
from tests.conftest import RecordingLog
from tests.delivery.helpers import request, settings_of


def _queued(queue_dir: str, queue_id: str):
    path = os.path.join(queue_dir, "incoming", queue_id)
    queue_file = read_envelope(path)
    return queue_file, b"".join(iter_content(queue_file))


def test_bounce_is_queued_from_the_null_sender(tmp_path):
    settings = settings_of(f"queue_directory = {tmp_path}\n")
    result = RecipientResult(Recipient("a@x.test", original="a@x.test"), "bounced", "5.1.1", "unknown user", "local")
    log = RecordingLog()
    [new_id] = asyncio.run(send_notices(FAILURE, request("a@x.test"), [result], settings, log))
    queue_file, content = _queued(str(tmp_path), new_id)
    assert queue_file.sender == "" and [r.address for r in queue_file.recipients] == ["alice@example.org"]
    assert b"Subject: Undelivered Mail Returned to Sender" in content
    assert b"Message-Id: <" in content or b"Message-ID: <" in content
    assert ("info", f"4ABCDEF12: sender non-delivery notification: {new_id}") in log.lines


def test_local_forward_is_queued_with_delivered_to(tmp_path):
    aliases = tmp_path / "aliases"
    aliases.write_text("fwd: someone@example.net\n")
    assert build("hash", str(aliases), Diagnostics(), aliases=True)
    clear_cache()
    settings = settings_of(f"queue_directory = {tmp_path / 'queue'}\nmydestination = x.test\n"
                           f"alias_maps = hash:{aliases}\n")
    log = RecordingLog()
    [result] = asyncio.run(local_agent.deliver(request("fwd@x.test", transport="local"), settings, log=log))
    assert result.status == "sent" and result.text.startswith("forwarded as ")
    new_id = result.text.split()[-1]
    queue_file, content = _queued(str(tmp_path / "queue"), new_id)
    assert queue_file.sender == "alice@example.org"
    assert [r.address for r in queue_file.recipients] == ["someone@example.net"]
    # (roost's cleanup puts a pickup-style Received line first for origin "local"; Postfix's
    # forwarded copy starts with Delivered-To: asked of the cleanup owner, see the report)
    assert b"\nDelivered-To: fwd@x.test\nFrom: Alice" in content or content.startswith(b"Delivered-To: fwd@x.test\n")
    clear_cache()
