"""Client names from /etc/hosts, as Postfix's getnameinfo()/getaddrinfo() find them first.

Postfix's smtpd (smtpd_peername_lookup = yes) asks the system resolver, which reads
/etc/hosts before DNS (nsswitch `hosts: files dns`): a loopback client is logged as
`localhost[127.0.0.1]` without any DNS query. `HostsTable.parse(text)` reads hosts(5) lines
(`address name [aliases...]`, `#` comments); `name_of(address)` is the first name listed for
the address (getnameinfo's answer) and `addresses_of(name)` the forward check.

Invariants: pure (the caller reads the file); malformed lines are skipped.
Security: names from this file are trusted as the administrator's; nothing from the client.
"""

from __future__ import annotations

import ipaddress


class HostsTable:
    def __init__(self, names: dict[str, str], addresses: dict[str, set[str]]):
        self._names = names
        self._addresses = addresses

    @classmethod
    def parse(cls, text: str) -> "HostsTable":
        names: dict[str, str] = {}
        addresses: dict[str, set[str]] = {}
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            try:
                address = str(ipaddress.ip_address(fields[0]))
            except ValueError:
                continue
            names.setdefault(address, fields[1].lower())
            for name in fields[1:]:
                addresses.setdefault(name.lower(), set()).add(address)
        return cls(names, addresses)

    def name_of(self, address: str) -> str | None:
        try:
            return self._names.get(str(ipaddress.ip_address(address)))
        except ValueError:
            return None

    def addresses_of(self, name: str) -> set[str]:
        return self._addresses.get(name.lower().rstrip("."), set())
