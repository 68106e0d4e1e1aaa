"""Where an inet service listens: master.cf service names, inet_interfaces, inet_protocols.

Implements master(5) "Service name" for type inet (`port`, `service`, `host:port`,
`[host]:port`, `[ipv6:addr]:port`, `:port`) and postconf(5) `inet_interfaces` (`all`,
`loopback-only`, host names and addresses, optionally in `[]`) and `inet_protocols` (`all`,
`ipv4`, `ipv6`, lists of these; an empty value disables every inet service). A service name
becomes a port through the services database (getservbyname(3), /etc/services) and, when that
lacks it, a built-in table of the well-known mail ports.

Invariants: nothing here raises on bad input or opens a socket; problems become Diagnostics
carrying the caller's file and line, worded like Postfix's master(8) messages. Endpoints come
out deduplicated, in configuration order.
Security: only bind addresses are computed here; `host:port` never widens to a wildcard, and
two listeners on one address and port (a wildcard covers every address of its family) are fatal.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics, excerpt

# Used when the services database lacks a name (minimal containers ship no /etc/services).
WELL_KNOWN_TCP_PORTS = {
    "smtp": 25, "submission": 587, "submissions": 465, "smtps": 465, "ssmtp": 465, "urd": 465,
    "lmtp": 24, "pop3": 110, "pop-3": 110, "pop3s": 995, "imap": 143, "imap2": 143,
    "imaps": 993, "qmqp": 628, "sieve": 4190,
}

INET_INTERFACES_ALL = "all"
INET_INTERFACES_LOOPBACK = "loopback-only"
INET_PROTOCOL_NAMES = {"all": (socket.AF_INET, socket.AF_INET6), "ipv4": (socket.AF_INET,),
                       "ipv6": (socket.AF_INET6,)}
# postconf(5) list separators for these parameters: commas and whitespace.
LIST_SEPARATORS = re.compile(r"[,\s]+")
_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\Z")
_WILDCARD = {socket.AF_INET: "0.0.0.0", socket.AF_INET6: "::"}
_LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}

Resolver = Callable[[str, Sequence[socket.AddressFamily]], list[tuple[socket.AddressFamily, str]]]


@dataclass(frozen=True, order=True)
class Endpoint:
    """One TCP address to bind: host is a numeric address ("0.0.0.0"/"::" for every interface)."""

    host: str
    port: int
    family: socket.AddressFamily

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.host}:{self.port}"

    @property
    def is_wildcard(self) -> bool:
        return self.host == _WILDCARD.get(self.family)


@dataclass(frozen=True)
class InetServiceName:
    """A master.cf inet service name split into its parts; host "" means inet_interfaces."""

    host: str
    port: str


def split_inet_service(name: str) -> InetServiceName | str:
    """Split `[host:]port` as master(8) does; an error text (str) on malformed input."""
    text = name
    if text.startswith("["):
        closing = text.find("]")
        if closing < 0:
            return 'missing "]"'
        host, rest = text[1:closing], text[closing + 1:]
        if rest and not rest.startswith(":"):
            return 'garbage after "]"'
        if host[:5].lower() == "ipv6:":
            host = host[5:]
            if not _is_ipv6(host):
                return "malformed IPv6 address"
        port = rest[1:]
        if not host:
            return "missing host information"
    elif ":" in text:
        host, _, port = text.rpartition(":")
    else:
        host, port = "", text
    if not port:
        return "missing service information"
    if host and not (_is_address(host) or _is_hostname(host)):
        return "valid hostname or network address required"
    if port[0].isascii() and port[0].isdigit() and not (port.isascii() and port.isdigit()):
        return "garbage after numerical service"
    return InetServiceName(host, port)


def service_port(port: str) -> int | None:
    """TCP port of a numeric or symbolic service; None when unknown or out of range."""
    if port.isascii() and port.isdigit():
        number = int(port)
        return number if 0 < number <= 65535 else None
    if not _is_hostname(port):  # keeps NULs and odd text away from the C library
        return None
    try:
        return socket.getservbyname(port, "tcp")
    except (OSError, UnicodeError):
        return WELL_KNOWN_TCP_PORTS.get(port)


def inet_families(inet_protocols: str | Sequence[str], diags: Diagnostics, file: str,
                  line: int | None) -> tuple[socket.AddressFamily, ...]:
    """The address families enabled by `inet_protocols`, in IPv4, IPv6 order."""
    enabled: set[socket.AddressFamily] = set()
    for word in _words(inet_protocols):
        if word in INET_PROTOCOL_NAMES:
            enabled.update(INET_PROTOCOL_NAMES[word])
        else:
            diags.fatal(file, line, f'unknown inet_protocols value "{excerpt(word)}" in '
                                    f'"{excerpt(" ".join(_words(inet_protocols)))}"')
    return tuple(f for f in (socket.AF_INET, socket.AF_INET6) if f in enabled)


def interface_addresses(inet_interfaces: str | Sequence[str], families: Sequence[socket.AddressFamily],
                        diags: Diagnostics, file: str, line: int | None, *,
                        resolver: Resolver | None = None) -> tuple[tuple[socket.AddressFamily, str], ...]:
    """Addresses a bare-port service binds: wildcards for `all`, else each listed address."""
    words = _words(inet_interfaces)
    keywords = [w.lower() for w in words]
    if keywords == [INET_INTERFACES_ALL]:
        return tuple((f, _WILDCARD[f]) for f in families)
    if keywords == [INET_INTERFACES_LOOPBACK]:
        return tuple((f, _LOOPBACK[f]) for f in families)
    found: list[tuple[socket.AddressFamily, str]] = []
    for word in words:
        if word.lower() in (INET_INTERFACES_ALL, INET_INTERFACES_LOOPBACK):
            diags.fatal(file, line, f'inet_interfaces: "{word}" must be the only value')
            continue
        addresses = _host_addresses(_unbracket(word), families, resolver)
        if isinstance(addresses, str):
            diags.fatal(file, line, f"config variable inet_interfaces: host not found: "
                                    f"{excerpt(word)}{addresses}")
            continue
        found.extend(a for a in addresses if a not in found)
    return tuple(found)


def inet_endpoints(service_name: str, inet_interfaces: str | Sequence[str],
                   inet_protocols: str | Sequence[str], diags: Diagnostics, file: str,
                   line: int | None, *, resolver: Resolver | None = None) -> tuple[Endpoint, ...]:
    """Every address and port the inet service `service_name` listens on (master(5))."""
    parsed = split_inet_service(service_name)
    if isinstance(parsed, str):
        diags.fatal(file, line, f'{parsed} in "{excerpt(service_name)}"')
        return ()
    port = service_port(parsed.port)
    if port is None:
        shown = excerpt(parsed.port)
        diags.fatal(file, line, f"bad port number: {shown}" if parsed.port.isascii() and parsed.port.isdigit()
                    else f"unknown service: {shown}/tcp")
        return ()
    families = inet_families(inet_protocols, diags, file, line)
    if not families:
        protocols = " ".join(_words(inet_protocols))
        diags.warning(file, line, f"all network protocols are disabled (inet_protocols = {protocols}): "
                                  f'disabling inet service "{excerpt(service_name)}"')
        return ()
    if parsed.host:
        addresses = _host_addresses(parsed.host, families, resolver)
        if isinstance(addresses, str):
            diags.fatal(file, line, f"bad hostname or network address: {excerpt(service_name)}{addresses}")
            return ()
    else:
        reported = len(diags.items)
        addresses = interface_addresses(inet_interfaces, families, diags, file, line, resolver=resolver)
        if not addresses and len(diags.items) == reported:
            # Postfix: an empty inet_interfaces leaves a bare-port service nothing to bind.
            diags.fatal(file, line, f"no valid IP address found: {excerpt(service_name)}")
    endpoints: list[Endpoint] = []
    for family, host in addresses:
        endpoint = Endpoint(host, port, family)
        if endpoint not in endpoints:
            endpoints.append(endpoint)
    return tuple(endpoints)


def duplicate_endpoints(listeners: Iterable[tuple[object, str, int | None]],
                        diags: Diagnostics | None = None) -> Diagnostics:
    """FATAL `duplicate listener port` for each listener that collides with an earlier one.

    A listener is (endpoint, file, line); endpoint is an Endpoint, ("inet", host, port) or
    ("unix", path). A wildcard address collides with every address of its family on that port.
    The diagnostics go into `diags` (a new collector when None), which is returned.
    """
    out = diags if diags is not None else Diagnostics()
    # Only listeners of one kind, family and port can collide: bucket them so that a huge
    # configuration is not compared pairwise.
    buckets: dict[tuple, list[tuple[tuple, str, int | None]]] = {}
    for endpoint, file, line in listeners:
        key = _listener_key(endpoint)
        if key is None:
            continue
        bucket = buckets.setdefault(key[:2] + key[3:] if key[0] == "inet" else key, [])
        for other_key, other_file, other_line in bucket:
            if _collides(key, other_key):
                where = f"{other_file}, line {other_line}" if other_line else other_file
                out.fatal(file, line, f"duplicate listener port {_key_text(key)} "
                                      f"(already used by {_key_text(other_key)} at {where})")
                break
        bucket.append((key, file, line))
    return out


def _listener_key(endpoint: object) -> tuple | None:
    if isinstance(endpoint, Endpoint):
        return ("inet", endpoint.family, endpoint.host, endpoint.port)
    if isinstance(endpoint, tuple) and len(endpoint) == 3 and endpoint[0] == "inet":
        host = _unbracket(str(endpoint[1] or "0.0.0.0"))
        address = _parse_address(host)
        if address is None:
            return ("inet", None, host, endpoint[2])
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        return ("inet", family, str(address), endpoint[2])
    if isinstance(endpoint, tuple) and len(endpoint) == 2 and endpoint[0] == "unix":
        return ("unix", endpoint[1])
    return None


def _collides(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    if a[0] == "unix":
        return a[1] == b[1]
    _, family_a, host_a, port_a = a
    _, family_b, host_b, port_b = b
    if port_a != port_b or family_a != family_b:
        return False
    return host_a == host_b or host_a == _WILDCARD.get(family_a) or host_b == _WILDCARD.get(family_b)


def _key_text(key: tuple) -> str:
    if key[0] == "unix":
        return f"unix:{key[1]}"
    _, family, host, port = key
    return f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"


def _words(value: str | Sequence[str]) -> list[str]:
    parts = [value] if isinstance(value, str) else list(value)
    return [w for part in parts for w in LIST_SEPARATORS.split(part) if w]


def _unbracket(host: str) -> str:
    return host[1:-1] if len(host) > 1 and host.startswith("[") and host.endswith("]") else host


def _parse_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_address(host: str) -> bool:
    return _parse_address(host) is not None


def _is_ipv6(host: str) -> bool:
    address = _parse_address(host)
    return address is not None and address.version == 6


def _is_hostname(host: str) -> bool:
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return 0 < len(host) <= 255 and all(_HOSTNAME_LABEL.match(label) for label in labels)


def _host_addresses(host: str, families: Sequence[socket.AddressFamily], resolver: Resolver | None
                    ) -> list[tuple[socket.AddressFamily, str]] | str:
    """Addresses of a literal or a host name, within `families`; an explanation (str) if none."""
    address = _parse_address(host)
    if address is not None:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        if family not in families:
            return f" ({'IPv6' if address.version == 6 else 'IPv4'} is disabled by inet_protocols)"
        return [(family, str(address))]
    if not _is_hostname(host):
        return ""
    found = (resolver or _getaddrinfo)(host, families)
    found = [(f, a) for f, a in found if f in families]
    return list(dict.fromkeys(found)) or ""


def _getaddrinfo(host: str, families: Sequence[socket.AddressFamily]) -> list[tuple[socket.AddressFamily, str]]:
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    out: list[tuple[socket.AddressFamily, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family in families and (family, sockaddr[0]) not in out:
            out.append((socket.AddressFamily(family), str(sockaddr[0])))
    return out
