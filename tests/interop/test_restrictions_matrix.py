"""Differential restriction matrix: roost's SmtpPolicy against Debian's Postfix 3.7.

Each case is one SMTP dialogue played against a private Postfix (one smtpd service per case,
with the case's master.cf `-o` overrides) and against roost reading the same main.cf with the
same overrides; every reply must be identical (code, enhanced code, text; queue IDs masked),
and so must the policy's log lines (NOQUEUE/queue-ID reject lines, reject_warning, hold,
discard, warn, and the warnings about unknown restrictions).
Tables are written once; the hash: ones are compiled by Debian's postmap and by roost's.
See tests/policy/matrix.py for how the two sides are driven (and how to point roost's side
at the real smtpd). Needs root for Postfix's master (fails, never skips, otherwise).
roost's side is the real smtpd (roost.net.smtpd) by default; ROOST_POLICY_TARGET=policy drives
SmtpPolicy alone through the minimal session driver instead.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import require_tool
from tests.policy.matrix import Matrix, case
from tests.policy.postfix_oracle import auth_plain

MAIN_CF = """\
myhostname = mx.roost.test
mydomain = roost.test
mydestination = $myhostname, localhost.$mydomain, localhost, local.test
relay_domains = relay.test
mynetworks = 127.0.0.1/32
virtual_alias_domains = valias.test
virtual_alias_maps = texthash:{tables}/virtual
virtual_mailbox_domains = vmbox.test
virtual_mailbox_maps = texthash:{tables}/vmailbox
alias_maps = texthash:{tables}/aliases
local_recipient_maps = texthash:{tables}/local_users $alias_maps
smtpd_restriction_classes = strict, lenient
strict = reject
lenient = permit
proxy_read_maps = proxy:unix:passwd.byname
"""

ACCESS = """\
bad.relay.test REJECT
defer.relay.test DEFER
num.relay.test 550 go away
num2.relay.test 451 4.7.9 later
ok.relay.test OK
hold.relay.test HOLD held
discard.relay.test DISCARD
warn.relay.test WARN careful
restr.relay.test permit_mynetworks, reject
dunno.relay.test DUNNO
enh.relay.test 554 5.1.2 explicit
rejtext.relay.test REJECT no way
r4.relay.test 421 4.4.4 shutting
mixed.relay.test 450 5.1.1 mixed classes
dip.relay.test DEFER_IF_PERMIT dip text
dir.relay.test DEFER_IF_REJECT dir text
cls.relay.test strict
len.relay.test lenient
foo.relay.test FOO
tag@relay.test REJECT tagged
127.0.0.2 REJECT client no
bad.test REJECT
defer.test DEFER
num.test 550 go away
<> REJECT null sender
nullkey REJECT custom null key
parent.test REJECT parent
perm.relay.test PERMIT
filt.relay.test FILTER smtp:[192.0.2.1]:25
redir.relay.test REDIRECT other@relay.test
prep.relay.test PREPEND X-Tag: yes
bcc.relay.test BCC audit@relay.test
info.relay.test INFO noted
warn2.relay.test WARN
"""

TABLES = {
    "virtual": "al@valias.test alice@local.test\n",
    "vmailbox": "mb@vmbox.test mb/\n",
    "aliases": "postmaster root\n",
    "local_users": "alice x\nroot x\n",
    "access": ACCESS,
    "clients.cidr": "127.0.0.2/32 REJECT cidr says no\n",
    "senders.regexp": "/^spam@/ REJECT regexp says no\n",
    "logins": "al@valias.test alice\n@shared.test alice, bob\n",
    "relay_recipients": "known@relay.test x\n",
    "mynets.cidr": "127.0.0.2/32 yes\n",
    "prefix": "127.0 REJECT by prefix\nunknown OK\n",
}

ACCESS_MAP = "hash:{tables}/access"
EHLO = "EHLO c.test"
MAIL = "MAIL FROM:<a@ext.test>"


def rcpts(*addresses: str) -> list[str]:
    return [f"RCPT TO:<{a}>" for a in addresses]


CLASS_RECIPIENTS = rcpts("x@ext.test", "alice@local.test", "nobody@local.test", "al@valias.test", "no@valias.test",
                         "mb@vmbox.test", "no@vmbox.test", "any@relay.test", "alice", "alice@[127.0.0.1]",
                         "root@local.test", "postmaster@local.test", "ALICE@LOCAL.TEST")
ACCESS_RECIPIENTS = rcpts(*(f"x@{d}.relay.test" for d in (
    "bad", "defer", "num", "num2", "ok", "hold", "warn", "restr", "dunno", "enh", "rejtext",
    "mixed", "cls", "len", "foo")), "tag@relay.test", "x@sub.bad.relay.test", "x@r4.relay.test", "QUIT")
RELAY_WITH_RECIPIENT_CHECK = {"smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"}

CASES = [
    case("classes_outside", [EHLO, MAIL, *CLASS_RECIPIENTS, "DATA"]),
    case("classes_inside", [EHLO, MAIL, *CLASS_RECIPIENTS, "DATA"], source="127.0.0.1"),
    case("reject_unauth_destination", [EHLO, MAIL, *rcpts("x@ext.test", "x@sub.relay.test", "alice@local.test")],
         smtpd_relay_restrictions="permit_mynetworks, reject_unauth_destination"),
    case("relay_domains_reject_code", [EHLO, MAIL, *rcpts("x@ext.test")], relay_domains_reject_code="550",
         smtpd_relay_restrictions="reject_unauth_destination"),
    case("client_reject_delayed", [EHLO, MAIL, *rcpts("x@ext.test", "alice@local.test")],
         smtpd_client_restrictions="reject"),
    case("client_reject_at_connect", [EHLO, MAIL, *rcpts("alice@local.test"), "QUIT"],
         smtpd_client_restrictions="reject", smtpd_delay_reject="no"),
    case("helo_checks", [MAIL, "HELO foo", MAIL, *rcpts("alice@local.test"), "HELO a..b", MAIL,
                         *rcpts("alice@local.test"), "HELO [1.2.3.4]", MAIL, *rcpts("alice@local.test"),
                         "HELO 1.2.3.4", MAIL, *rcpts("alice@local.test")],
         smtpd_helo_restrictions="reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname",
         smtpd_helo_required="yes"),
    case("helo_validity", [*[x for name in ("-bad.test", "a_b.test", "x.test.", "[999.1.1.1]", "[IPv6:::1]",
                                            "1.2.3", "12345", "foo-.test", "ab.c-d.test", "[1.2.3.4")
                             for x in (f"HELO {name}", MAIL, "RCPT TO:<alice@local.test>", "RSET")]],
         smtpd_helo_restrictions="reject_invalid_helo_hostname"),
    case("helo_reject_not_delayed", ["HELO foo", MAIL, *rcpts("alice@local.test")],
         smtpd_helo_restrictions="reject_non_fqdn_helo_hostname", smtpd_delay_reject="no"),
    case("non_fqdn", [EHLO, "MAIL FROM:<a>", *rcpts("alice@local.test"), "RSET", "MAIL FROM:<a@b>",
                      *rcpts("alice"), "RSET", "MAIL FROM:<a@ext.test>", *rcpts("alice", "alice@local",
                                                                                 "alice@[127.0.0.1]"),
                      "RSET", "MAIL FROM:<>", *rcpts("alice@local.test")],
         smtpd_sender_restrictions="reject_non_fqdn_sender",
         smtpd_recipient_restrictions="reject_non_fqdn_recipient"),
    case("non_fqdn_sender_not_delayed", [EHLO, "MAIL FROM:<a>", "MAIL FROM:<a@ext.test>"],
         smtpd_sender_restrictions="reject_non_fqdn_sender", smtpd_delay_reject="no"),
    case("recipient_access_actions", [EHLO, MAIL, *ACCESS_RECIPIENTS, "DATA"],
         smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}", **RELAY_WITH_RECIPIENT_CHECK),
    case("recipient_access_actions_inside", [EHLO, MAIL, *ACCESS_RECIPIENTS],
         source="127.0.0.1", smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}",
         **RELAY_WITH_RECIPIENT_CHECK),
    case("discard_skips_later_checks", [EHLO, MAIL, *rcpts("x@bad.relay.test", "x@discard.relay.test",
                                                           "x@bad.relay.test", "x@ext.test", "nobody@local.test"),
                                        "DATA", MAIL, *rcpts("x@bad.relay.test")],
         smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}", **RELAY_WITH_RECIPIENT_CHECK),
    case("recipient_delimiter", [EHLO, MAIL, *rcpts("tag+x@relay.test", "tag-y@relay.test", "alice+z@local.test",
                                                    "nobody+z@local.test")],
         recipient_delimiter="+", smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}",
         **RELAY_WITH_RECIPIENT_CHECK),
    case("sender_access", [EHLO, "MAIL FROM:<a@bad.test>", *rcpts("alice@local.test"), "RSET",
                           "MAIL FROM:<a@defer.test>", *rcpts("alice@local.test"), "RSET",
                           "MAIL FROM:<a@num.test>", *rcpts("alice@local.test"), "RSET",
                           "MAIL FROM:<>", *rcpts("alice@local.test"), "RSET",
                           "MAIL FROM:<a@sub.parent.test>", *rcpts("alice@local.test")],
         smtpd_sender_restrictions=f"check_sender_access {ACCESS_MAP}"),
    case("null_access_lookup_key", [EHLO, "MAIL FROM:<>", *rcpts("alice@local.test")],
         smtpd_null_access_lookup_key="nullkey", smtpd_sender_restrictions=f"check_sender_access {ACCESS_MAP}"),
    case("no_parent_matching", [EHLO, "MAIL FROM:<a@sub.parent.test>", *rcpts("alice@local.test"), "RSET",
                                "MAIL FROM:<a@parent.test>", *rcpts("alice@local.test")],
         parent_domain_matches_subdomains="relay_domains",
         smtpd_sender_restrictions=f"check_sender_access {ACCESS_MAP}"),
    case("sender_regexp", [EHLO, "MAIL FROM:<spam@ext.test>", *rcpts("alice@local.test"), "RSET",
                           "MAIL FROM:<ham@ext.test>", *rcpts("alice@local.test")],
         smtpd_sender_restrictions="check_sender_access regexp:{tables}/senders.regexp"),
    case("client_access_hash", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_client_restrictions=f"check_client_access {ACCESS_MAP}"),
    case("client_access_cidr", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_client_restrictions="check_client_access cidr:{tables}/clients.cidr"),
    case("client_access_cidr_inside", [EHLO, MAIL, *rcpts("alice@local.test")], source="127.0.0.1",
         smtpd_client_restrictions="check_client_access cidr:{tables}/clients.cidr"),
    case("helo_access", ["EHLO bad.test", MAIL, *rcpts("alice@local.test"), "EHLO x.parent.test", MAIL,
                         *rcpts("alice@local.test")],
         smtpd_helo_restrictions=f"check_helo_access {ACCESS_MAP}"),
    case("defer_if_permit", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="defer_if_permit, permit"),
    case("defer_if_permit_in_client_list", [EHLO, MAIL, *rcpts("alice@local.test", "x@ext.test")],
         smtpd_client_restrictions="defer_if_permit"),
    case("defer_if_reject", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="defer_if_reject, reject"),
    case("defer_if_reject_4xx_stays", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="defer_if_reject, defer"),
    case("warn_if_reject", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="warn_if_reject, reject, defer"),
    case("warn_if_reject_only_next", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="warn_if_reject, permit_mynetworks, reject"),
    case("unknown_restriction", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="bogus_restriction"),
    case("missing_table_argument", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="permit_mynetworks, check_recipient_access"),
    case("data_reject", [EHLO, MAIL, *rcpts("alice@local.test"), "DATA"], smtpd_data_restrictions="reject"),
    case("end_of_data_reject", [EHLO, MAIL, *rcpts("alice@local.test"), "DATA"],
         smtpd_end_of_data_restrictions="reject"),
    case("multi_recipient_bounce", [EHLO, "MAIL FROM:<>", *rcpts("alice@local.test", "root@local.test"), "DATA"],
         smtpd_data_restrictions="reject_multi_recipient_bounce"),
    case("sender_login_mismatch", [EHLO, "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test"), "RSET",
                                   auth_plain("bob"), "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test"),
                                   "RSET", "MAIL FROM:<zz@ext.test>", *rcpts("alice@local.test"), "RSET",
                                   "MAIL FROM:<x@shared.test>", *rcpts("alice@local.test"), "RSET",
                                   "MAIL FROM:<>", *rcpts("alice@local.test")],
         smtpd_sasl_auth_enable="yes", smtpd_sender_login_maps="texthash:{tables}/logins",
         smtpd_sender_restrictions="reject_sender_login_mismatch"),
    case("known_sender_login_mismatch", [EHLO, "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test"), "RSET",
                                         auth_plain("bob"), "MAIL FROM:<zz@ext.test>", *rcpts("alice@local.test"),
                                         "RSET", "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test")],
         smtpd_sasl_auth_enable="yes", smtpd_sender_login_maps="texthash:{tables}/logins",
         smtpd_sender_restrictions="reject_known_sender_login_mismatch"),
    case("authenticated_sender_login_mismatch", [EHLO, "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test"),
                                                 "RSET", auth_plain("alice"), "MAIL FROM:<zz@ext.test>",
                                                 *rcpts("alice@local.test"), "RSET", "MAIL FROM:<al@valias.test>",
                                                 *rcpts("alice@local.test")],
         smtpd_sasl_auth_enable="yes", smtpd_sender_login_maps="texthash:{tables}/logins",
         smtpd_sender_restrictions="reject_authenticated_sender_login_mismatch"),
    case("unauthenticated_sender_login_mismatch", [EHLO, "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test"),
                                                   "RSET", "MAIL FROM:<zz@ext.test>", *rcpts("alice@local.test")],
         smtpd_sasl_auth_enable="yes", smtpd_sender_login_maps="texthash:{tables}/logins",
         smtpd_sender_restrictions="reject_unauthenticated_sender_login_mismatch"),
    case("sasl_relay", [EHLO, MAIL, *rcpts("x@ext.test"), auth_plain("alice"), "RSET", auth_plain("alice"),
                        MAIL, *rcpts("x@ext.test", "u%x@relay.test", "x!u@relay.test", "u@x@relay.test"), "DATA"],
         smtpd_sasl_auth_enable="yes"),
    case("defer", [EHLO, MAIL, *rcpts("alice@local.test")], smtpd_recipient_restrictions="defer"),
    case("unknown_client_hostname", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_client_restrictions="reject_unknown_client_hostname"),
    case("unknown_reverse_client_hostname", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_client_restrictions="reject_unknown_reverse_client_hostname"),
    case("unlisted_sender", [EHLO, "MAIL FROM:<nobody@local.test>", *rcpts("alice@local.test"), "RSET",
                             "MAIL FROM:<no@vmbox.test>", *rcpts("alice@local.test"), "RSET",
                             "MAIL FROM:<alice@local.test>", *rcpts("alice@local.test")],
         smtpd_sender_restrictions="reject_unlisted_sender"),
    case("implicit_unlisted_sender", [EHLO, "MAIL FROM:<nobody@local.test>", *rcpts("alice@local.test")],
         smtpd_reject_unlisted_sender="yes"),
    case("unlisted_recipient_off", [EHLO, MAIL, *rcpts("nobody@local.test", "no@vmbox.test")],
         smtpd_reject_unlisted_recipient="no"),
    case("explicit_unlisted_recipient_first", [EHLO, MAIL, *rcpts("nobody@local.test", "x@ext.test")],
         smtpd_relay_restrictions="reject_unlisted_recipient, permit_mynetworks, reject_unauth_destination"),
    case("empty_local_recipient_maps", [EHLO, MAIL, *rcpts("nobody@local.test")], local_recipient_maps=""),
    case("relay_recipient_maps", [EHLO, MAIL, *rcpts("known@relay.test", "unknown@relay.test")],
         relay_recipient_maps="texthash:{tables}/relay_recipients"),
    case("unknown_local_recipient_reject_code", [EHLO, MAIL, *rcpts("nobody@local.test")],
         unknown_local_recipient_reject_code="450"),
    case("restriction_classes", [EHLO, MAIL, *rcpts("x@cls.relay.test", "x@len.relay.test")],
         smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}", **RELAY_WITH_RECIPIENT_CHECK),
    case("class_in_list", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_recipient_restrictions="lenient, strict"),
    case("soft_bounce", [EHLO, MAIL, *rcpts("x@ext.test", "nobody@local.test")], soft_bounce="yes",
         smtpd_relay_restrictions="reject_unauth_destination"),
    case("reject_code", [EHLO, MAIL, *rcpts("alice@local.test")], reject_code="550",
         smtpd_recipient_restrictions="reject"),
    case("recipient_before_relay", [EHLO, MAIL, *rcpts("x@bad.test", "x@ext.test")],
         smtpd_relay_before_recipient_restrictions="no",
         smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}"),
    case("mynetworks_wider", [EHLO, MAIL, *rcpts("x@ext.test")], mynetworks="127.0.0.0/8"),
    case("mynetworks_negated", [EHLO, MAIL, *rcpts("x@ext.test")], mynetworks="!127.0.0.2, 127.0.0.0/8"),
    case("mynetworks_table", [EHLO, MAIL, *rcpts("x@ext.test")], mynetworks="cidr:{tables}/mynets.cidr"),
    case("permit_auth_destination", [EHLO, MAIL, *rcpts("x@ext.test", "nobody@local.test", "x@relay.test")],
         smtpd_relay_restrictions="permit_auth_destination, reject"),
    case("permit_inet_interfaces", [EHLO, MAIL, *rcpts("x@ext.test")], source="127.0.0.1", mynetworks="",
         smtpd_relay_restrictions="permit_inet_interfaces, reject_unauth_destination"),
    case("no_percent_hack", [EHLO, MAIL, *rcpts("u%ext.test@local.test", "alice%x@local.test")],
         allow_percent_hack="no"),
    case("no_bangpath", [EHLO, MAIL, *rcpts("ext.test!u@local.test")], swap_bangpath="no"),
    case("no_dequoted_address", [EHLO, MAIL, *rcpts('"u@ext.test"@local.test', "u@ext.test@local.test")],
         resolve_dequoted_address="no"),
    case("restriction_names_ignore_case", [EHLO, MAIL, *rcpts("x@ext.test", "alice@local.test")],
         smtpd_relay_restrictions="PERMIT_MYNETWORKS, Reject_Unauth_Destination"),
    case("reject_footer", ["RCPT TO:<x@ext.test>", EHLO, MAIL, *rcpts("x@ext.test", "nobody@local.test"), "BOGUS"],
         smtpd_reject_footer="For help see http://help.roost.test/"),
    case("missing_table", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_sender_restrictions="check_sender_access hash:{tables}/no-such-table"),
    case("missing_recipient_table", [EHLO, MAIL, *rcpts("alice@local.test", "x@ext.test")], source="127.0.0.1",
         local_recipient_maps="hash:{tables}/no-such-table"),
    case("missing_login_table", [EHLO, "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test")],
         smtpd_sender_login_maps="hash:{tables}/no-such-table",
         smtpd_sender_restrictions="reject_sender_login_mismatch"),
    case("login_mismatch_without_sasl", [EHLO, "MAIL FROM:<al@valias.test>", *rcpts("alice@local.test")],
         smtpd_sender_login_maps="texthash:{tables}/logins",
         smtpd_sender_restrictions="reject_known_sender_login_mismatch, reject_authenticated_sender_login_mismatch,"
                                   " reject_unauthenticated_sender_login_mismatch"),
    case("access_defer_if_permit", [EHLO, MAIL, *rcpts("x@dip.relay.test", "x@ok.relay.test")],
         smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}", **RELAY_WITH_RECIPIENT_CHECK),
    case("access_defer_if_reject", [EHLO, MAIL, *rcpts("x@dir.relay.test", "x@ok.relay.test")],
         smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}, reject", **RELAY_WITH_RECIPIENT_CHECK),
    case("client_prefix_and_unknown_name", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_client_restrictions="check_client_access texthash:{tables}/prefix"),
    case("client_permit_does_not_skip_later_lists", [EHLO, "MAIL FROM:<a@bad.test>", *rcpts("alice@local.test")],
         smtpd_client_restrictions="permit", smtpd_sender_restrictions=f"check_sender_access {ACCESS_MAP}"),
    case("defer_if_permit_then_reject", [EHLO, MAIL, *rcpts("alice@local.test")],
         smtpd_client_restrictions="defer_if_permit", smtpd_recipient_restrictions="reject"),
    case("system_users", [EHLO, MAIL, *rcpts("root@local.test", "daemon@local.test", "postmaster@local.test",
                                             "no-such-user-xyz@local.test", "Root@local.test")],
         local_recipient_maps="proxy:unix:passwd.byname $alias_maps"),
    case("warn_if_reject_nested", [EHLO, MAIL, *rcpts("x@cls.relay.test", "x@restr.relay.test")],
         smtpd_recipient_restrictions=f"warn_if_reject, check_recipient_access {ACCESS_MAP}, permit",
         **RELAY_WITH_RECIPIENT_CHECK),
    case("message_actions", [EHLO, MAIL, *rcpts(*(f"x@{d}.relay.test" for d in (
        "perm", "filt", "redir", "prep", "bcc", "info", "warn2"))), "DATA"],
         smtpd_recipient_restrictions=f"check_recipient_access {ACCESS_MAP}, reject", **RELAY_WITH_RECIPIENT_CHECK),
    case("command_order", ["RCPT TO:<alice@local.test>", "DATA", EHLO, MAIL, MAIL, "DATA", "RSET", "DATA"]),
]


@pytest.fixture(scope="module")
def matrix():
    if os.geteuid() != 0:
        pytest.fail("the restriction matrix needs root: Postfix's master starts as root", pytrace=False)
    for tool in ("postfix", "postmap"):
        require_tool(tool)
    instance = Matrix(CASES, MAIN_CF, TABLES, hash_tables=("access",),
                      target=os.environ.get("ROOST_POLICY_TARGET", "smtpd"))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def test_matrix_has_at_least_40_cases():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("item", CASES, ids=[c.name for c in CASES])
def test_same_replies_and_log_lines_as_postfix(matrix, item):
    """Every reply, then every policy log line (`NOQUEUE: reject: RCPT from ...`,
    `reject_warning:`, `hold:`, `discard:`, `warn:`, restriction warnings)."""
    matrix.compare(item)
