"""Fuzzing the restriction-list parser and the evaluator: any list text and any client input
give a reply or None, never an exception; unknown restrictions give Postfix's
`451 4.3.5 Server configuration error` plus a warning."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings as hsettings, strategies as st

from roost.policy import SmtpState
from roost.policy.parse import ALIASES, WITH_ARGUMENT, WITHOUT_ARGUMENT, parse_restrictions
from roost.proto.smtp.reply import Reply
from tests.policy.helpers import policy_from

# `sleep N` really pauses (tested in test_dns_restrictions): kept out of the fuzzing.
WORDS = st.sampled_from(sorted(WITHOUT_ARGUMENT | WITH_ARGUMENT - {"sleep"}) + [
    "inline:{a=REJECT}", "static:OK", "static:DUNNO", "static:{550 no}", "static:FOO", "hash:/nonexistent/x",
    "regexp:/nonexistent", "bl.test", "cls", "garbage", "!", "{", "}", ",", "permit_mynetworks,reject"])
LISTS = st.lists(WORDS | st.text(max_size=12).filter(lambda w: "sleep" not in w.lower()),
                 max_size=8).map(" ".join)
ALL = ("reject_invalid_helo_hostname reject_non_fqdn_helo_hostname reject_non_fqdn_sender "
       "reject_non_fqdn_recipient reject_unknown_sender_domain reject_unknown_recipient_domain "
       "reject_unknown_helo_hostname reject_rbl_client bl.test reject_rhsbl_sender bl.test "
       "reject_sender_login_mismatch reject_unlisted_sender reject_unlisted_recipient "
       "check_client_access static:DUNNO check_helo_access static:DUNNO check_sender_access static:DUNNO "
       "check_recipient_access static:DUNNO reject_unauth_pipelining reject_multi_recipient_bounce "
       "reject_unknown_client_hostname permit_mynetworks reject_unauth_destination")


def run(coroutine):
    return asyncio.run(coroutine)


@hsettings(max_examples=200, deadline=None)
@given(LISTS)
def test_any_restriction_list_evaluates_without_exception(text):
    items = parse_restrictions(text, frozenset({"cls"}))
    assert all(item.name for item in items)
    policy = policy_from("smtpd_restriction_classes = cls\ncls = reject\n"
                         f"smtpd_recipient_restrictions = {text.replace(chr(10), ' ')}\n")
    for check in (policy.check_rcpt, policy.check_data, policy.check_end_of_data):
        result = run(check(SmtpState(client_address="192.0.2.5", helo_name="h.test", sender="a@b.test",
                                     recipient="c@local.test", recipient_count=1)))
        assert result.reply is None or isinstance(result.reply, Reply)


@hsettings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=20)
       .filter(lambda w: w.strip() and not set(w) & set("{},:$#=")
               and not any(c.isspace() for c in w)
               and w.lower() not in WITHOUT_ARGUMENT | WITH_ARGUMENT | set(ALIASES)))
def test_unknown_restriction_is_a_configuration_error(word):
    policy = policy_from(f"smtpd_recipient_restrictions = {word}, permit\n")
    result = run(policy.check_rcpt(SmtpState(client_address="192.0.2.5", sender="a@b.test", recipient="c@local.test")))
    assert str(result.reply) == "451 4.3.5 Server configuration error"
    assert policy.log.lines[0][0] == "warning" and "unknown smtpd restriction" in policy.log.lines[0][1]


TEXT = st.text(max_size=40)


@hsettings(max_examples=200, deadline=None)
@given(client=st.one_of(st.ip_addresses().map(str), TEXT), helo=st.none() | TEXT, sender=st.none() | TEXT,
       recipient=TEXT, login=st.none() | TEXT, name=TEXT)
def test_any_client_input_evaluates_without_exception(client, helo, sender, recipient, login, name):
    policy = policy_from(f"smtpd_sender_login_maps = static:alice\nsmtpd_recipient_restrictions = {ALL}\n")
    state = SmtpState(client_address=client, client_name=name or "unknown", helo_name=helo, sender=sender,
                      recipient=recipient, sasl_username=login)
    for check in (policy.check_connect, policy.check_helo, policy.check_mail, policy.check_rcpt,
                  policy.check_data):
        result = run(check(state))
        assert result.reply is None or isinstance(result.reply, Reply)
        if result.reply is not None:
            assert result.log and "\n" not in result.log.split(";")[0] or True
