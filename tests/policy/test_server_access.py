"""check_*_{a,mx,ns}_access against a FakeResolver: which hosts are consulted, the host then
address search, OK refused, DUNNO exempts, replies naming the original subject."""

from __future__ import annotations

from tests.policy.helpers import policy_from, rcpt, text_of

ZONE = {
    ("ext.example", "MX"): ["10 mx1.ext.example", "20 mx2.hoster.example"],
    ("mx1.ext.example", "A"): ["192.0.2.10"],
    ("mx2.hoster.example", "A"): ["10.1.2.3"],
    ("nomx.example", "A"): ["198.51.100.7"],
    ("sub.zone.example", "A"): ["198.51.100.8"],
    ("zone.example", "NS"): ["ns1.bad-dns.example"],
    ("ns1.bad-dns.example", "A"): ["203.0.113.53"],
    ("client.example", "A"): ["192.0.2.77"],
}


def test_sender_mx_access_by_address(tmp_path):
    (tmp_path / "mx.cidr").write_text("10.0.0.0/8 REJECT mail server in private network\n")
    policy = policy_from(f"smtpd_sender_restrictions = check_sender_mx_access cidr:{tmp_path / 'mx.cidr'}\n", ZONE)
    assert text_of(rcpt(policy)) == ("554 5.7.1 <a@ext.example>: Sender address rejected: "
                                     "mail server in private network")
    assert rcpt(policy, sender="a@nomx.example").reply is None


def test_implicit_mx_and_host_names(tmp_path):
    (tmp_path / "hosts").write_text("nomx.example REJECT implicit mx\nhoster.example 550 5.7.0 bad hoster\n")
    policy = policy_from(f"smtpd_sender_restrictions = check_sender_mx_access texthash:{tmp_path / 'hosts'}\n", ZONE)
    assert text_of(rcpt(policy, sender="a@nomx.example")) == (
        "554 5.7.1 <a@nomx.example>: Sender address rejected: implicit mx")
    assert text_of(rcpt(policy)) == "550 5.7.0 <a@ext.example>: Sender address rejected: bad hoster"


def test_ok_is_not_allowed_and_dunno_exempts(tmp_path):
    (tmp_path / "hosts").write_text("mx1.ext.example OK\nmx2.hoster.example DUNNO\n10.1.2.3 REJECT\n")
    policy = policy_from(f"smtpd_sender_restrictions = check_sender_mx_access texthash:{tmp_path / 'hosts'}, reject\n",
                         ZONE)
    result = rcpt(policy)
    assert text_of(result) == "554 5.7.1 <a@ext.example>: Sender address rejected: Access denied"
    assert any("use of OK in check_sender_mx_access is not allowed" in text for _, text in policy.log.lines)


def test_ns_access_walks_up_to_the_parent(tmp_path):
    (tmp_path / "ns").write_text("203.0.113 REJECT bad DNS hoster\n")
    policy = policy_from(f"smtpd_relay_restrictions = check_recipient_ns_access texthash:{tmp_path / 'ns'},"
                         " permit_mynetworks, reject_unauth_destination\n", ZONE)
    assert text_of(rcpt(policy, recipient="x@sub.zone.example")) == (
        "554 5.7.1 <x@sub.zone.example>: Recipient address rejected: bad DNS hoster")


def test_client_and_helo_a_access(tmp_path):
    (tmp_path / "a").write_text("192.0.2.77 REJECT listed address\n")
    client = policy_from(f"smtpd_client_restrictions = check_client_a_access texthash:{tmp_path / 'a'}\n", ZONE)
    assert rcpt(client).reply is None  # the client name is "unknown": nothing to look up
    assert text_of(rcpt(client, client_name="client.example")) == (
        "554 5.7.1 <client.example[192.0.2.5]>: Client host rejected: listed address")
    helo = policy_from(f"smtpd_helo_restrictions = check_helo_a_access texthash:{tmp_path / 'a'}\n", ZONE)
    assert text_of(rcpt(helo)) == "554 5.7.1 <client.example>: Helo command rejected: listed address"


MX_BACKUP = "smtpd_relay_restrictions = permit_mynetworks, permit_mx_backup, reject_unauth_destination\n"


def test_permit_mx_backup():
    zone = {("backup.example", "MX"): ["10 primary.example", "20 us.example"], ("primary.example", "A"): ["192.0.2.1"],
            ("us.example", "A"): ["127.0.0.1"],
            ("best.example", "MX"): ["5 us.example", "10 primary.example"],
            ("other.example", "MX"): ["10 primary.example"]}
    policy = policy_from(MX_BACKUP, zone)
    assert rcpt(policy, recipient="x@backup.example").reply is None
    assert rcpt(policy, recipient="x@best.example").reply.code == 554    # primary MX: not a backup
    assert rcpt(policy, recipient="x@other.example").reply.code == 554   # not an MX host at all
    assert rcpt(policy, recipient="x%y@backup.example").reply.code == 554  # routed: never
    restricted = policy_from(MX_BACKUP + "permit_mx_backup_networks = 198.51.100.0/24\n", zone)
    assert rcpt(restricted, recipient="x@backup.example").reply.code == 554
    allowed = policy_from(MX_BACKUP + "permit_mx_backup_networks = 192.0.2.0/24\n", zone)
    assert rcpt(allowed, recipient="x@backup.example").reply is None
