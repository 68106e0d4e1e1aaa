"""roost.smtpd.hosts: /etc/hosts names for smtpd's client lookup (hosts(5) syntax)."""

from roost.smtpd.hosts import HostsTable

HOSTS = """\
# comment
127.0.0.1 localhost
127.0.0.1 vm other  # a second line for the same address keeps the first name
::1 ip6-localhost ip6-loopback
192.0.2.7 Mail.Example.TEST mail
not-an-address name
10.0.0.1
"""


def test_names_and_forward_addresses():
    table = HostsTable.parse(HOSTS)
    assert table.name_of("127.0.0.1") == "localhost"
    assert table.name_of("0:0:0:0:0:0:0:1") == "ip6-localhost"
    assert table.name_of("192.0.2.7") == "mail.example.test"
    assert table.name_of("10.0.0.1") is None and table.name_of("garbage") is None
    assert table.addresses_of("VM") == {"127.0.0.1"}
    assert table.addresses_of("mail.example.test.") == {"192.0.2.7"}
    assert table.addresses_of("name") == set()
