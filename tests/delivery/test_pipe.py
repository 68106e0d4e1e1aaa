"""pipe(8): master.cf attributes, macros, flags, privileges and exit statuses."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile

import pytest

from roost.delivery import Recipient
from roost.delivery import pipe as pipe_agent
from tests.conftest import RecordingLog
from tests.delivery.helpers import request, settings_of


@pytest.fixture
def world():
    path = tempfile.mkdtemp(prefix="roost-pipe-")
    os.chmod(path, 0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def run(req, args, service="maildrop", settings=None):
    log = RecordingLog()
    results = asyncio.run(pipe_agent.deliver(req, settings or settings_of("recipient_delimiter = +\n"), log=log,
                                             service=service, args=tuple(args)))
    return results, [text for _, text in log.lines]


def recorder(world: str) -> str:
    script = os.path.join(world, "record.sh")
    with open(script, "w") as handle:
        handle.write(f'#!/bin/sh\nid -u > {world}/uid\nfor a in "$@"; do echo "[$a]"; done > {world}/argv\n'
                     f"cat > {world}/stdin\nexit ${{EXIT:-0}}\n")
    os.chmod(script, 0o755)
    return script


def test_macros_flags_and_privileges(world):
    script = recorder(world)
    message = b"Subject: x\r\n\r\nFrom the start\r\n.dot\r\n"
    req = request(Recipient("Bob+Lists@Example.TEST", original="bob+lists@example.test"), "carol@example.test",
                  sender="", message=message, nexthop="example.test")
    results, lines = run(req, ["flags=DRFOhu.>B", "user=nobody", f"argv={script}", "-f", "${sender}",
                               "-d", "${user}@${domain}", "{--ext=${extension} x}", "$$HOME"])
    assert [r.status for r in results] == ["sent", "sent"]
    assert results[0].text == "delivered via maildrop service" and results[0].relay == "maildrop"
    assert lines[0].startswith("4ABCDEF12: to=<Bob+Lists@Example.TEST>, orig_to=<bob+lists@example.test>, "
                               "relay=maildrop, delay=")
    argv = open(f"{world}/argv").read().split("\n")[:-1]
    # an argument with a per-recipient macro is repeated once per recipient (pipe(8))
    assert argv == ["[-f]", "[MAILER-DAEMON]", "[-d]", "[bob@example.test]", "[carol@example.test]",
                    "[--ext=lists x]", "[--ext= x]", "[$HOME]"]
    expected_uid = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert int(open(f"{world}/uid").read()) == expected_uid
    stdin = open(f"{world}/stdin", "rb").read()
    assert stdin.startswith(b"From MAILER-DAEMON  ")
    assert b"\nReturn-Path: <>\nX-Original-To: bob+lists@example.test\nDelivered-To: Bob+Lists@Example.TEST\n" in stdin
    assert stdin.endswith(b"\n>From the start\n..dot\n\n")


def test_exit_status_size_and_root(world):
    script = recorder(world)
    os.environ["EXIT"] = "75"
    try:
        settings = settings_of("export_environment = EXIT PATH\n")
        results, _ = run(request("a@x.test"), ["user=nobody", f"argv={script}"], settings=settings)
    finally:
        del os.environ["EXIT"]
    assert (results[0].status, results[0].dsn, results[0].text) == ("deferred", "4.3.0", "temporary failure")
    results, _ = run(request("a@x.test"), ["user=nobody", "size=10", f"argv={script}"])
    assert (results[0].status, results[0].dsn) == ("bounced", "5.2.3")
    if os.geteuid() == 0:
        results, _ = run(request("a@x.test"), ["user=root", f"argv={script}"])
        assert results[0].status == "deferred" and "root privileges" in results[0].text
    results, _ = run(request("a@x.test"), ["user=nobody"])
    assert results[0].status == "deferred" and "argv" in results[0].text


def test_success_text_quotes_the_output_like_postfix(world):
    results, _ = run(request("a@x.test"), ["user=nobody", "argv=/usr/bin/python3", "-c",
                                           "print('c' * 99); print('d' * 10)"])
    assert results[0].text == "delivered via maildrop service (" + "c" * 99 + " )"
    results, _ = run(request("a@x.test"), ["user=nobody", "argv=/usr/bin/printf", "a\\tb\\nc  \\n\\n"])
    assert results[0].text == "delivered via maildrop service (a b c)"
    results, _ = run(request("a@x.test"), ["user=nobody", "argv=/bin/true"])
    assert results[0].text == "delivered via maildrop service"
