"""The POP3 states' answers (texts checked against Dovecot 2.3.19 in
tests/net/test_pop3_dovecot_differential.py; here the rules, in isolation)."""

from __future__ import annotations

from roost.proto.pop3 import authorization as authz
from roost.proto.pop3 import replies
from roost.proto.pop3.arguments import parse_line_count, parse_number
from roost.proto.pop3.transaction import (Close, Fetch, Listed, Quit, Send, Transaction,
                                          expand_logout_format)


def session() -> Transaction:
    return Transaction([Listed(10, "u1"), Listed(20, "u2", seen=True), Listed(30, "u3")])


def test_numbers():
    assert parse_number("01", then_space=False) == (1, "")
    assert parse_number("1 5", then_space=True) == (1, "5")
    assert parse_number("1  5", then_space=True) == (1, "5")
    assert parse_number("1", then_space=True).text == "Noise after message number: "
    assert parse_number("4294967296", then_space=False).text == "Message number too large: "
    assert parse_number("9" * 25, then_space=False).text == "Message number too large: " + "9" * 25
    assert parse_number("-1", then_space=False).text == "Invalid message number: -1"
    assert parse_line_count("18446744073709551615") == 2**64 - 1
    assert parse_line_count("18446744073709551616").text.startswith("Size too large")
    assert parse_line_count("3 4").text == "Noise after size:  4"


def test_stat_list_dele_rset_quit():
    s = session()
    assert s.command(b"STAT") == Send(b"+OK 3 60\r\n")
    assert s.command(b"DELE 2") == Send(b"+OK Marked to be deleted.\r\n")
    assert s.command(b"LIST") == Send(b"+OK 2 messages:\r\n1 10\r\n3 30\r\n.\r\n")
    assert s.command(b"UIDL 2") == Send(b"-ERR Message is deleted.\r\n", bad=True)
    assert s.command(b"RETR 1") == Fetch(0, None, b"+OK 10 octets\r\n")
    assert s.command(b"TOP 3 0") == Fetch(2, 0, b"+OK\r\n")
    assert s.command(b"QUIT") == Quit((1,), (0,))
    assert s.quit_reply() == b"+OK Logging out, messages deleted.\r\n"
    assert s.command(b"RSET") == Send(b"+OK\r\n")
    assert not s.deleted and not s.seen
    assert s.command(b"QUIT") == Quit((), ())
    assert s.quit_reply() == b"+OK Logging out.\r\n"


def test_retr_of_seen_message_needs_no_flag_update():
    s = session()
    s.command(b"RETR 2")
    assert s.seen == set()


def test_too_many_bad_commands():
    s = session()
    for _ in range(20):
        assert isinstance(s.command(b"FOO"), Send)
    event = s.command(b"FOO")
    assert event == Close(b"-ERR Unknown command: FOO\r\n-ERR Too many bad commands.\r\n",
                          "Too many bad commands.")
    s = session()
    for _ in range(15):
        s.command(b"FOO")
    s.command(b"NOOP")  # a good command resets the count
    assert all(isinstance(s.command(b"FOO"), Send) for _ in range(20))


def test_logout_format():
    s = session()
    s.command(b"DELE 1")
    values = s.logout_stats(deleted_done=True)
    assert expand_logout_format("top=%t/%p, retr=%r/%b, del=%d/%m, size=%s", values) == \
        "top=0/0, retr=0/0, del=1/3, size=60"
    assert expand_logout_format("%{deleted_bytes} %% %z %{bogus}", values) == "10 %  "


def test_login_rules():
    insecure = authz.Authorization(authz.Policy(("PLAIN", "LOGIN"), False, False, True))
    assert insecure.command(b"CAPA") == authz.Send(replies.capabilities(
        authenticated=False, stls=True, user=False, mechanisms=()))
    assert insecure.command(b"USER a") == authz.Send(replies.PLAINTEXT_DISALLOWED.wire())
    assert insecure.command(b"PASS b") == authz.Send(replies.PLAINTEXT_DISALLOWED.wire())
    assert insecure.command(b"AUTH LOGIN") == authz.Send(replies.PLAINTEXT_MECH_DISABLED.wire())
    assert insecure.command(b"STLS") == authz.StartTls()
    insecure.tls_started()
    assert insecure.command(b"STLS") == authz.Send(replies.TLS_ALREADY_ACTIVE.wire())
    assert insecure.command(b"USER a") == authz.Send(b"+OK\r\n")
    assert insecure.command(b"PASS b") == authz.PasswordLogin("a", "b")
    assert "b" not in repr(authz.PasswordLogin("a", "b"))
    assert insecure.command(b"PASS b") == authz.Send(replies.NO_USERNAME.wire())
    assert insecure.command(b"AUTH PLAIN AGEAYg==") == authz.SaslBegin("PLAIN", b"\0a\0b")
    assert insecure.sasl_response(b"*") == authz.SaslCancel()
    assert insecure.command(b"AUTH CRAM-MD5") == authz.Send(replies.UNSUPPORTED_MECHANISM.wire())
    no_tls = authz.Authorization(authz.Policy(("PLAIN",), True, False, False))
    assert no_tls.command(b"STLS") == authz.Send(replies.TLS_UNAVAILABLE.wire())
    required = authz.Authorization(authz.Policy(("PLAIN",), False, False, True,
                                                disable_plaintext_auth=False,
                                                ssl_required=True))
    assert required.command(b"AUTH PLAIN") == authz.Send(replies.SSL_REQUIRED.wire())
    assert required.command(b"USER a") == authz.Send(replies.PLAINTEXT_DISALLOWED.wire())
    open_ = authz.Authorization(authz.Policy(("PLAIN",), False, False, False,
                                             disable_plaintext_auth=False))
    assert open_.command(b"USER a") == authz.Send(b"+OK\r\n")


def test_three_bad_login_commands_disconnect():
    machine = authz.Authorization(authz.Policy(("PLAIN",), True, False, False))
    assert machine.command(b"NOOP") == authz.Send(b"-ERR Unknown command.\r\n")
    machine.command(b"RSET")
    event = machine.command(b"STAT")
    assert event == authz.Close(b"-ERR Unknown command.\r\n-ERR Too many invalid bad commands.\r\n",
                                "Disconnected: Too many bad commands")
