"""roost.proto.dovecot_auth: the auth protocol machine, byte-at-a-time and under garbage.

The wire format itself is compared with Debian's Dovecot in test_dovecot_auth_differential.py;
here: framing, handshake state, escaping, limits, and that no input makes it raise.
"""

from __future__ import annotations

import base64

from hypothesis import given, settings, strategies as st

from roost.proto.dovecot_auth import (MAX_LINE_LENGTH, AuthRequest, AuthServerProtocol,
                                      ClientHandshake, ContinueRequest, ProtocolError,
                                      decode_base64, escape, unescape)

HELLO = b"VERSION\t1\t2\nCPID\t4242\n"
PLAIN = base64.b64encode(b"\0alice\0pw")


def machine() -> AuthServerProtocol:
    return AuthServerProtocol(["PLAIN", "login"], server_pid=77, connection_id=3,
                              cookie="c" * 32)


def feed_all(data: bytes) -> list:
    return machine().receive(data)


def feed_bytewise(data: bytes) -> list:
    proto = machine()
    events = []
    for index in range(len(data)):
        events.extend(proto.receive(data[index:index + 1]))
    return events


def test_handshake_lines():
    assert machine().handshake() == (b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\n"
                                     b"MECH\tLOGIN\tplaintext\nSPID\t77\nCUID\t3\n"
                                     b"COOKIE\t" + b"c" * 32 + b"\nDONE\n")


def test_requests_bytewise_equal_whole():
    data = (HELLO + b"AUTH\t1\tplain\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.2\t"
            b"secured\tresp=" + PLAIN + b"\r\nCONT\t1\tYWxpY2U=\n")
    whole = feed_all(data)
    assert whole == feed_bytewise(data)
    assert whole == [
        ClientHandshake(2, "4242"),
        AuthRequest(1, "PLAIN", "smtp", {"service": "smtp", "lip": "127.0.0.1",
                                         "rip": "127.0.0.2"},
                    frozenset({"nologin", "secured"}), PLAIN.decode()),
        ContinueRequest(1, "YWxpY2U="),
    ]
    request = whole[1]
    assert request.secured and request.remote_ip == "127.0.0.2" and request.local_ip == "127.0.0.1"


def test_escaped_parameters_are_unescaped():
    [_hello, request] = feed_all(HELLO + b"AUTH\t5\tLOGIN\tservice=sm\x01ttp\tfoo=a\x011b\n")
    assert request.service == "sm\ttp" and request.params["foo"] == "a\x01b"
    assert request.initial_response is None and not request.secured


def test_answers_escape_values():
    proto = machine()
    assert proto.ok(4, "al\tice") == b"OK\t4\tuser=al\x01tice\n"
    assert proto.fail(4, user="a\nb\x01") == b"FAIL\t4\tuser=a\x01nb\x011\n"
    assert proto.fail(9, code="invalid_base64", reason="x") == \
        b"FAIL\t9\tcode=invalid_base64\treason=x\n"
    assert proto.fail(2) == b"FAIL\t2\n"
    assert proto.cont(3, b"Username:") == b"CONT\t3\tVXNlcm5hbWU6\n"


def errors(data: bytes) -> list[str]:
    return [event.reason for event in feed_all(data) if isinstance(event, ProtocolError)]


