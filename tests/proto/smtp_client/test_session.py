"""The sans-IO SMTP/LMTP client: scripted servers, byte-at-a-time feeding, fuzzing."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings, strategies as st

from roost.proto.smtp_client import (ClientSession, DataEncoder, Envelope, NeedContent, NeedTls,
                                     RcptSpec, ReplyParser, SessionOptions, encode_all, xtext)

MESSAGE = b"Subject: hi\r\n\r\n.dot line\r\nbody\r\n"


def envelope(*rcpts: str, **kw) -> Envelope:
    return Envelope(sender=kw.pop("sender", "a@example.org"),
                    recipients=tuple(RcptSpec(r) if isinstance(r, str) else r for r in rcpts), **kw)


def options(**kw) -> SessionOptions:
    return SessionOptions(peer=kw.pop("peer", "mx.test[127.0.0.1]"), helo_name="client.test", **kw)


class Server:
    """Answers each client command from a table; records what the client sent."""

    def __init__(self, answers: dict[str, list[bytes] | bytes], greeting=b"220 mx.test ESMTP\r\n"):
        self.answers = {k: list(v) if isinstance(v, list) else [v] for k, v in answers.items()}
        self.greeting = greeting
        self.commands: list[str] = []
        self.data = b""
        self.in_data = False

    def answer(self, line: bytes) -> bytes:
        if self.in_data:
            self.data += line
            if line == b".\r\n":
                self.in_data = False
                return self._pop("DOT")
            return b""
        text = line.decode().rstrip("\r\n")
        self.commands.append(text)
        verb = text.split(":")[0].split(" ")[0].upper()
        if verb == "MAIL":
            verb = "MAIL FROM"
        elif verb == "RCPT":
            verb = "RCPT TO"
        reply = self._pop(verb)
        if verb == "DATA" and reply.startswith(b"354"):
            self.in_data = True
        return reply

    def _pop(self, verb: str) -> bytes:
        queue = self.answers.get(verb)
        if not queue:
            return {"EHLO": b"250-mx.test\r\n250 PIPELINING\r\n", "LHLO": b"250-mx.test\r\n250 PIPELINING\r\n",
                    "HELO": b"250 mx.test\r\n", "MAIL FROM": b"250 2.1.0 Ok\r\n",
                    "RCPT TO": b"250 2.1.5 Ok\r\n", "DATA": b"354 End data\r\n",
                    "DOT": b"250 2.0.0 Ok: queued as ABC\r\n", "QUIT": b"221 2.0.0 Bye\r\n",
                    "RSET": b"250 Ok\r\n"}.get(verb, b"502 5.5.2 Error\r\n")
        return queue.pop(0) if len(queue) > 1 else queue[0]


FEED = {"byte_at_a_time": False}


@pytest.fixture(autouse=True, params=["whole", "byte-at-a-time"])
def feed_mode(request):
    """Every scripted conversation runs twice: replies in whole writes and one byte at a time."""
    FEED["byte_at_a_time"] = request.param == "byte-at-a-time"
    yield
    FEED["byte_at_a_time"] = False


def run(session: ClientSession, server: Server, *, byte_at_a_time=None, content=MESSAGE, tls=True):
    if byte_at_a_time is None:
        byte_at_a_time = FEED["byte_at_a_time"]
    def feed(data: bytes):
        if byte_at_a_time:
            for i in range(len(data)):
                session.receive(data[i:i + 1])
        else:
            session.receive(data)

    feed(server.greeting)
    for _ in range(200):
        out = session.data_to_send()
        replies = b""
        buffer = out
        while buffer:
            end = buffer.find(b"\n")
            line, buffer = buffer[:end + 1], buffer[end + 1:]
            replies += server.answer(line)
        event = session.next_event()
        while event is not None:
            if isinstance(event, NeedContent):
                for i in range(0, len(content), 7):
                    session.send_content(content[i:i + 7])
                session.end_content()
            elif isinstance(event, NeedTls):
                session.tls_started() if tls else session.tls_failed("no")
            event = session.next_event()
        if replies:
            feed(replies)
        elif not out and not session._out:
            if session.closed or not session.expecting_reply:
                break
            session.receive_eof()
            break
    return session


def test_plain_delivery_byte_at_a_time():
    server = Server({})
    session = run(ClientSession(envelope("b@x.test", "c@x.test"), options()), server, byte_at_a_time=True)
    assert [o.status for o in session.outcomes.values()] == ["sent", "sent"]
    assert session.outcomes[0].text == "250 2.0.0 Ok: queued as ABC"
    assert server.commands == ["EHLO client.test", "MAIL FROM:<a@example.org>", "RCPT TO:<b@x.test>",
                               "RCPT TO:<c@x.test>", "DATA", "QUIT"]
    assert server.data == b"Subject: hi\r\n\r\n..dot line\r\nbody\r\n.\r\n"


def test_per_recipient_replies_and_texts():
    server = Server({"RCPT TO": [b"250 2.1.5 Ok\r\n", b"550 5.1.1 <c@x.test>: Recipient address rejected: no\r\n",
                                 b"450 4.2.0 <d@x.test>: greylisted\r\n"]})
    session = run(ClientSession(envelope("b@x.test", "c@x.test", "d@x.test"), options()), server)
    out = session.outcomes
    assert (out[0].status, out[1].status, out[2].status) == ("sent", "bounced", "deferred")
    assert out[1].dsn == "5.1.1"
    assert out[1].text == ("host mx.test[127.0.0.1] said: 550 5.1.1 <c@x.test>: Recipient address "
                           "rejected: no (in reply to RCPT TO command)")
    assert out[2].retry_elsewhere and not out[1].retry_elsewhere


def test_ehlo_rejected_falls_back_to_helo_without_pipelining():
    server = Server({"EHLO": b"502 5.5.2 what\r\n"})
    session = run(ClientSession(envelope("b@x.test"), options()), server)
    assert session.outcomes[0].status == "sent"
    assert server.commands[:4] == ["EHLO client.test", "HELO client.test", "MAIL FROM:<a@example.org>",
                                   "RCPT TO:<b@x.test>"]


def test_lmtp_per_recipient_data_replies():
    server = Server({"DOT": b"250 2.0.0 <b@x.test> Saved\r\n452 4.2.2 <c@x.test> Quota exceeded\r\n"})
    session = run(ClientSession(envelope("b@x.test", "c@x.test"), options(lmtp=True)), server)
    assert server.commands[0] == "LHLO client.test"
    assert session.outcomes[0].status == "sent"
    assert session.outcomes[1].status == "deferred"
    assert session.outcomes[1].text.endswith("(in reply to end of DATA command)")


def test_multiline_reply_and_greeting_refusal():
    server = Server({}, greeting=b"554-mx.test no\r\n554 5.7.1 go away\r\n")
    session = run(ClientSession(envelope("b@x.test"), options()), server)
    assert session.outcomes[0].status == "deferred"
    assert session.outcomes[0].text == "host mx.test[127.0.0.1] refused to talk to me: 554-mx.test no 554 5.7.1 go away"


def test_size_dsn_and_8bitmime_parameters():
    ehlo = b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-DSN\r\n250 8BITMIME\r\n"
    server = Server({"EHLO": ehlo})
    env = envelope(RcptSpec("b@x.test", "SUCCESS,FAILURE", "rfc822;B+1=@x.test"), size=100, body="8BITMIME",
                   ret="HDRS", envid="id 1")
    run(ClientSession(env, options()), server)
    assert server.commands[1] == "MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=id+201"
    assert server.commands[2] == "RCPT TO:<b@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2B1+3D@x.test"
    big = run(ClientSession(envelope("b@x.test", size=5000), options()), Server({"EHLO": ehlo}))
    assert big.outcomes[0].status == "bounced" and big.outcomes[0].dsn == "5.3.4"


def test_starttls_required_and_offered():
    plain = run(ClientSession(envelope("b@x.test"), options(tls_level="encrypt")), Server({}))
    assert plain.outcomes[0].dsn == "4.7.4"
    assert plain.outcomes[0].text == "TLS is required, but was not offered by host mx.test[127.0.0.1]"
    server = Server({"EHLO": b"250-mx.test\r\n250 STARTTLS\r\n", "STARTTLS": b"220 2.0.0 go\r\n"})
    done = run(ClientSession(envelope("b@x.test"), options(tls_level="encrypt")), server)
    assert done.tls_active and done.outcomes[0].status == "sent"
    assert server.commands[:3] == ["EHLO client.test", "STARTTLS", "EHLO client.test"]


def test_auth_cram_md5_and_failure():
    challenge = base64.b64encode(b"<1.2@mx>").decode()
    server = Server({"EHLO": b"250-mx.test\r\n250 AUTH PLAIN CRAM-MD5\r\n",
                     "AUTH": f"334 {challenge}\r\n".encode()})
    server.answers["DEFAULT"] = []
    session = ClientSession(envelope("b@x.test"), options(auth=("u", "pw")))
    run(session, _AuthServer(server))
    expected = base64.b64encode(b"u " + hmac.new(b"pw", b"<1.2@mx>", hashlib.md5).hexdigest().encode()).decode()
    assert expected in server.commands
    assert session.outcomes[0].status == "sent"
    refused = Server({"EHLO": b"250-mx.test\r\n250 AUTH PLAIN\r\n", "AUTH": b"535 5.7.8 bad\r\n"})
    noplain = run(ClientSession(envelope("b@x.test"), options(auth=("u", "pw"))), refused)
    assert "no mechanism available" in noplain.outcomes[0].text
    plain = run(ClientSession(envelope("b@x.test"), options(auth=("u", "pw"), security_options=())), refused)
    assert plain.outcomes[0].status == "deferred" and plain.outcomes[0].dsn == "4.7.8"
    assert "AUTH PLAIN " + base64.b64encode(b"\0u\0pw").decode() in refused.commands


class _AuthServer(Server):
    def __init__(self, inner: Server):
        self.__dict__ = inner.__dict__
        self._step = 0

    def answer(self, line: bytes) -> bytes:
        if self.commands and self.commands[-1].startswith("AUTH") and self._step == 0:
            self._step = 1
            self.commands.append(line.decode().strip())
            return b"235 2.7.0 ok\r\n"
        return Server.answer(self, line)


def test_lost_connection_and_timeout_texts():
    session = ClientSession(envelope("b@x.test"), options())
    session.receive(b"220 hi\r\n")
    session.receive_eof()
    assert session.outcomes[0].text == "lost connection with mx.test[127.0.0.1] while performing the EHLO handshake"
    session = ClientSession(envelope("b@x.test"), options())
    session.timed_out()
    assert session.outcomes[0].text == ("conversation with mx.test[127.0.0.1] timed out while receiving "
                                        "the initial server greeting")


def test_reply_parser_limits():
    parser = ReplyParser()
    assert parser.feed(b"250-a\r\n") == []
    assert parser.feed(b"251 b\r\n") == [] and "changed" in parser.error
    long = ReplyParser()
    long.feed(b"250 " + b"x" * 5000)
    assert long.error == "server reply line too long"
    many = ReplyParser()
    many.feed(b"250-x\r\n" * 300)
    assert many.error == "server reply has too many lines"
    wrong = ReplyParser().feed(b"250 5.0.0 nope\r\n")[0]
    assert wrong.enhanced is None and wrong.dsn == "2.0.0"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=20))
def test_fuzzed_server_never_raises(garbage, step):
    session = ClientSession(envelope("b@x.test", "c@x.test"), options(lmtp=bool(step % 2)))
    for i in range(0, len(garbage), step):
        session.receive(garbage[i:i + step])
        session.data_to_send()
        if isinstance(session.next_event(), NeedContent):
            session.send_content(MESSAGE)
            session.end_content()
    session.receive_eof()
    assert set(session.outcomes) == {0, 1}
    assert all(o.status in ("sent", "deferred", "bounced") and o.dsn[0] in "245" for o in session.outcomes.values())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.lists(st.integers(min_value=1, max_value=50), max_size=10))
def test_data_encoder_chunking_invariant(content, cuts):
    encoder = DataEncoder()
    out, position = b"", 0
    for cut in sorted(cuts):
        out += encoder.encode(content[position:cut])
        position = max(position, cut)
    out += encoder.encode(content[position:]) + encoder.finish()
    assert out == encode_all(content)
    assert out.endswith(b"\r\n.\r\n") or out == b".\r\n"
    assert b"\r\n.\r\n" not in out[:-3]           # no early end of data
    assert b"\n" not in out.replace(b"\r\n", b"")   # no bare LF reaches the wire


def test_data_encoder_stuffing_and_bare_lf():
    assert encode_all(b".a\n.b\r\nc") == b"..a\r\n..b\r\nc\r\n.\r\n"
    assert encode_all(b"") == b".\r\n"
    assert xtext("a+b=c d") == "a+2Bb+3Dc+20d"


FRAGMENTS = [b"220 ok\r\n", b"250 ok\r\n", b"250-a\r\n", b"250 PIPELINING\r\n", b"250-STARTTLS\r\n",
             b"250 2.1.5 fine\r\n", b"354 go\r\n", b"451 4.3.0 later\r\n", b"550 5.1.1 no\r\n",
             b"221 bye\r\n", b"334 VXNlcm5hbWU6\r\n", b"235 2.7.0 ok\r\n", b"250-SIZE 10\r\n",
             b"999 what\r\n", b"25", b"\r\n", b"\n", b"250-AUTH PLAIN LOGIN\r\n", b"\xff\x00\r\n"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30), st.booleans(), st.booleans())
def test_fuzzed_plausible_replies_reach_every_state(pieces, lmtp, tls):
    session = ClientSession(envelope("b@x.test", "c@x.test", size=50),
                            options(lmtp=lmtp, tls_level="may" if tls else "none", auth=("u", "p"),
                                    security_options=()))
    for piece in pieces:
        session.receive(piece)
        session.data_to_send()
        event = session.next_event()
        if isinstance(event, NeedContent):
            session.send_content(MESSAGE)
            session.end_content()
        elif isinstance(event, NeedTls):
            session.tls_started()
    session.timed_out()
    assert set(session.outcomes) == {0, 1}
    assert all(o.dsn[0] in "245" and o.text for o in session.outcomes.values())


def test_keep_alive_ends_with_rset_and_resume_starts_at_mail():
    from roost.proto.smtp_client import ResumeState
    server = Server({})
    first = run(ClientSession(envelope("b@x.test"), options(), keep_alive=True), server)
    assert server.commands[-1] == "RSET" and first.reusable and first.outcomes[0].status == "sent"
    state = first.resume_state()
    assert "PIPELINING" in state.extensions
    resumed = ClientSession(envelope("c@x.test"), options(), resume=ResumeState(state.extensions, False, False),
                            keep_alive=True)
    assert resumed.data_to_send() == b"MAIL FROM:<a@example.org>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"
    refused = run(ClientSession(envelope("b@x.test"), options(), keep_alive=True), Server({"RSET": b"500 no\r\n"}))
    assert not refused.reusable


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=300), max_size=8),
       st.integers(min_value=5, max_value=40))
def test_line_limit_folding_is_chunking_invariant_and_bounded(content, cuts, limit):
    encoder = DataEncoder(limit)
    out, position = b"", 0
    for cut in sorted(cuts):
        out += encoder.encode(content[position:cut])
        position = max(position, cut)
    out += encoder.encode(content[position:]) + encoder.finish()
    assert out == encode_all(content, limit)
    for line in out.split(b"\r\n"):
        assert len(line) <= limit + 1        # + the stuffed dot
    unfolded = out.replace(b"\r\n ", b"")
    assert unfolded == encode_all(content) or b"\r\n " in encode_all(content)


def test_long_line_is_broken_with_crlf_space():
    assert encode_all(b"a" * 10 + b"\r\nbb\r\n", 4) == b"aaaa\r\n aaa\r\n aaa\r\nbb\r\n.\r\n"
