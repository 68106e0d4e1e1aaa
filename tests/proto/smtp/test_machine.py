"""roost.proto.smtp.machine: sequence, replies, PIPELINING, BDAT, STARTTLS, AUTH, LMTP, limits.

Reply texts here are Postfix 3.7's (tests/net/test_smtpd_oracle.py asks a real Postfix for
the same inputs); every scenario also runs fed one byte at a time.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.smtp import events as E
from roost.proto.smtp import reply as R
from roost.proto.smtp.machine import MachineSettings, SmtpServerMachine
from tests.proto.smtp.driver import Driver

SEED_003 = (b"ehlo localhost\r\nmail from:root\r\nrcpt to:xxx.qq.com\r\ndata\r\n"
            b"welcome to unixmen mail server\r\n.\r\nquit\r\n")


def both_ways(data: bytes, **kwargs) -> Driver:
    whole = Driver(**kwargs).feed(data)
    single = Driver(**kwargs).feed(data, step=1)
    assert whole.replies() == single.replies()
    assert whole.messages == single.messages
    return whole


def test_seed_003_transcript():
    d = both_ways(SEED_003, message_size_limit=10240000)
    assert d.replies() == [
        "250-mx.test\n250-PIPELINING\n250-SIZE 10240000\n250-VRFY\n250-ETRN\n250-ENHANCEDSTATUSCODES\n"
        "250-8BITMIME\n250-DSN\n250-SMTPUTF8\n250 CHUNKING",
        "250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 Ok: queued as QID", "221 2.0.0 Bye"]
    assert d.messages == [b"welcome to unixmen mail server\r\n"]
    assert d.machine.stats == {"ehlo": [1, 1], "mail": [1, 1], "rcpt": [1, 1], "data": [1, 1], "quit": [1, 1]}
    assert d.machine.closed


@pytest.mark.parametrize("line, expected", [
    (b"HELP", "500 5.5.2 Error: command not recognized"),
    (b"FOO bar", "500 5.5.2 Error: command not recognized"),
    (b"", "500 5.5.2 Error: bad syntax"),
    (b"   ", "500 5.5.2 Error: bad syntax"),
    (b"NO\x00OP", "500 5.5.2 Error: command not recognized"),
    (b"MAIL FROM:<\xfcber@b>", "500 5.5.2 Error: bad UTF-8 syntax"),
    (b"HELO", "501 Syntax: HELO hostname"),
    (b"EHLO", "501 Syntax: EHLO hostname"),
    (b"MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    (b"MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address>"),
    (b"MAIL FROM:<a\"b@c>", "501 5.1.7 Bad sender address syntax"),
    (b"MAIL FROM:<a@b", "501 5.1.7 Bad sender address syntax"),
    (b"MAIL FROM:<a b@c>", "501 5.1.7 Bad sender address syntax"),
    (b"MAIL FROM:<a@b>SIZE=1", "501 5.1.7 Bad sender address syntax"),
    (b"MAIL FROM:<a@b> SIZE=99999999999", "552 5.3.4 Message size exceeds fixed limit"),
    (b"MAIL FROM:<a@b> SIZE=x", "501 5.5.4 Bad message size syntax"),
    (b"MAIL FROM:<a@b> BOGUS=1", "555 5.5.4 Unsupported option: BOGUS=1"),
    (b"MAIL FROM:<a@b> BODY=FOO", "555 5.5.4 Unsupported option: BODY=FOO"),
    (b"MAIL FROM:<a@b> RET=X", "501 5.5.4 Bad RET parameter syntax"),
    (b"MAIL FROM:<a@b> RET=HDRS RET=FULL", "501 5.5.4 Bad RET parameter syntax"),
    (b"MAIL FROM:<a@b> ENVID=a+2", "501 5.5.4 Bad ENVID parameter syntax"),
    (b"MAIL FROM:<a@b> SMTPUTF8=x", "555 5.5.4 Unsupported option: SMTPUTF8=x"),
    (b"RCPT TO:<a@b>", "503 5.5.1 Error: need MAIL command"),
    (b"DATA", "503 5.5.1 Error: need RCPT command"),
    (b"RSET x", "501 5.5.4 Syntax: RSET"),
    (b"QUIT x", "221 2.0.0 Bye"),
    (b"VRFY", "501 5.5.4 Syntax: VRFY address [SMTPUTF8]"),
    (b"ETRN", "500 Syntax: ETRN domain"),
    (b"STARTTLS", "502 5.5.1 Error: command not implemented"),
    (b"AUTH PLAIN", "503 5.5.1 Error: authentication not enabled"),
    (b"NOOP x", "250 2.0.0 Ok"),
])
def test_error_replies_after_ehlo(line, expected):
    d = both_ways(b"EHLO x\r\n" + line + b"\r\n")
    assert d.replies()[1] == expected


@pytest.mark.parametrize("line, expected", [
    (b"MAIL FROM:<a@b>", "503 5.5.1 Error: nested MAIL command"),
    (b"RCPT", "501 5.5.4 Syntax: RCPT TO:<address>"),
    (b"RCPT TO:", "501 5.5.4 Syntax: RCPT TO:<address>"),
    (b"RCPT TO:<a@b> NOTIFY=FOO", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
    (b"RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS", "501 5.5.4 Error: Bad NOTIFY parameter syntax"),
    (b"RCPT TO:<a@b> ORCPT=bad", "501 5.5.4 Error: Bad ORCPT parameter syntax"),
    (b"RCPT TO:<a@b> FOO=1", "555 5.5.4 Unsupported option: FOO=1"),
    (b"DATA", "554 5.5.1 Error: no valid recipients"),
    (b"ETRN x", "503 Error: MAIL transaction in progress"),
    (b"HELO again", "250 mx.test"),
])
def test_error_replies_in_transaction(line, expected):
    d = both_ways(b"EHLO x\r\nMAIL FROM:<>\r\n" + line + b"\r\n")
    assert d.replies()[2] == expected


def test_parameters_reach_the_events():
    d = both_ways(b"EHLO x\r\nMAIL FROM:<a@b> SIZE=10 BODY=8bitmime RET=hdrs ENVID=x+2By AUTH=<> SMTPUTF8\r\n"
                  b"RCPT TO:<@r1,@r2:c@d> NOTIFY=success,delay ORCPT=rfc822;c+2Bd@e\r\n")
    mail = next(e for e in d.events if isinstance(e, E.Mail))
    rcpt = next(e for e in d.events if isinstance(e, E.Rcpt))
    assert (mail.address, mail.params.size, mail.params.body, mail.params.ret, mail.params.envid,
            mail.params.auth, mail.params.smtputf8) == ("a@b", 10, "8BITMIME", "HDRS", "x+y", "<>", True)
    assert mail.params.envelope() == {"RET": "HDRS", "ENVID": "x+y", "BODY": "8BITMIME",
                                      "SMTPUTF8": "yes", "SIZE": "10"}
    assert (rcpt.address, rcpt.params.notify, rcpt.params.orcpt) == ("c@d", "SUCCESS,DELAY", "rfc822;c+d@e")


def test_lenient_and_strict_envelopes():
    lenient = both_ways(b"EHLO x\r\nMAIL FROM: <a@b>\r\nRCPT TO:c@d\r\n")
    assert lenient.replies()[1:] == ["250 2.1.0 Ok", "250 2.1.5 Ok"]
    strict = both_ways(b"EHLO x\r\nMAIL FROM:a@b\r\n", strict_rfc821_envelopes=True)
    assert strict.replies()[1] == "501 5.1.7 Bad sender address syntax"


def test_unicode_address_needs_smtputf8():
    d = both_ways("EHLO x\r\nMAIL FROM:<ü@b>\r\nMAIL FROM:<ü@b> SMTPUTF8\r\nRCPT TO:<é@d>\r\n".encode())
    assert d.replies()[1:] == ["553 5.6.7 Must declare SMTPUTF8 to send unicode address",
                               "250 2.1.0 Ok", "250 2.1.5 Ok"]


def test_pipelined_flag_and_buffered():
    m = SmtpServerMachine(MachineSettings())
    m.receive(b"EHLO x\r\nMAIL FROM:<a@b>\r\n")
    first = m.next_event()
    assert isinstance(first, E.Helo) and first.pipelined and m.buffered
    assert m.next_event() is None  # a reply is owed first
    m.reply(m.helo_reply(first))
    second = m.next_event()
    assert isinstance(second, E.Mail) and not second.pipelined and not m.buffered


def test_ehlo_keywords_follow_settings():
    def keywords(**kwargs):
        m = SmtpServerMachine(MachineSettings(**kwargs))
        return m.ehlo_keywords()
    assert keywords(message_size_limit=0, vrfy_enabled=False, smtputf8_enable=False) == [
        "PIPELINING", "SIZE", "ETRN", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "CHUNKING"]
    assert keywords(starttls_available=True, auth_enabled=True, auth_mechanisms=("PLAIN", "LOGIN"),
                    discard_ehlo_keywords=frozenset({"DSN", "ETRN"}))[3:6] == [
        "STARTTLS", "AUTH PLAIN LOGIN", "ENHANCEDSTATUSCODES"]
    # smtpd_tls_auth_only: AUTH only once TLS is active; STARTTLS gone then
    assert "AUTH PLAIN" not in keywords(starttls_available=True, auth_enabled=True, tls_auth_only=True,
                                        auth_mechanisms=("PLAIN",))
    after_tls = keywords(starttls_available=True, auth_enabled=True, tls_auth_only=True, tls_active=True,
                         auth_mechanisms_tls=("PLAIN",))
    assert "AUTH PLAIN" in after_tls and "STARTTLS" not in after_tls
    # discarded DSN also refuses its parameters
    d = both_ways(b"EHLO x\r\nMAIL FROM:<a@b> RET=FULL\r\n", discard_ehlo_keywords=frozenset({"DSN"}))
    assert d.replies()[1] == "501 5.7.1 DSN support is disabled"


def test_helo_required_and_tls_required():
    d = both_ways(b"MAIL FROM:<a@b>\r\nHELO x\r\nMAIL FROM:<a@b>\r\n", helo_required=True)
    assert d.replies() == ["503 5.5.1 Error: send HELO/EHLO first", "250 mx.test", "250 2.1.0 Ok"]
    d = both_ways(b"EHLO x\r\nMAIL FROM:<a@b>\r\nAUTH PLAIN\r\nNOOP\r\n", starttls_available=True,
                  tls_required=True)
    assert d.replies()[1:] == ["530 5.7.0 Must issue a STARTTLS command first"] * 2 + ["250 2.0.0 Ok"]


def test_recipient_limit():
    d = both_ways(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<1@b>\r\nRCPT TO:<2@b>\r\nRCPT TO:<3@b>\r\n",
                  recipient_limit=2)
    assert d.replies()[-1] == "452 4.5.3 Error: too many recipients"


def test_long_command_line_is_cut_and_the_rest_skipped():
    long_noop = b"NOOP " + b"a" * 5000 + b"\r\n"
    d = both_ways(b"EHLO x\r\n" + long_noop + b"QUIT\r\n", line_length_limit=100)
    assert d.replies()[1:] == ["250 2.0.0 Ok", "221 2.0.0 Bye"]
    assert len(d.machine._buffer) == 0


def test_buffer_stays_bounded_without_newline():
    m = SmtpServerMachine(MachineSettings(line_length_limit=100))
    for _ in range(1000):
        m.receive(b"x" * 1000)
        while (event := m.next_event()) is not None:
            m.reply(event.reply)
    assert m.buffered <= 1000


def test_rset_ends_transaction_and_counts():
    d = both_ways(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRSET\r\nRCPT TO:<c@d>\r\nFOO\r\nQUIT\r\n")
    assert d.replies()[2:4] == ["250 2.0.0 Ok", "503 5.5.1 Error: need MAIL command"]
    assert d.machine.stats == {"ehlo": [1, 1], "mail": [1, 1], "rset": [1, 1], "rcpt": [0, 1],
                               "unknown": [0, 1], "quit": [1, 1]}
    assert d.machine.error_count == 2


# --- BDAT (RFC 3030) ---------------------------------------------------------------------------

def test_bdat_chunks_and_last():
    d = both_ways(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5\r\nab\r\ncBDAT 3 LAST\r\nxyzQUIT\r\n")
    assert d.replies()[3:] == ["250 2.0.0 Ok: 5 bytes", "250 2.0.0 Ok: queued as QID", "221 2.0.0 Bye"]
    assert d.messages == [b"ab\r\ncxyz"]


def test_bdat_content_is_never_run_as_commands():
    chunk = b"QUIT\r\nRSET\r\n"
    d = both_ways(b"EHLO x\r\nBDAT %d\r\n%sNOOP\r\n" % (len(chunk), chunk))
    assert d.replies()[1:] == ["503 5.5.1 Error: need RCPT command", "250 2.0.0 Ok"]
    assert not d.machine.closed


def test_bdat_syntax_error_is_fatal():
    d = both_ways(b"EHLO x\r\nBDAT x\r\nNOOP\r\n")
    assert d.replies()[1:] == ["521 5.5.4 Syntax: BDAT count [LAST]"]
    assert d.machine.closed


def test_bdat_refused_chunk_then_later_chunks_dropped_until_last():
    m = SmtpServerMachine(MachineSettings())
    out = []
    m.receive(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 2\r\nabBDAT 2\r\ncdBDAT 1 LAST\r\nzMAIL FROM:<a@b>\r\n")
    while (event := m.next_event()) is not None:
        if isinstance(event, (E.DataContent, E.BdatStart)):
            continue
        if isinstance(event, E.Helo):
            out.append(m.reply(m.helo_reply(event)))
        elif isinstance(event, E.BdatEnd):
            out.append(m.reply(R.LOCAL_ERROR))
        elif isinstance(event, E.ProtocolError):
            out.append(m.reply(event.reply))
        else:
            out.append(m.reply(R.OK))
    assert out[3:] == [R.LOCAL_ERROR.to_bytes()] * 3 + [R.OK.to_bytes()]


# --- STARTTLS (RFC 3207 §4.2) ------------------------------------------------------------------

def test_starttls_discards_pipelined_plaintext():
    m = SmtpServerMachine(MachineSettings(starttls_available=True))
    m.receive(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<y@z>\r\n")
    helo = m.next_event()
    m.reply(m.helo_reply(helo))
    starttls = m.next_event()
    assert isinstance(starttls, E.StartTls) and starttls.pipelined
    m.reply(R.READY_TLS)
    assert m.buffered == 0 and m.next_event() is None
    assert m.tls_active and m.helo_name is None
    m.receive(b"MAIL FROM:<a@b>\r\n")  # after the handshake: EHLO is needed again per Postfix
    event = m.next_event()
    assert isinstance(event, E.Mail)
    assert "STARTTLS" not in m.ehlo_keywords()


def test_starttls_refused_keeps_buffer():
    d = both_ways(b"EHLO x\r\nSTARTTLS x\r\nNOOP\r\n", starttls_available=True)
    assert d.replies()[1:] == ["501 5.5.4 Syntax: STARTTLS", "250 2.0.0 Ok"]


# --- AUTH (RFC 4954) ---------------------------------------------------------------------------

def test_auth_exchange_lines_are_not_commands():
    m = SmtpServerMachine(MachineSettings(auth_enabled=True, auth_mechanisms=("PLAIN", "LOGIN")))
    m.receive(b"EHLO x\r\nAUTH login\r\nQUIT\r\n*\r\nNOOP\r\n")
    m.reply(m.helo_reply(m.next_event()))
    auth = m.next_event()
    assert auth == E.Auth("LOGIN", None, True)
    m.reply(R.Reply(334, None, "VXNlcm5hbWU6"))
    assert m.next_event() == E.AuthResponse("QUIT")
    m.reply(R.Reply(334, None, "UGFzc3dvcmQ6"))
    assert m.next_event() == E.AuthResponse("*")
    m.reply(R.AUTH_ABORTED)
    assert isinstance(m.next_event(), E.Noop)
    assert m.stats["auth"] == [0, 1]


def test_auth_sequence_errors():
    d = both_ways(b"EHLO x\r\nMAIL FROM:<>\r\nAUTH PLAIN\r\nRSET\r\nAUTH\r\nAUTH FOO\r\nAUTH PLAIN AHUAcA==\r\n"
                  b"AUTH PLAIN\r\n", auth_enabled=True, auth_mechanisms=("PLAIN",))
    assert d.replies()[2] == "503 5.5.1 Error: MAIL transaction in progress"
    assert d.replies()[4:] == ["501 5.5.4 Syntax: AUTH mechanism",
                               "535 5.7.8 Error: authentication failed: Invalid authentication mechanism",
                               "235 2.7.0 Authentication successful",
                               "503 5.5.1 Error: already authenticated"]


# --- LMTP (RFC 2033) ---------------------------------------------------------------------------

def test_lmtp_one_reply_per_recipient():
    def per_recipient(count):
        return [R.Reply(250, "2.1.5", f"<r{i}> Saved") if i != 1 else R.Reply(550, "5.1.1", "<r1> no")
                for i in range(count)]
    d = Driver(MachineSettings(lmtp=True, hostname="lmtp.test", helo_required=True), lmtp_replies=per_recipient)
    d.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nLHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<r0@d>\r\n"
           b"RCPT TO:<r1@d>\r\nRCPT TO:<r2@d>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n", step=3)
    replies = d.replies()
    assert replies[0] == "500 5.5.2 Error: command not recognized"
    assert replies[1].startswith("250 2.1.0")  # as Dovecot's lmtp: MAIL without LHLO is taken
    assert replies[2].startswith("250-lmtp.test\n250-PIPELINING")
    assert "VRFY" not in replies[2] and "ETRN" not in replies[2]
    assert replies[8:11] == ["250 2.1.5 <r0> Saved", "550 5.1.1 <r1> no", "250 2.1.5 <r2> Saved"]
    assert replies[11] == "221 2.0.0 Bye"


# --- EOF and robustness ------------------------------------------------------------------------

def test_eof_reports_the_last_command():
    d = Driver().feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\npartial").eof()
    assert d.events[-1] == E.ConnectionClosed("DATA")


COMMAND_WORDS = st.sampled_from([b"EHLO x", b"HELO", b"MAIL FROM:<a@b>", b"MAIL FROM:", b"RCPT TO:<c@d>",
                                 b"RCPT TO:<c@d> NOTIFY=x", b"DATA", b"BDAT 3", b"BDAT 2 LAST", b"BDAT x",
                                 b"RSET", b"NOOP", b"VRFY a", b"ETRN d", b"STARTTLS", b"AUTH PLAIN",
                                 b"AUTH LOGIN =", b"*", b".", b"QUIT", b"\xff\xfe", b"LHLO y"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(COMMAND_WORDS, st.binary(max_size=40)), max_size=25),
       st.sampled_from(["\r\n", "\n", "\r"]), st.booleans(), st.integers(1, 7))
def test_fuzz_never_raises(parts, newline, lmtp, step):
    data = newline.encode().join(parts) + newline.encode()
    # STARTTLS is left out: it drops pipelined input by design (tested above)
    settings_ = MachineSettings(lmtp=lmtp, starttls_available=False, auth_enabled=True,
                                auth_mechanisms=("PLAIN",), line_length_limit=80,
                                bare_newline="reject" if step == 7 else "normalize")
    whole = Driver(settings_).feed(data).eof()
    single = Driver(settings_).feed(data, step=step).eof()
    assert whole.replies() == single.replies()
    for text in whole.replies():
        code = int(text[:3])
        assert 200 <= code < 600
        if code >= 500 and "command not recognized" in text:
            assert text.startswith("500 ")


def test_helo_replies_are_made_once_per_settings_and_tls_state():
    settings = MachineSettings(hostname="mx.example", starttls_available=True)
    first, second = SmtpServerMachine(settings), SmtpServerMachine(settings)
    ehlo = E.Helo("EHLO", "client")
    plain = first.helo_reply(ehlo)
    assert "STARTTLS" in plain.text and second.helo_reply(ehlo) is plain
    second.tls_active = True  # after STARTTLS: no STARTTLS keyword any more
    assert "STARTTLS" not in second.helo_reply(ehlo).text
    assert first.helo_reply(ehlo) is plain
    assert first.helo_reply(E.Helo("HELO", "client")).to_bytes() == b"250 mx.example\r\n"
    other = SmtpServerMachine(MachineSettings(hostname="other.example"))
    assert other.helo_reply(ehlo).text.startswith("other.example\n")
