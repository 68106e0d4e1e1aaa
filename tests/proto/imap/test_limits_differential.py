"""Line and literal limits against Dovecot 2.3.19 (imap_max_line_length = 64k).

Each case is one PREAUTH Dovecot session (INBOX selected) and one roost ImapConnection fed the
same bytes (once whole, once a byte at a time); the replies must agree apart from Dovecot's
timing suffix, and both must stay usable (or both close) afterwards.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from roost.proto.imap.connection import NEED_DATA, PAUSED, CommandReceived, ImapConnection, ProtocolError
from roost.proto.imap.states import State
from tests.message.dovecot_oracle import DovecotOracle, split_responses
from tests.proto.imap.helpers import feed

MESSAGE = b"From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n"
CASES = {
    "long-line": b"a SEARCH TEXT " + b"x" * 70000 + b"\r\nb NOOP\r\n",
    "long-quoted-ok": b'a SEARCH TEXT "' + b"x" * 65500 + b'"\r\nb NOOP\r\n',
    "big-literal": b"a SEARCH TEXT {70000}\r\n" + b"x" * 70000 + b"\r\nb NOOP\r\n",
    "big-nonsync-literal": b"a SEARCH TEXT {70000+}\r\n" + b"x" * 70000 + b"\r\nb NOOP\r\n",
    "literal-at-limit": b"a SEARCH TEXT {60000+}\r\n" + b"x" * 60000 + b"\r\nb NOOP\r\n",
    "big-append": b"a APPEND INBOX {70042+}\r\n" + MESSAGE + b"y" * 70000 + b"\r\nb NOOP\r\n",
}
_TIMING = re.compile(rb" \(\d+\.\d+ \+ [^)]*secs\)\.?(?=\r\n)")


def _status_lines(responses: list[bytes]) -> list[bytes]:
    """Tagged and BYE/BAD responses of tags a and b, timing removed, text after the tag."""
    out = []
    for response in responses:
        if re.match(rb"(a|b|\*) (OK|NO|BAD|BYE)", response) and not response.startswith(b"* OK"):
            out.append(_TIMING.sub(b"", response))
    return out


@pytest.fixture(scope="module")
def dovecot_answers():
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        oracle = DovecotOracle(root, [MESSAGE], [1700000000.0])
        answers = {}
        for name, data in CASES.items():
            raw = oracle.session([b"s SELECT INBOX", data.rstrip(b"\r\n")])
            answers[name] = _status_lines(split_responses(raw))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return answers


def _roost(data: bytes, bytewise: bool) -> list[bytes]:
    conn = ImapConnection(state=State.SELECTED)
    out = []
    for event in feed(conn, data, bytewise):
        if isinstance(event, ProtocolError):
            out.append(event.reply)
            if event.fatal:
                break
        elif isinstance(event, CommandReceived):
            tag = event.command.tag.encode()
            out.append(tag + b" OK")  # the session's answer; only the status word is compared
    return out


@pytest.mark.parametrize("bytewise", [False, True], ids=["whole", "bytewise"])
@pytest.mark.parametrize("name", list(CASES))
def test_limits_match_dovecot(dovecot_answers, name, bytewise):
    theirs = dovecot_answers[name]
    mine = _roost(CASES[name], bytewise)
    theirs = [t for t in theirs if not t.startswith(b"ZZ")]
    # tagged OK/NO for commands roost parsed: compare tag and status word only
    normalised = []
    for line in theirs:
        if re.match(rb"[ab] (OK|NO) ", line):
            normalised.append(line.split(b" ", 2)[0] + b" OK")
        elif line.startswith(b"* BYE Logging out"):
            continue
        else:
            normalised.append(line)
    if any(m.startswith(b"* BYE") for m in mine):
        normalised = normalised[:len(mine)]
    assert mine == normalised


def test_too_many_bad_commands_like_dovecot():
    """Dovecot says `* BYE Too many invalid IMAP commands.` after 20 BADs in a row and
    closes; a good command in between resets the count."""
    bad_run = b"".join(b"x%d FOO\r\n" % i for i in range(25))
    mixed = b"".join(b"x%d FOO\r\ny%d NOOP\r\n" % (i, i) for i in range(25))
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        oracle = DovecotOracle(root, [MESSAGE], [1700000000.0])
        theirs_run = oracle.session([bad_run.rstrip(b"\r\n")])
        theirs_mixed = oracle.session([mixed.rstrip(b"\r\n")])
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def roost_answers(data: bytes) -> bytes:
        conn = ImapConnection(state=State.AUTHENTICATED)
        conn.receive_data(data)
        out = b""
        while True:  # one event at a time: the session answers before the next is parsed
            event = conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            if isinstance(event, ProtocolError):
                out += event.reply
                if event.fatal:
                    break
            elif isinstance(event, CommandReceived):
                conn.command_finished(bad=False)
                out += event.command.tag.encode() + b" OK\r\n"
        return out

    def statuses(raw: bytes) -> list[bytes]:
        lines = [_TIMING.sub(b"", line) for line in split_responses(raw) if not line.startswith(b"* PREAUTH")]
        return [re.sub(rb"^(y\d+ OK).*", rb"\1", line.rstrip(b"\r\n")) for line in lines
                if not line.startswith(b"ZZ") and b"Logging out" not in line]

    assert statuses(roost_answers(bad_run)) == statuses(theirs_run)
    assert statuses(roost_answers(mixed)) == statuses(theirs_mixed)
    assert b"Too many invalid" in theirs_run and b"Too many invalid" not in theirs_mixed