def test_protocol_errors_close():
    assert errors(b"CPID\t1\n") == ["Authentication client sent invalid VERSION line: CPID?1"]
    assert errors(b"VERSION\t2\t0\n") == [
        "Authentication client not compatible with this server (mixed old and new binaries?)"]
    assert errors(b"VERSION\t1\t2\nAUTH\t1\tPLAIN\tservice=smtp\n") == [
        "BUG: Authentication client sent unknown handshake command: AUTH?1?PLAIN?service=smtp"]
    assert errors(HELLO + b"HELLO\tx\n") == [
        "BUG: Authentication client sent unknown command: HELLO?x"]
    assert errors(HELLO + b"\n") == ["BUG: Authentication client sent unknown command: "]
    assert errors(HELLO + b"AUTH\t1\tFOO\tservice=smtp\n") == [
        "BUG: Authentication client 4242 requested unsupported authentication mechanism FOO"]
    assert errors(HELLO + b"AUTH\t1\tPLAIN\n") == [
        "BUG: Authentication client 4242 didn't specify service in request"]
    for bad_id in (b"0", b"x", b"-1", b"4294967296", b"\xd9\xa1"):
        assert errors(HELLO + b"AUTH\t" + bad_id + b"\tPLAIN\tservice=smtp\n") == [
            "BUG: Authentication client 4242 sent broken AUTH request"]
    assert errors(HELLO + b"AUTH\t7\tLOGIN\tservice=smtp\nAUTH\t7\tLOGIN\tservice=smtp\n") == [
        "BUG: Authentication client 4242 sent a duplicate ID 7"]
    assert errors(HELLO + b"CONT\t7\n") == [
        "BUG: Authentication client 4242 sent broken CONT request"]


def test_after_an_error_input_is_ignored():
    proto = machine()
    assert isinstance(proto.receive(b"garbage\n")[0], ProtocolError)
    assert proto.closed and proto.receive(HELLO) == []


def test_id_reusable_after_answer():
    proto = machine()
    proto.receive(HELLO + b"AUTH\t7\tLOGIN\tservice=smtp\n")
    proto.fail(7)
    [again] = proto.receive(b"AUTH\t7\tLOGIN\tservice=smtp\n")
    assert isinstance(again, AuthRequest)


def test_line_length_limit():
    fits = HELLO + b"AUTH\t1\tPLAIN\tservice=smtp\tresp=" + b"A" * (MAX_LINE_LENGTH - 40) + b"\n"
    assert [type(e) for e in feed_all(fits)] == [ClientHandshake, AuthRequest]
    long_line = HELLO + b"AUTH\t1\tPLAIN\tservice=smtp\tresp=" + b"A" * MAX_LINE_LENGTH + b"\n"
    expected = ["Auth client 3 sent us more than 16384 bytes"]
    assert errors(long_line) == expected
    proto = machine()
    proto.receive(HELLO)
    # Without a newline the buffer still never grows past the limit.
    events = []
    for _ in range(MAX_LINE_LENGTH // 1000 + 2):
        events += proto.receive(b"B" * 1000)
        assert len(proto.buffer) <= MAX_LINE_LENGTH
    assert [e.reason for e in events] == expected


def test_decode_base64():
    assert decode_base64("YWxpY2U=") == b"alice"
    assert decode_base64("") == b""
    for bad in ("!!!", "YWxpY2U", "*", "\u00e9"):
        assert decode_base64(bad) is None


@given(st.text())
@settings(max_examples=300, deadline=None)
def test_escape_round_trip(text):
    escaped = escape(text)
    assert "\t" not in escaped and "\n" not in escaped and "\r" not in escaped
    assert unescape(escaped) == text


chunks = st.lists(st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"\n", b"\t", b"\x01", b"\r\n", b"\0", HELLO, b"AUTH\t1\tPLAIN\tservice=x\n",
                     b"CONT\t1\tYQ==\n", b"VERSION\t1\t", b"A" * 5000])), max_size=30)


@given(chunks)
@settings(max_examples=300, deadline=None)
def test_garbage_gives_events_or_protocol_error(parts):
    proto = machine()
    events = []
    for part in parts:
        events.extend(proto.receive(part))
        assert len(proto.buffer) < MAX_LINE_LENGTH
    kinds = (ClientHandshake, AuthRequest, ContinueRequest, ProtocolError)
    assert all(isinstance(event, kinds) for event in events)
    assert sum(isinstance(event, ProtocolError) for event in events) <= 1
    if events and isinstance(events[-1], ProtocolError):
        assert proto.closed
    whole = machine().receive(b"".join(parts))
    assert whole == events  # framing does not depend on how the bytes were split
    for event in events:
        if isinstance(event, AuthRequest):
            answer = proto.ok(event.request_id, event.service) + proto.fail(
                event.request_id, user=event.params.get("rip", ""), reason=event.mechanism)
            assert answer.count(b"\n") == 2
