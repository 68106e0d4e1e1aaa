"""roost.proto.pop3 fed one byte at a time and fuzzed: garbage gives -ERR replies, never an
exception; limits hold; the same bytes in any chunking give the same events."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from roost.proto.pop3 import authorization as authz
from roost.proto.pop3.lines import (LOGIN_ARGS_MAX, LOGIN_LINE_MAX, SESSION_LINE_MAX,
                                    LineReader, Overflow, split_command)
from roost.proto.pop3.transaction import Close, Fetch, Listed, Quit, Send, Transaction

SETTINGS = settings(max_examples=200, deadline=None)


def lines_of(data: bytes, chunks: list[int], limit: int = SESSION_LINE_MAX, **kwargs):
    reader = LineReader(limit, **kwargs)
    out = []
    position = 0
    for size in chunks + [len(data)]:
        reader.feed(data[position:position + size])
        position += size
        while (line := reader.next_line()) is not None:
            out.append(line)
            if isinstance(line, Overflow):
                return out
    return out


def test_one_byte_at_a_time_equals_whole():
    data = b"USER alice\r\nPASS pw\r\nNOOP\r\r\nlist\tx\r\nNO\x00OP\r\n\r\nLAST\n"
    whole = lines_of(data, [])
    assert whole == [b"USER alice", b"PASS pw", b"NOOP\r", b"list\tx", b"NO", b"", b"LAST"]
    assert lines_of(data, [1] * len(data)) == whole


def test_limits():
    assert lines_of(b"N" * (SESSION_LINE_MAX - 2) + b"\r\n", []) == [b"N" * (SESSION_LINE_MAX - 2)]
    assert lines_of(b"N" * (SESSION_LINE_MAX - 1) + b"\r\n", []) == [Overflow(SESSION_LINE_MAX)]
    # no LF at all: overflow as soon as the limit is reached, without buffering more
    reader = LineReader(LOGIN_LINE_MAX)
    for _ in range(LOGIN_LINE_MAX):
        reader.feed(b"A")
    assert reader.next_line() == Overflow(LOGIN_LINE_MAX)
    reader.feed(b"B" * 100000)
    assert reader.pending == 0 and reader.next_line() == Overflow(LOGIN_LINE_MAX)
    # pop3-login: arguments longer than 1024 octets are refused even in a shorter line
    args_ok = b"X " + b"A" * LOGIN_ARGS_MAX + b"\r\n"
    assert lines_of(args_ok, [], LOGIN_LINE_MAX, args_limit=LOGIN_ARGS_MAX)[0] != Overflow(1034)
    too_long = b"X " + b"A" * (LOGIN_ARGS_MAX + 1) + b"\r\n"
    assert isinstance(lines_of(too_long, [], LOGIN_LINE_MAX, args_limit=LOGIN_ARGS_MAX)[0],
                      Overflow)
    # AUTH lines get the SASL buffer
    auth = b"AUTH PLAIN " + b"A" * 5000 + b"\r\n"
    assert lines_of(auth, [], LOGIN_LINE_MAX, long_prefix=b"AUTH ", long_limit=8300) == \
        [auth[:-2]]


def test_split_command():
    assert split_command(b"list  1") == ("LIST", "1")
    assert split_command(b"list  1", skip_spaces=False) == ("LIST", " 1")
    assert split_command(b"\xffoo x") == ("\udcffOO", "x")


@SETTINGS
@given(st.binary(max_size=3000), st.lists(st.integers(1, 64), max_size=50))
def test_chunking_never_changes_lines(data, chunks):
    assert lines_of(data, chunks) == lines_of(data, [])


def _session() -> Transaction:
    return Transaction([Listed(100, "00000001aaaaaaaa"), Listed(200, "00000002aaaaaaaa", True),
                        Listed(0, "00000003aaaaaaaa")])


@SETTINGS
@given(st.lists(st.binary(max_size=40), max_size=40))
def test_transaction_garbage(lines):
    session = _session()
    for line in lines:
        line = line.split(b"\n")[0]
        event = session.command(line)
        assert isinstance(event, (Send, Fetch, Quit, Close))
        if isinstance(event, (Send, Close)):
            assert event.data.startswith((b"+OK", b"-ERR"))
            assert event.data.endswith(b"\r\n")
            first_line_end = event.data.index(b"\r\n")
            if event.data.startswith(b"-ERR"):
                assert first_line_end == len(event.data) - 2 or isinstance(event, Close)
        if isinstance(event, Fetch):
            assert 0 <= event.index < 3 and event.index not in session.deleted
        if isinstance(event, Close):
            break
    assert session.deleted <= {0, 1, 2}


@SETTINGS
@given(st.lists(st.binary(max_size=60), max_size=30), st.booleans(), st.booleans())
def test_authorization_garbage(lines, secured, tls_available):
    machine = authz.Authorization(authz.Policy(("PLAIN", "LOGIN"), secured, False,
                                               tls_available))
    for line in lines:
        line = line.split(b"\n")[0]
        if machine.in_sasl:
            answer = machine.sasl_response(line)
            assert isinstance(answer, (authz.SaslResponse, authz.SaslCancel,
                                       authz.SaslMalformed))
            machine.sasl_finished(None)
            continue
        event = machine.command(line)
        if isinstance(event, (authz.Send, authz.Close)):
            assert event.data.startswith((b"+OK", b"-ERR")) and event.data.endswith(b"\r\n")
        if isinstance(event, authz.PasswordLogin):
            assert secured, "a password was accepted on an insecure connection"
        if isinstance(event, authz.SaslBegin):
            assert secured and event.mechanism in ("PLAIN", "LOGIN")
        if isinstance(event, authz.Close):
            break
