"""SmtpPolicy without Postfix: stages, actions, logging, failure handling, mynetworks.
(The reply texts themselves are checked against Postfix in tests/interop.)"""

from __future__ import annotations

import asyncio
import os

from roost.policy import SmtpPolicy, access_denied_reply
from roost.policy.parse import missing_working_relay_restriction, parse_restrictions
from roost.net.dns import FakeResolver
from roost.resolve.domains import MatchList
from roost.tables.registry import open_table
from tests.conftest import RecordingLog
from tests.policy.helpers import policy_from, rcpt, settings_from, state, text_of


def run(coroutine):
    return asyncio.run(coroutine)


def test_nothing_is_rejected_before_rcpt_with_delay_reject():
    policy = policy_from("smtpd_client_restrictions = reject\nsmtpd_helo_restrictions = reject\n"
                         "smtpd_sender_restrictions = reject\n")
    for check in (policy.check_connect, policy.check_helo, policy.check_mail):
        assert run(check(state(recipient=None))).reply is None
    assert text_of(rcpt(policy)) == "554 5.7.1 <unknown[192.0.2.5]>: Client host rejected: Access denied"


def test_without_delay_reject_each_list_runs_at_its_command():
    policy = policy_from("smtpd_delay_reject = no\nsmtpd_client_restrictions = check_client_access "
                         "inline:{192.0.2.6=REJECT}\nsmtpd_helo_restrictions = reject_non_fqdn_helo_hostname\n"
                         "smtpd_sender_restrictions = reject_non_fqdn_sender\n")
    connect = run(policy.check_connect(state(client_address="192.0.2.6", helo_name=None, sender=None,
                                             recipient=None, protocol="SMTP")))
    assert str(connect.reply) == "554 5.7.1 <unknown[192.0.2.6]>: Client host rejected: Access denied"
    assert connect.log == ("NOQUEUE: reject: CONNECT from unknown[192.0.2.6]: 554 5.7.1 <unknown[192.0.2.6]>: "
                           "Client host rejected: Access denied; proto=SMTP")
    assert str(access_denied_reply(state(client_address="192.0.2.6"))) == (
        "503 5.7.0 Error: access denied for unknown[192.0.2.6]")
    assert run(policy.check_helo(state(helo_name="foo", sender=None, recipient=None))).reply.code == 504
    assert run(policy.check_mail(state(sender="a", recipient=None))).reply.code == 504
    assert rcpt(policy).reply is None  # the earlier lists do not run again at RCPT


def test_fatal_configuration_like_postfix_smtpd():
    policy = policy_from("smtpd_relay_restrictions = permit\nsmtpd_recipient_restrictions = permit_mynetworks\n")
    assert policy.fatal and "specify at least one working instance" in policy.fatal
    assert str(rcpt(policy).reply) == "451 4.3.5 Server configuration error"
    assert ("fatal", policy.fatal) in policy.log.lines
    assert policy_from().fatal is None


def test_message_actions_are_collected(tmp_path):
    (tmp_path / "actions").write_text("h.relay.test HOLD\nf.relay.test FILTER smtp:[192.0.2.1]:25\n"
                                      "r.relay.test REDIRECT x@y.test\np.relay.test PREPEND X-Tag: 1\n"
                                      "b.relay.test BCC audit@y.test\nd.relay.test DISCARD gone\n")
    table = f"texthash:{tmp_path / 'actions'}"
    policy = policy_from(f"smtpd_recipient_restrictions = check_recipient_access {table}\n")
    expected = {"h": ("HOLD", ""), "f": ("FILTER", "smtp:[192.0.2.1]:25"), "r": ("REDIRECT", "x@y.test"),
                "p": ("PREPEND", "X-Tag: 1"), "b": ("BCC", "audit@y.test"), "d": ("DISCARD", "gone")}
    for prefix, action in expected.items():
        result = rcpt(policy, recipient=f"x@{prefix}.relay.test")
        assert result.reply is None and result.actions == (action,)
    assert any("hold: RCPT from" in text and "triggers HOLD action" in text for _, text in policy.log.lines)
    assert any("discard: RCPT from" in text and "Recipient address gone" in text for _, text in policy.log.lines)
    assert rcpt(policy, recipient="nobody@ext.test", discard=True).reply is None


def test_table_failure_defers():
    policy = policy_from("smtpd_sender_restrictions = check_sender_access hash:/nonexistent/access\n")
    result = rcpt(policy)
    assert str(result.reply) == "451 4.3.5 <a@ext.example>: Sender address rejected: Server configuration error"
    assert any(level == "warning" for level, _ in policy.log.lines)


def test_data_and_end_of_data_and_etrn():
    policy = policy_from("smtpd_data_restrictions = reject_unauth_pipelining\n"
                         "smtpd_end_of_data_restrictions = defer_if_permit\n"
                         "smtpd_etrn_restrictions = check_etrn_access inline:{bad.test=REJECT}\n")
    assert run(policy.check_data(state(recipient_count=1))).reply is None
    assert str(run(policy.check_data(state(pipelined=True))).reply) == (
        "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining")
    assert str(run(policy.check_end_of_data(state())).reply) == (
        "450 4.7.0 <END-OF-MESSAGE>: End-of-data rejected: defer_if_permit requested")
    assert str(run(policy.check_etrn(state(), "bad.test")).reply) == (
        "554 5.7.1 <bad.test>: Etrn command rejected: Access denied")


def test_nested_restriction_lists_are_bounded():
    policy = policy_from("smtpd_restriction_classes = loop\nloop = loop\nsmtpd_recipient_restrictions = loop\n")
    assert str(rcpt(policy).reply) == "451 4.3.5 Server configuration error"


