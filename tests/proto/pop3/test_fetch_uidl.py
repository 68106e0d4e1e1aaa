"""RETR/TOP byte-stuffing (RFC 1939 §3) and pop3_uidl_format expansion."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from roost.proto.pop3.fetch import TERMINATOR, DotStuffer, stuff_whole
from roost.proto.pop3.uidl import DEFAULT_FORMAT, UidlValues, check_format, expand


def unstuff(response: bytes) -> bytes:
    """What a client reassembles (poplib's rule)."""
    assert response.endswith(b"\r\n.\r\n") or response == b"\r\n.\r\n"
    lines = response[:-3].split(b"\r\n")[:-1]
    return b"".join((line[1:] if line.startswith(b"..") else line) + b"\r\n" for line in lines)


def test_examples():
    assert stuff_whole(b"a\n.b\n.\n") == b"a\r\n..b\r\n..\r\n.\r\n"
    assert stuff_whole(b".first\r\n") == b"..first\r\n.\r\n"
    assert stuff_whole(b"no end") == b"no end\r\n.\r\n"
    assert stuff_whole(b"") == b"\r\n.\r\n"
    assert stuff_whole(b"H: 1\n\nb1\nb2\nb3\n", 2) == b"H: 1\r\n\r\nb1\r\nb2\r\n.\r\n"
    assert stuff_whole(b"H: 1\n\nb1\n", 0) == b"H: 1\r\n\r\n.\r\n"
    assert stuff_whole(b"H: 1\nH: 2\n", 5) == b"H: 1\r\nH: 2\r\n.\r\n"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"x\n.\n"]),
                max_size=60), st.lists(st.integers(1, 7), max_size=30),
       st.one_of(st.none(), st.integers(0, 5)))
def test_any_chunking(parts, cuts, body_lines):
    message = b"".join(parts)
    whole = stuff_whole(message, body_lines)
    stuffer = DotStuffer(body_lines)
    out = b""
    position = 0
    for cut in cuts + [len(message)]:
        out += stuffer.feed(message[position:position + cut])
        position += cut
    out += stuffer.finish() + TERMINATOR
    assert out == whole
    if b"\n" not in message.replace(b"\r\n", b""):  # CRLF input may skip the LF pass
        trusting = DotStuffer(body_lines, crlf_input=True)
        assert trusting.feed(message) + trusting.finish() + TERMINATOR == whole
    # never an early terminator; RETR gives the message back (bare LF as CRLF)
    assert b"\r\n.\r\n" not in whole[:-5] or whole.count(b"\r\n.\r\n") == 1
    if body_lines is None and b"\r" not in message:
        assert unstuff(whole) == (message if message.endswith(b"\n") or not message
                                  else message + b"\n").replace(b"\n", b"\r\n") or not message


def test_uidl_format():
    assert expand(DEFAULT_FORMAT, UidlValues(1, 0x6B04B944, "g")) == "000000016b04b944"
    assert expand("%u.%v", UidlValues(7, 99, "g")) == "7.99"
    assert expand("%g-%Lg", UidlValues(1, 2, "AbC")) == "AbC-abc"
    assert check_format("%{uid}") == "Unknown pop3_uidl_format variable: %{"
    assert check_format(DEFAULT_FORMAT) is None
    assert "not supported" in check_format("%m")
    assert check_format("static") is not None
    assert expand("%8u", UidlValues(5, 1, "g")) == "???????5"  # RFC 1939: 0x21..0x7E only
