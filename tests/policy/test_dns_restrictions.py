"""DNS-based restrictions against a FakeResolver (no network): reject_rbl_client,
reject_rhsbl_*, reject_unknown_{sender,recipient}_domain (RFC 5321 §5.1 MX then A/AAAA,
RFC 7505 null MX), reject_unknown_helo_hostname, and the tempfail actions."""

from __future__ import annotations

from tests.policy.helpers import policy_from, rcpt, text_of

RBL = "smtpd_client_restrictions = reject_rbl_client bl.test\n"


def test_rbl_listed_with_reason():
    policy = policy_from(RBL, {("5.2.0.192.bl.test", "A"): ["127.0.0.2"],
                               ("5.2.0.192.bl.test", "TXT"): ["listed for spam"]})
    assert text_of(rcpt(policy)) == ("554 5.7.1 Service unavailable; Client host [192.0.2.5] blocked using "
                                     "bl.test; listed for spam")


def test_rbl_listed_without_txt_and_code_parameter():
    policy = policy_from(RBL + "maps_rbl_reject_code = 550\n", {("5.2.0.192.bl.test", "A"): ["127.0.0.2"]})
    assert text_of(rcpt(policy)) == "550 5.7.1 Service unavailable; Client host [192.0.2.5] blocked using bl.test"


def test_rbl_not_listed_filtered_or_failing_lets_mail_through():
    assert rcpt(policy_from(RBL)).reply is None
    filtered = policy_from("smtpd_client_restrictions = reject_rbl_client bl.test=127.0.0.[3..5]\n",
                           {("5.2.0.192.bl.test", "A"): ["127.0.0.2"]})
    assert rcpt(filtered).reply is None
    matching = policy_from("smtpd_client_restrictions = reject_rbl_client bl.test=127.0.0.[1..3]\n",
                           {("5.2.0.192.bl.test", "A"): ["127.0.0.2"]})
    assert rcpt(matching).reply.code == 554
    failing = policy_from(RBL, {("5.2.0.192.bl.test", "A"): "tempfail"})
    result = rcpt(failing)
    assert result.reply is None
    assert any("RBL lookup error" in text for _, text in failing.log.lines)


def test_rbl_ipv6_query_name():
    policy = policy_from(RBL, {("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test", "A"):
                               ["127.0.0.2"]})
    assert rcpt(policy, client_address="2001:db8::1").reply.code == 554


def test_rhsbl_sender():
    policy = policy_from("smtpd_sender_restrictions = reject_rhsbl_sender dbl.test\n",
                         {("ext.example.dbl.test", "A"): ["127.0.1.2"]})
    assert text_of(rcpt(policy)) == ("554 5.7.1 Service unavailable; Sender address [ext.example] blocked "
                                     "using dbl.test")


SENDER_DOMAIN = "smtpd_sender_restrictions = reject_unknown_sender_domain\n"
RECIPIENT_DOMAIN = ("smtpd_relay_restrictions = permit_mynetworks, reject_unknown_recipient_domain,"
                    " reject_unauth_destination\n")


def test_unknown_sender_domain():
    assert text_of(rcpt(policy_from(SENDER_DOMAIN))) == (
        "450 4.1.8 <a@ext.example>: Sender address rejected: Domain not found")
    assert rcpt(policy_from(SENDER_DOMAIN, {("ext.example", "MX"): ["10 mx.ext.example"]})).reply is None
    assert rcpt(policy_from(SENDER_DOMAIN, {("ext.example", "AAAA"): ["2001:db8::5"]})).reply is None
    code = policy_from(SENDER_DOMAIN + "unknown_address_reject_code = 550\n")
    assert text_of(rcpt(code)) == "550 5.1.8 <a@ext.example>: Sender address rejected: Domain not found"


def test_null_mx():
    zone = {("ext.example", "MX"): ["0 ."]}
    assert text_of(rcpt(policy_from(SENDER_DOMAIN, zone))) == (
        "550 5.7.27 <a@ext.example>: Sender address rejected: Domain ext.example does not accept mail (nullMX)")
    relay = policy_from(RECIPIENT_DOMAIN, zone)
    assert text_of(rcpt(relay, recipient="x@ext.example", client_address="127.0.0.2")) == (
        "556 5.1.10 <x@ext.example>: Recipient address rejected: Domain ext.example does not accept mail (nullMX)")


