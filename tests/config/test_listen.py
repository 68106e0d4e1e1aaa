"""listen.py: master.cf inet service names, inet_interfaces and inet_protocols to endpoints."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.config import listen
from roost.config.diagnostics import Diagnostics, Severity
from roost.config.listen import (
    Endpoint, InetServiceName, duplicate_endpoints, inet_endpoints, service_port, split_inet_service,
)
from roost.config.master_cf import active_services, parse_master_cf
from tests.conftest import DATA

V4, V6 = socket.AF_INET, socket.AF_INET6
FILE = "/etc/roost/master.cf"


def fake_dns(host, families):
    """localhost has both loopbacks; mail.example has one public address per family."""
    table = {"localhost": [(V4, "127.0.0.1"), (V6, "::1")],
             "mail.example": [(V4, "192.0.2.10"), (V6, "2001:db8::10")]}
    return table.get(host, [])


def endpoints(name, interfaces="all", protocols="all", resolver=fake_dns):
    diags = Diagnostics()
    found = inet_endpoints(name, interfaces, protocols, diags, FILE, 7, resolver=resolver)
    return found, [(d.severity, d.line, d.message) for d in diags.items]


# ------------------------------------------------------------ service names


@pytest.mark.parametrize("name, host, port", [
    ("smtp", "", "smtp"),
    ("25", "", "25"),
    (":2528", "", "2528"),
    ("127.0.0.1:2525", "127.0.0.1", "2525"),
    ("127.0.0.1:submission", "127.0.0.1", "submission"),
    ("[::1]:2526", "::1", "2526"),
    ("::1:2526", "::1", "2526"),  # unbracketed: split at the last colon, as Postfix does
    ("[IPv6:::1]:25", "::1", "25"),
    ("[127.0.0.1]:2529", "127.0.0.1", "2529"),
    ("localhost:2527", "localhost", "2527"),
    ("mail.example:smtps", "mail.example", "smtps"),
])
def test_service_name_forms(name, host, port):
    assert split_inet_service(name) == InetServiceName(host, port)


@pytest.mark.parametrize("name, error", [
    ("[::1", 'missing "]"'),
    ("[::1]x", 'garbage after "]"'),
    ("[::1]", "missing service information"),
    ("[::1]:", "missing service information"),
    ("127.0.0.1:", "missing service information"),
    ("[]:25", "missing host information"),
    ("[IPv6:1.2.3.4]:25", "malformed IPv6 address"),
    ("25x", "garbage after numerical service"),
    ("a%b:25", "valid hostname or network address required"),
    ("-bad-:25", "valid hostname or network address required"),
])
def test_malformed_service_names(name, error):
    assert split_inet_service(name) == error
    found, diags = endpoints(name)
    assert found == () and diags == [(Severity.FATAL, 7, f'{error} in "{name}"')]


@pytest.mark.parametrize("name", ["smtp", "submission", "submissions", "smtps", "imap", "pop3s"])
def test_symbolic_ports_come_from_the_services_database(name):
    try:
        expected = socket.getservbyname(name, "tcp")
    except OSError:
        expected = listen.WELL_KNOWN_TCP_PORTS[name]
    assert service_port(name) == expected


def test_mail_ports_have_their_standard_numbers():
    assert [service_port(n) for n in ("smtp", "submission", "smtps", "submissions")] == [25, 587, 465, 465]


def test_builtin_table_when_the_services_database_lacks_a_name(monkeypatch):
    def no_services(name, proto):
        raise OSError("service/proto not found")

    monkeypatch.setattr(socket, "getservbyname", no_services)
    assert service_port("smtps") == 465 and service_port("submission") == 587
    assert service_port("no-such-service") is None


@pytest.mark.parametrize("name, message", [
    ("no-such-service", "unknown service: no-such-service/tcp"),
    ("127.0.0.1:no-such-service", "unknown service: no-such-service/tcp"),
    ("70000", "bad port number: 70000"),
    ("0", "bad port number: 0"),
    ("127.0.0.1:99999", "bad port number: 99999"),
])
def test_unknown_services_and_bad_ports_are_fatal_with_the_line(name, message):
    found, diags = endpoints(name)
    assert found == () and diags == [(Severity.FATAL, 7, message)]


# ------------------------------------------------------------ interfaces x protocols


@pytest.mark.parametrize("interfaces, protocols, expected", [
    ("all", "all", [("0.0.0.0", V4), ("::", V6)]),
    ("all", "ipv4", [("0.0.0.0", V4)]),
    ("all", "ipv6", [("::", V6)]),
    ("all", "ipv4, ipv6", [("0.0.0.0", V4), ("::", V6)]),
    ("ALL", "ipv4", [("0.0.0.0", V4)]),
    ("loopback-only", "all", [("127.0.0.1", V4), ("::1", V6)]),
    ("loopback-only", "ipv4", [("127.0.0.1", V4)]),
    ("loopback-only", "ipv6", [("::1", V6)]),
    ("localhost", "all", [("127.0.0.1", V4), ("::1", V6)]),
    ("localhost", "ipv4", [("127.0.0.1", V4)]),
    ("127.0.0.1, [::1]", "all", [("127.0.0.1", V4), ("::1", V6)]),
    ("127.0.0.1 ::1", "all", [("127.0.0.1", V4), ("::1", V6)]),
    (("127.0.0.1", "::1"), ("all",), [("127.0.0.1", V4), ("::1", V6)]),  # Settings.list() tuples
    ("127.0.0.1, localhost", "ipv4", [("127.0.0.1", V4)]),  # duplicates collapse
    ("mail.example, 127.0.0.1", "all", [("192.0.2.10", V4), ("2001:db8::10", V6), ("127.0.0.1", V4)]),
    ("192.0.2.10", "ipv4", [("192.0.2.10", V4)]),
])
def test_bare_port_binds_every_inet_interfaces_address(interfaces, protocols, expected):
    for name in ("smtp", "25", ":25"):
        found, diags = endpoints(name, interfaces, protocols)
        assert diags == []
        assert found == tuple(Endpoint(host, 25, family) for host, family in expected)


@pytest.mark.parametrize("name, protocols, expected", [
    ("127.0.0.1:2525", "all", [("127.0.0.1", V4)]),
    ("[::1]:2526", "all", [("::1", V6)]),
    ("[::1]:2526", "ipv6", [("::1", V6)]),
    ("localhost:2527", "all", [("127.0.0.1", V4), ("::1", V6)]),
    ("localhost:2527", "ipv6", [("::1", V6)]),
    ("mail.example:smtp", "ipv4", [("192.0.2.10", V4)]),
])
def test_host_port_binds_that_host_only(name, protocols, expected):
    for interfaces in ("all", "loopback-only", "192.0.2.99"):
        found, diags = endpoints(name, interfaces, protocols)
        assert diags == []
        port = service_port(split_inet_service(name).port)
        assert found == tuple(Endpoint(host, port, family) for host, family in expected)


def test_real_localhost_lookup_matches_getaddrinfo():
    wanted = []
    for family, *_rest, sockaddr in socket.getaddrinfo("localhost", None, 0, socket.SOCK_STREAM):
        if (family, sockaddr[0]) not in wanted:
            wanted.append((family, sockaddr[0]))
    diags = Diagnostics()
    found = inet_endpoints("localhost:2527", "all", "all", diags, FILE, 1)
    assert diags.items == []
    assert [(e.family, e.host) for e in found] == wanted


def test_ipv6_address_when_only_ipv4_is_enabled():
    found, diags = endpoints("[::1]:2526", protocols="ipv4")
    assert found == ()
    assert diags == [(Severity.FATAL, 7, "bad hostname or network address: [::1]:2526 "
                                         "(IPv6 is disabled by inet_protocols)")]
    found, diags = endpoints("smtp", interfaces="127.0.0.1, ::1", protocols="ipv4")
    assert found == (Endpoint("127.0.0.1", 25, V4),)
    assert diags == [(Severity.FATAL, 7, "config variable inet_interfaces: host not found: ::1 "
                                         "(IPv6 is disabled by inet_protocols)")]
    found, diags = endpoints("127.0.0.1:25", protocols="ipv6")
    assert found == () and "IPv4 is disabled" in diags[0][2]


def test_unresolvable_names_are_fatal():
    found, diags = endpoints("smtp", interfaces="nowhere.invalid")
    assert found == () and diags == [
        (Severity.FATAL, 7, "config variable inet_interfaces: host not found: nowhere.invalid")]
    found, diags = endpoints("nowhere.invalid:25")
    assert found == () and diags == [
        (Severity.FATAL, 7, "bad hostname or network address: nowhere.invalid:25")]


def test_bad_inet_protocols_and_inet_interfaces():
    found, diags = endpoints("smtp", protocols="ipv4, ipv5")
    assert found == (Endpoint("0.0.0.0", 25, V4),)
    assert diags == [(Severity.FATAL, 7, 'unknown inet_protocols value "ipv5" in "ipv4 ipv5"')]
    found, diags = endpoints("smtp", interfaces="all, 127.0.0.1")
    assert diags[0] == (Severity.FATAL, 7, 'inet_interfaces: "all" must be the only value')
    found, diags = endpoints("smtp", interfaces="")
    assert found == () and diags == [(Severity.FATAL, 7, "no valid IP address found: smtp")]


def test_no_protocols_disables_inet_services_with_a_warning():
    found, diags = endpoints("smtp", protocols="")
    assert found == ()
    assert [(sev, line) for sev, line, _ in diags] == [(Severity.WARNING, 7)]
    assert "all network protocols are disabled" in diags[0][2]


def test_endpoint_text():
    assert str(Endpoint("127.0.0.1", 25, V4)) == "127.0.0.1:25"
    assert str(Endpoint("::1", 25, V6)) == "[::1]:25"
    assert Endpoint("::", 25, V6).is_wildcard and not Endpoint("::1", 25, V6).is_wildcard


# ------------------------------------------------------------ duplicate listeners


def test_duplicate_listener_port_is_fatal_and_names_both_places():
    diags = duplicate_endpoints([
        (Endpoint("0.0.0.0", 2525, V4), "/etc/roost/master.cf", 12),
        (Endpoint("127.0.0.1", 2525, V4), "/etc/roost/master.cf", 20),
    ])
    (diagnostic,) = diags.items
    assert diagnostic.severity is Severity.FATAL
    assert (diagnostic.file, diagnostic.line) == ("/etc/roost/master.cf", 20)
    assert diagnostic.message == ("duplicate listener port 127.0.0.1:2525 "
                                  "(already used by 0.0.0.0:2525 at /etc/roost/master.cf, line 12)")


@pytest.mark.parametrize("first, second, collide", [
    (Endpoint("127.0.0.1", 25, V4), Endpoint("127.0.0.1", 25, V4), True),
    (Endpoint("127.0.0.1", 25, V4), Endpoint("0.0.0.0", 25, V4), True),
    (Endpoint("::", 25, V6), Endpoint("::1", 25, V6), True),
    (Endpoint("0.0.0.0", 25, V4), Endpoint("::", 25, V6), False),  # separate v6-only sockets
    (Endpoint("127.0.0.1", 25, V4), Endpoint("127.0.0.2", 25, V4), False),
    (Endpoint("127.0.0.1", 25, V4), Endpoint("127.0.0.1", 26, V4), False),
    (("inet", "127.0.0.1", 25), ("inet", "0.0.0.0", 25), True),  # load.py's tuple form
    (("inet", "[::1]", 25), ("inet", "::", 25), True),
    (("inet", "127.0.0.1", 25), Endpoint("127.0.0.1", 25, V4), True),
    (("unix", "/run/roost/auth"), ("unix", "/run/roost/auth"), True),
    (("unix", "/run/roost/auth"), ("unix", "/run/roost/lmtp"), False),
])
def test_collisions(first, second, collide):
    diags = Diagnostics()
    returned = duplicate_endpoints([(first, "a.cf", 1), (second, "b.cf", 2)], diags)
    assert returned is diags
    assert [(d.file, d.line) for d in diags.items] == ([("b.cf", 2)] if collide else [])


def test_master_cf_services_that_share_a_port(tmp_path):
    path = tmp_path / "master.cf"
    path.write_text("smtp inet n - n - - smtpd\n127.0.0.1:smtp inet n - n - - smtpd\n"
                    "127.0.0.1:2525 inet n - n - - smtpd\n")
    diags = Diagnostics()
    listeners = []
    for service in active_services(parse_master_cf(str(path), diags)):
        for endpoint in inet_endpoints(service.name, "all", "ipv4", diags, service.file, service.line):
            listeners.append((endpoint, service.file, service.line))
    duplicate_endpoints(listeners, diags)
    assert [(d.severity, d.line) for d in diags.items] == [(Severity.FATAL, 2)]
    assert "duplicate listener port 127.0.0.1:25" in diags.items[0].message
    assert f"{path}, line 1" in diags.items[0].message


def test_fixture_inet_forms_bind_where_postfix_would():
    diags = Diagnostics()
    services = active_services(parse_master_cf(str(DATA / "mastercf" / "inet_forms.master.cf"), diags))
    bound = {}
    for service in services:
        if service.type == "inet":
            bound[service.name] = inet_endpoints(service.name, "loopback-only", "all", diags,
                                                 service.file, service.line, resolver=fake_dns)
    assert not diags.has_fatal(), [str(d) for d in diags.items]
    assert bound["smtp"] == (Endpoint("127.0.0.1", 25, V4), Endpoint("::1", 25, V6))
    assert bound["[::1]:2526"] == (Endpoint("::1", 2526, V6),)
    assert bound[":2528"] == (Endpoint("127.0.0.1", 2528, V4), Endpoint("::1", 2528, V6))
    assert bound["127.0.0.1:submission"] == (Endpoint("127.0.0.1", 587, V4),)
    assert bound["submissions"][0].port == 465
    flat = [(e, service.file, service.line) for service in services if service.name in bound
            for e in bound[service.name]]
    assert duplicate_endpoints(flat).items == []


@settings(max_examples=300, deadline=None)
@given(name=st.text(max_size=40), interfaces=st.text(max_size=40), protocols=st.text(max_size=20))
def test_garbage_gives_diagnostics_never_exceptions(name, interfaces, protocols):
    diags = Diagnostics()
    found = inet_endpoints(name, interfaces, protocols, diags, FILE, 3, resolver=fake_dns)
    assert all(1 <= e.port <= 65535 for e in found)
    assert found or diags.items
    duplicate_endpoints([(e, FILE, 3) for e in found] * 2, diags)
