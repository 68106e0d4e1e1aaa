"""`postcat` against Debian Postfix 3.7's on the same message: -h, -b, -e, -q and the
full listing (section markers, record labels, message_size columns), plus errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from roost.cli import postcat
from tests.cleanup.postfix_ref import started_reference
from tests.cleanup.test_differential import roost_service, run_roost
from tests.conftest import REPO, free_port_base, require_tool

MESSAGE = (b"Subject: postcat\r\nFrom: alice\r\nX-Folded: a\r\n\tb\r\n\r\nbody 1\r\n\r\n"
           b"Subject: in the body\r\n" + b"z" * 3000 + b"\r\nlast\r\n")
DATE = re.compile(r"\w{3}, [ \d]\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(\w+\)|\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    require_tool("postcat")
    ref = started_reference("test_postcat", free_port_base() + 55)
    try:
        roost_dir = tmp_path_factory.mktemp("roost-postcat")
        service, _ = roost_service(ref, str(roost_dir / "queue"))
        (roost_dir / "main.cf").write_text(f"queue_directory = {roost_dir / 'queue'}\n")
        code, reply = ref.send("alice@example.org", ["bob@example.net"], MESSAGE)
        assert code == 250, reply
        _, result = run_roost(service, "alice@example.org", ["bob@example.net"], MESSAGE, "127.0.0.1")
        yield ref, roost_dir, reply.rsplit(" ", 1)[-1], result.queue_id
    finally:
        ref.stop()


def ours(roost_dir, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from roost.cli.postcat import main; "
                           "sys.exit(main(sys.argv))", "-c", str(roost_dir), *args],
                          capture_output=True, timeout=30, cwd=str(REPO))


def theirs(ref, *args) -> subprocess.CompletedProcess:
    for _attempt in range(50):  # the queue manager may be moving the file
        done = subprocess.run(["postcat", "-c", ref.etc, *args], capture_output=True, timeout=30)
        if done.returncode == 0 or "-q" not in args:
            return done
    return done


def normalize(text: bytes, ids) -> str:
    out = text.decode("utf-8", "surrogateescape")
    for queue_id in ids:
        out = out.replace(queue_id, "QUEUEID")
    out = re.sub(r"(incoming|active|deferred|hold)/(?:[0-9A-F]/)*QUEUEID", "QUEUE/QUEUEID", out)
    out = re.sub(r"<\d{14}\.", "<STAMP.", out)
    return DATE.sub("DATE", out)


@pytest.mark.parametrize("flags", [["-h"], ["-b"], ["-bh"]])
def test_sections_match_postfix(pair, flags):
    ref, roost_dir, postfix_id, roost_id = pair
    a = ours(roost_dir, *flags, "-q", roost_id)
    b = theirs(ref, *flags, "-q", postfix_id)
    assert a.returncode == b.returncode == 0, a.stderr
    assert normalize(a.stdout, [roost_id, postfix_id]) == normalize(b.stdout, [roost_id, postfix_id])


def test_full_listing_has_postfix_structure(pair):
    ref, roost_dir, postfix_id, roost_id = pair
    a = normalize(ours(roost_dir, "-q", roost_id).stdout, [roost_id, postfix_id]).split("\n")
    b = normalize(theirs(ref, "-q", postfix_id).stdout, [roost_id, postfix_id]).split("\n")
    markers = [line for line in b if line.startswith("***")]
    assert [line for line in a if line.startswith("***")] == markers
    content = lambda lines: lines[lines.index(markers[1]) + 1:lines.index(markers[2])]
    assert content(a) == content(b)
    shared_labels = ("message_size:", "message_arrival_time:", "sender:", "original_recipient:", "recipient:")
    pick = lambda lines: [line for line in lines if line.startswith(shared_labels)]
    # message_size columns: the same widths; the data offset differs (other attributes)
    size_a, size_b = pick(a)[0].split(), pick(b)[0].split()
    assert len(pick(a)[0]) == len(pick(b)[0])
    assert (size_a[1], size_a[3:]) == (size_b[1], size_b[3:])
    assert pick(a)[1:] == pick(b)[1:]


def test_envelope_only(pair):
    ref, roost_dir, postfix_id, roost_id = pair
    a = normalize(ours(roost_dir, "-e", "-q", roost_id).stdout, [roost_id, postfix_id]).split("\n")
    b = normalize(theirs(ref, "-e", "-q", postfix_id).stdout, [roost_id, postfix_id]).split("\n")
    assert [l for l in a if l.startswith("***")] == [l for l in b if l.startswith("***")]
    assert not any(l.startswith("Subject:") for l in a)


def test_missing_queue_id(pair):
    ref, roost_dir, _postfix_id, _roost_id = pair
    a = ours(roost_dir, "-q", "ABCDEF12345")
    b = subprocess.run(["postcat", "-c", ref.etc, "-q", "ABCDEF12345"], capture_output=True, timeout=30)
    assert a.returncode == b.returncode == 1
    assert a.stderr.decode().strip() == b.stderr.decode().strip()


def test_file_argument_and_damaged_file(pair, tmp_path):
    _ref, roost_dir, _postfix_id, roost_id = pair
    from roost.queue.layout import QueueLayout
    _, path = QueueLayout(str(roost_dir / "queue")).find(roost_id)
    whole = ours(roost_dir, path)
    assert whole.returncode == 0 and f"*** ENVELOPE RECORDS {path} ***" in whole.stdout.decode()
    damaged = tmp_path / "damaged"
    damaged.write_bytes(open(path, "rb").read()[:-1])  # no end record
    broken = ours(roost_dir, str(damaged))
    assert broken.returncode == 1 and b"fatal" in broken.stderr and b"Traceback" not in broken.stderr