def test_system_users_are_local_recipients():
    policy = policy_from("local_recipient_maps = proxy:unix:passwd.byname\n")
    assert rcpt(policy, recipient="root@local.test").reply is None
    assert rcpt(policy, recipient="no-such-user-xyz@local.test").reply.code == 550


def test_verify_recipient():
    policy = policy_from("local_recipient_maps = inline:{alice=1}\n")
    assert policy.verify_recipient(state(recipient="alice@local.test")) is None
    assert str(policy.verify_recipient(state(recipient="bob@local.test"))) == (
        "550 5.1.1 <bob@local.test>: Recipient address rejected: User unknown in local recipient table")


def test_mynetworks_matching(tmp_path):
    networks = tmp_path / "networks"
    networks.write_text("# trusted\n10.0.0.0/8 [2001:db8::]/32\n")
    items = ["!10.9.9.9", str(networks), "192.0.2.0/24", "[::1]", "trusted.example", "cidr:" + str(tmp_path / "c")]
    (tmp_path / "c").write_text("198.51.100.0/24 ok\n")
    match = MatchList.build("mynetworks", items, True, lambda ref: open_table(ref))
    assert match.match_host("unknown", "10.1.2.3")
    assert not match.match_host("unknown", "10.9.9.9")
    assert match.match_host("unknown", "2001:db8::7")
    assert match.match_host("unknown", "::1")
    assert match.match_host("unknown", "::ffff:192.0.2.1")
    assert match.match_host("mail.trusted.example", "203.0.113.1")
    assert not match.match_host("unknown", "203.0.113.1")
    assert match.match_host("unknown", "198.51.100.77")


def test_mynetworks_default_follows_mynetworks_style():
    host = SmtpPolicy(settings_from("", base="mynetworks_style = host\ninet_interfaces = 127.0.0.1\n"
                                              "inet_protocols = ipv4\n"),
                      resolver=FakeResolver(), log=RecordingLog())
    assert host.mynetworks.match_host("unknown", "127.0.0.1")
    assert not host.mynetworks.match_host("unknown", "127.0.0.2")
    subnet = SmtpPolicy(settings_from("", base="mynetworks_style = subnet\ninet_interfaces = 127.0.0.1\n"
                                                "inet_protocols = ipv4\n"),
                        resolver=FakeResolver(), log=RecordingLog())
    assert subnet.mynetworks.match_host("unknown", "127.0.0.2")


def test_parser_items():
    items = parse_restrictions("permit_mynetworks, check_client_access hash:/x  reject_rbl_client bl.test "
                               "hash:/implicit REJECT_UNKNOWN_CLIENT nonsense check_sender_access permit",
                               frozenset(), "client")
    assert [(i.name, i.argument, bool(i.error)) for i in items] == [
        ("permit_mynetworks", None, False), ("check_client_access", "hash:/x", False),
        ("reject_rbl_client", "bl.test", False), ("check_client_access", "hash:/implicit", False),
        ("reject_unknown_client_hostname", None, False), ("nonsense", None, True),
        ("check_sender_access", "permit", True)]
    assert missing_working_relay_restriction(items, ()) is not None
    assert missing_working_relay_restriction(parse_restrictions("defer_if_permit"), ()) is None


def test_rebuilt_tables_are_seen_within_a_second(tmp_path):
    from roost.cli.postmap import run_tool
    import io
    (tmp_path / "main.cf").write_text("")
    source = tmp_path / "access"
    source.write_text("other.test REJECT\n")
    assert run_tool("postmap", ["postmap", "-c", str(tmp_path), f"hash:{source}"], stdout=io.StringIO(),
                    stderr=io.StringIO()) == 0
    text = tmp_path / "senders"
    text.write_text("other.test REJECT\n")
    policy = policy_from(f"smtpd_sender_restrictions = check_sender_access hash:{source},"
                         f" check_sender_access texthash:{text}\n")
    assert rcpt(policy, sender="a@ext.example").reply is None
    source.write_text("ext.example REJECT rebuilt\n")
    assert run_tool("postmap", ["postmap", "-c", str(tmp_path), f"hash:{source}"], stdout=io.StringIO(),
                    stderr=io.StringIO()) == 0
    text.write_text("b.example REJECT edited\n")
    os.utime(text, (1, 1))  # a different mtime even within the same clock tick
    import time
    deadline = time.monotonic() + 1.5
    seen = None
    while time.monotonic() < deadline:
        seen = rcpt(policy, sender="a@ext.example").reply
        if seen is not None:
            break
        time.sleep(0.05)
    assert str(seen) == "554 5.7.1 <a@ext.example>: Sender address rejected: rebuilt"
    assert str(rcpt(policy, sender="a@b.example").reply) == "554 5.7.1 <a@b.example>: Sender address rejected: edited"


def test_problems_for_roost_check():
    policy = policy_from("smtpd_restriction_classes = mine\nmine = bogus_one\n"
                         "smtpd_client_restrictions = reject_unverified_recipient\n")
    problems = policy.problems()
    assert ("mine", 'unknown smtpd restriction: "bogus_one"') in problems
    assert any(name == "smtpd_client_restrictions" and "address verification" in text for name, text in problems)
    assert policy_from().problems() == []


def test_check_sasl_access():
    policy = policy_from("smtpd_recipient_restrictions = check_sasl_access inline:{mallory=REJECT},"
                         " permit\n")
    assert str(rcpt(policy, sasl_username="mallory").reply) == (
        "554 5.7.1 <unknown[192.0.2.5]>: Client host rejected: Access denied")
    assert rcpt(policy, sasl_username="alice").reply is None
    assert rcpt(policy).reply is None