def test_unknown_recipient_domain_and_final_destinations_skip_dns():
    policy = policy_from(RECIPIENT_DOMAIN)
    assert text_of(rcpt(policy, recipient="x@nowhere.example")) == (
        "450 4.1.2 <x@nowhere.example>: Recipient address rejected: Domain not found")
    policy.resolver.queries.clear()
    assert rcpt(policy, recipient="alice@local.test").reply is None
    assert policy.resolver.queries == []


def test_tempfail_defers_only_if_otherwise_permitted():
    zone = {("ext.example", "MX"): "tempfail", ("ext.example", "A"): "tempfail", ("ext.example", "AAAA"): "tempfail"}
    policy = policy_from(SENDER_DOMAIN, zone)
    assert text_of(rcpt(policy)) == "450 4.1.8 <a@ext.example>: Sender address rejected: Domain not found"
    rejecting = policy_from(SENDER_DOMAIN + "smtpd_recipient_restrictions = reject\n", zone)
    assert text_of(rcpt(rejecting)) == "554 5.7.1 <alice@local.test>: Recipient address rejected: Access denied"
    ignoring = policy_from(SENDER_DOMAIN + "unknown_address_tempfail_action = dunno\n", zone)
    assert rcpt(ignoring).reply is None


def test_unknown_helo_hostname():
    helo = "smtpd_helo_restrictions = reject_unknown_helo_hostname\n"
    assert text_of(rcpt(policy_from(helo), helo_name="nowhere.example")) == (
        "450 4.7.1 <nowhere.example>: Helo command rejected: Host not found")
    assert rcpt(policy_from(helo, {("client.example", "A"): ["192.0.2.5"]})).reply is None
    assert rcpt(policy_from(helo), helo_name="[192.0.2.5]").reply is None


def test_unknown_client_hostnames_use_the_state_names():
    policy = policy_from("smtpd_client_restrictions = reject_unknown_client_hostname\n")
    assert text_of(rcpt(policy)) == "450 4.7.25 Client host rejected: cannot find your hostname, [192.0.2.5]"
    assert rcpt(policy, client_name="mail.ext.example").reply is None
    reverse = policy_from("smtpd_client_restrictions = reject_unknown_reverse_client_hostname\n"
                          "unknown_client_reject_code = 550\n")
    assert text_of(rcpt(reverse)) == "550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.5]"
    assert rcpt(reverse, reverse_client_name="ptr.ext.example").reply is None


def test_dns_allowlists_permit_but_never_relay():
    zone = {("5.2.0.192.wl.test", "A"): ["127.0.10.2"], ("mail.ext.example.hwl.test", "A"): ["127.0.0.2"]}
    policy = policy_from("smtpd_relay_restrictions = permit_dnswl_client wl.test, permit_mynetworks,"
                         " reject_unauth_destination\nsmtpd_recipient_restrictions = permit_dnswl_client wl.test,"
                         " reject\n", zone)
    assert rcpt(policy).reply is None                                   # listed: permitted
    assert rcpt(policy, client_address="192.0.2.6").reply.code == 554   # not listed: reject
    assert rcpt(policy, recipient="x@ext.example").reply.code == 554    # never an open relay
    names = policy_from("smtpd_recipient_restrictions = permit_rhswl_client hwl.test, reject\n", zone)
    assert rcpt(names, client_name="mail.ext.example").reply is None
    assert rcpt(names).reply.code == 554


def test_sleep_pauses_then_goes_on():
    import time
    policy = policy_from("smtpd_client_restrictions = sleep 1, reject\n")
    started = time.monotonic()
    assert rcpt(policy).reply.code == 554
    assert time.monotonic() - started >= 1
    bad = policy_from("smtpd_client_restrictions = sleep soon\n")
    assert str(rcpt(bad).reply) == "451 4.3.5 Server configuration error"
