"""roost.proto.smtp.data: end of DATA, dot-unstuffing, bare newlines, SMTP smuggling.

The decoder is compared, on random input split at random places, with a slow line-by-line
reference written straight from RFC 5321 §4.1.1.4 / §4.5.2 and Postfix 3.9's `normalize`.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.smtp.data import DataDecoder
from tests.proto.smtp.driver import Driver


def decode(data: bytes, cuts=()) -> tuple[bytes, bytes | None, bool]:
    decoder = DataDecoder()
    out = bytearray()
    points = sorted({c for c in cuts if 0 < c < len(data)})
    for start, end in zip([0, *points], [*points, len(data)]):
        content, leftover = decoder.feed(data[start:end])
        out += content
        if leftover is not None:
            return bytes(out), leftover + data[end:], decoder.bare_newline_seen
    return bytes(out), None, decoder.bare_newline_seen


def reference(data: bytes) -> tuple[bytes, bytes | None, bool]:
    """Line by line: lines end at LF; only "." + CRLF after a CRLF (or at the start) ends."""
    out = bytearray()
    bare = False
    position = 0
    previous_crlf = True
    for match in re.finditer(rb"[^\n]*\n", data):
        line = match.group(0)
        position = match.end()
        crlf = line.endswith(b"\r\n")
        if previous_crlf and line == b".\r\n":
            return bytes(out), data[position:], bare
        if line.startswith(b"."):
            line = line[1:]
        if not crlf:
            bare = True
            line = line[:-1] + b"\r\n"
        out += line
        previous_crlf = crlf
    tail = data[position:]  # unterminated: content so far, whatever comes next
    out += tail[1:] if tail.startswith(b".") else tail
    return bytes(out), None, bare


@pytest.mark.parametrize("data, content, leftover", [
    (b".\r\n", b"", b""),
    (b"a\r\n.\r\nQUIT\r\n", b"a\r\n", b"QUIT\r\n"),
    (b"..\r\n.\r\n", b".\r\n", b""),
    (b"a\r\n..b\r\n...\r\n.\r\n", b"a\r\n.b\r\n..\r\n", b""),
    (b"a\r\n. \r\n.\r\n", b"a\r\n \r\n", b""),
])
def test_end_and_unstuffing(data, content, leftover):
    for cuts in ([], list(range(len(data)))):
        assert decode(data, cuts)[:2] == (content, leftover)


@pytest.mark.parametrize("form", [b"\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\r.\n"])
def test_smuggling_forms_do_not_end_the_message(form):
    smuggled = b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n"
    data = b"Subject: real\r\n\r\nbody" + form + smuggled + b".\r\nQUIT\r\n"
    for cuts in ([], list(range(len(data)))):
        content, leftover, _ = decode(data, cuts)
        assert leftover == b"QUIT\r\n"
        assert b"MAIL FROM:<evil@x>" in content


def test_smuggling_through_the_whole_machine():
    """Naive end detection would queue two messages here; roost queues one."""
    d = Driver().feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
                      b"body\n.\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n", step=1)
    assert len(d.messages) == 1
    assert d.replies()[-2:] == ["250 2.0.0 Ok: queued as QID", "221 2.0.0 Bye"]
    assert b"MAIL FROM:<e@f>" in d.messages[0]


def test_bare_lf_is_normalized_and_flagged():
    content, leftover, bare = decode(b"a\nb\r\n.c\r\n.\r\n")
    assert content == b"a\r\nb\r\nc\r\n" and leftover == b"" and bare
    content, leftover, bare = decode(b"a\r\nb\r\n.\r\n")
    assert not bare


def test_bare_cr_is_content():
    assert decode(b"a\rb\r\n.\r\n")[:2] == (b"a\rb\r\n", b"")


def test_reject_mode_reply_after_end_of_data():
    from roost.proto.smtp import events as E
    d = Driver(bare_newline="reject").feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\na\nb\r\n.\r\n")
    end = [e for e in d.events if isinstance(e, E.DataEnd)]
    assert end and end[0].bare_newline


def test_command_with_bare_lf_in_reject_mode_disconnects():
    d = Driver(bare_newline="reject").feed(b"NOOP\n")
    assert d.replies() == ["550 5.5.2 mx.test Error: bare <LF> received"]
    assert d.machine.closed


def test_held_back_bytes_are_bounded():
    decoder = DataDecoder()
    total = 0
    for _ in range(100):
        content, leftover = decoder.feed(b"x" * 998 + b"\r\n")
        total += len(content)
        assert leftover is None
    assert total >= 100 * 1000 - 4


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"..", b"a", b"\r\n.\r\n", b"x.y"]), max_size=40),
       st.lists(st.integers(0, 200), max_size=10))
def test_matches_line_by_line_reference(tokens, cuts):
    data = b"".join(tokens)
    expected_content, expected_rest, expected_bare = reference(data)
    content, rest, bare = decode(data, cuts)
    if expected_rest is not None:
        assert (content, rest) == (expected_content, expected_rest)
        assert bare == expected_bare
    else:
        assert rest is None
        assert expected_content.startswith(content)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"..", b"a", b"\r\r\n", b"\r\n.\r\n"]), max_size=40),
       st.lists(st.integers(0, 200), max_size=6))
def test_crlf_only_flag_tells_the_truth(tokens, cuts):
    """DataContent.crlf_only / DataDecoder.crlf_only: set exactly when every CR of the piece
    just returned is followed by an LF in that piece (so deleting CRs = CRLF -> LF)."""
    data = b"".join(tokens)
    decoder = DataDecoder()
    points = sorted({c for c in cuts if 0 < c < len(data)})
    for start, end in zip([0, *points], [*points, len(data)]):
        content, leftover = decoder.feed(data[start:end])
        if content:
            paired = content.count(b"\r") == content.count(b"\r\n")
            assert decoder.crlf_only == paired, content
            if decoder.crlf_only:
                assert content.translate(None, b"\r") == content.replace(b"\r\n", b"\n")
        if leftover is not None:
            break


def test_machine_passes_the_flag_on():
    from roost.proto.smtp import events as E
    from roost.proto.smtp.machine import MachineSettings, SmtpServerMachine
    from roost.proto.smtp import reply as R
    machine = SmtpServerMachine(MachineSettings())
    machine.receive(b"HELO c\r\n")
    machine.reply(machine.helo_reply(machine.next_event()))
    for line, answer in ((b"MAIL FROM:<a@b>\r\n", R.MAIL_OK), (b"RCPT TO:<c@d>\r\n", R.RCPT_OK),
                         (b"DATA\r\n", R.START_DATA)):
        machine.receive(line)
        assert machine.next_event() is not None
        machine.reply(answer)
    pieces = []
    machine.receive(b"Subject: x\r\n\r\nclean\r\n")
    pieces.append(machine.next_event())
    machine.receive(b"bare\rcr\r\n.\r\n")
    pieces.append(machine.next_event())
    assert [type(p) for p in pieces] == [E.DataContent, E.DataContent]
    assert [p.crlf_only for p in pieces] == [True, False]


class CountingDecoder:
    """The decoder before its regex fast path (count/replace on every piece), kept as the
    reference the fast path must match byte for byte, flag for flag."""

    def __init__(self) -> None:
        self._pending = b""
        self._at_line_start = self._after_crlf = True
        self.size, self.bare_newline_seen, self.done, self.crlf_only = 0, False, False, False

    def feed(self, data: bytes):
        buf = self._pending + data if self._pending else bytes(data)
        self._pending = b""
        if self._after_crlf:
            if buf[:3] == b".\r\n":
                self.done = True
                return b"", buf[3:]
            if len(buf) < 3 and b".\r\n".startswith(buf):
                self._pending = buf
                return b"", None
        end = buf.find(b"\r\n.\r\n")
        if end >= 0:
            self.done = True
            return self._content(buf[:end + 2]), buf[end + 5:]
        cut = max(len(buf) - 4, 0)
        if cut and buf[cut - 1] == 0x0D:
            cut -= 1
        self._pending = buf[cut:]
        return self._content(buf[:cut]), None

    def _content(self, raw: bytes) -> bytes:
        if not raw:
            return b""
        piece = raw[1:] if self._at_line_start and raw[0] == 0x2E else raw
        if b"\n." in piece:
            piece = piece.replace(b"\n.", b"\n")
        newlines = piece.count(b"\n")
        if newlines and newlines != piece.count(b"\r\n"):
            self.bare_newline_seen = True
            piece = piece.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.crlf_only = piece.count(b"\r") == newlines
        self._at_line_start = raw[-1] == 0x0A
        self._after_crlf = raw[-2:] == b"\r\n"
        self.size += len(piece)
        return piece


def _same_as_counting_decoder(data: bytes, cuts) -> None:
    fast, slow = DataDecoder(), CountingDecoder()
    points = sorted({c for c in cuts if 0 < c < len(data)})
    for start, end in zip([0, *points], [*points, len(data)]):
        got, want = fast.feed(data[start:end]), slow.feed(data[start:end])
        assert got == want, (data, start, end)
        assert got[0].count(b"\n") == got[0].count(b"\r\n")  # every LF ends a CRLF (documented)
        state = ("crlf_only", "bare_newline_seen", "size", "done")
        assert [getattr(fast, n) for n in state] == [getattr(slow, n) for n in state], (data, start, end)
        if want[1] is not None:
            return


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b".", b"..", b"a", b"\r\n.\r\n", b"\r\n.", b"\n.",
                                 b".\r\n", b"\r\r\n", b"x" * 40 + b"\r\n"]), max_size=60),
       st.lists(st.integers(0, 600), max_size=8))
def test_fast_path_matches_counting_decoder(tokens, cuts):
    _same_as_counting_decoder(b"".join(tokens), cuts)


@pytest.mark.parametrize("odd", [b"", b".", b"\n", b"\r", b"\n.", b"\r\n.", b"x\ny", b"x\ry", b".\n", b"\r\n..\r\n",
                                 b"\r\n.\r\n", b"\r\n.\r\nQUIT\r\n"])
def test_fast_path_large_pieces(odd):
    """Mostly clean CRLF text (the fast path) with one odd sequence at every kind of place:
    start, middle, around the held-back tail, across feed boundaries."""
    body = b"La de da de da 1.\r\n" * 200
    for where in (0, 1, 17, 18, 19, 20, len(body) // 2, len(body) - 5, len(body) - 2, len(body)):
        data = body[:where] + odd + body[where:] + b".\r\n"
        for cuts in ([], [where], [where - 1, where + 1], [where + 2], [len(data) - 3], [len(data) - 6],
                     list(range(where - 3, where + 4))):
            _same_as_counting_decoder(data, cuts)
