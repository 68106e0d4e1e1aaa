"""This machine's interface addresses, and the Postfix defaults computed from them.

Implements what postconf(5) documents for the machine-dependent defaults:
- `myhostname`: gethostname(); a name without a dot gets "." and the main.cf mydomain
  appended ("localdomain" when main.cf does not set mydomain);
- `mydomain`: $myhostname after its first dot ("localdomain" when it has none);
- `mynetworks` from `mynetworks_style` over the addresses of `inet_interfaces` (all local
  interfaces for "all", 127.0.0.1/::1 for "loopback-only", else each listed name or address,
  which must be one of this machine's), limited to `inet_protocols`: "host" lists each address
  (/32, [addr]/128), "subnet" its network, "class" its IPv4 class A/B/C network (IPv6 as
  subnet). IPv4 networks come before IPv6 ones, duplicates dropped, in interface order, which
  is what Postfix 3.7's postconf prints.
Interface addresses come from getifaddrs(3) (ctypes), else /proc/net on Linux.

Invariants: nothing here raises except NetinfoError (with Postfix's wording of the problem);
addresses are read once per process.
Security: only reads local interface data and resolves names the administrator configured.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import ipaddress
import socket
import struct

Address = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class NetinfoError(Exception):
    """A configuration value that cannot be turned into addresses (postconf: fatal)."""


def default_myhostname(domain: str | None = None) -> str:
    """gethostname(), completed with `domain` (the configured mydomain) when it has no dot."""
    name = socket.gethostname()
    return name if "." in name else f"{name}.{'localdomain' if domain is None else domain}"


def domain_of(hostname: str) -> str:
    _, dot, rest = hostname.partition(".")
    return rest if dot else "localdomain"


# ---------------------------------------------------------------- interface addresses


class _SockAddr(ctypes.Structure):
    _fields_ = [("sa_family", ctypes.c_ushort), ("sa_data", ctypes.c_ubyte * 26)]


class _IfAddrs(ctypes.Structure):
    pass


_IfAddrs._fields_ = [
    ("ifa_next", ctypes.POINTER(_IfAddrs)), ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint), ("ifa_addr", ctypes.POINTER(_SockAddr)),
    ("ifa_netmask", ctypes.POINTER(_SockAddr)), ("ifa_ifu", ctypes.c_void_p),
    ("ifa_data", ctypes.c_void_p)]


def _sockaddr_ip(pointer) -> str | None:
    if not pointer:
        return None
    family = pointer.contents.sa_family
    raw = bytes(pointer.contents.sa_data)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[2:6])
    if family == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, raw[6:22])
    return None


def _interface_index(name: bytes | None) -> int:
    try:
        return socket.if_nametoindex(name.decode()) if name else 0
    except (OSError, UnicodeError):
        return 0


def _getifaddrs() -> list[tuple[int, Address]]:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    head = ctypes.POINTER(_IfAddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        raise OSError(ctypes.get_errno(), "getifaddrs")
    found: list[tuple[int, Address]] = []
    try:
        entry = head
        while entry:
            item = entry.contents
            address, mask = _sockaddr_ip(item.ifa_addr), _sockaddr_ip(item.ifa_netmask)
            if address and mask:
                prefix = bin(int(ipaddress.ip_address(mask))).count("1")
                found.append((_interface_index(item.ifa_name),
                              ipaddress.ip_interface(f"{address.split('%')[0]}/{prefix}")))
            entry = item.ifa_next
    finally:
        libc.freeifaddrs(head)
    return found


def _proc_addresses() -> list[tuple[int, Address]]:
    found: list[tuple[int, Address]] = []
    try:
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for index, name in socket.if_nameindex():
                request = struct.pack("256s", name.encode()[:15])
                try:
                    address = fcntl.ioctl(probe.fileno(), 0x8915, request)[20:24]  # SIOCGIFADDR
                    mask = fcntl.ioctl(probe.fileno(), 0x891B, request)[20:24]  # SIOCGIFNETMASK
                except OSError:
                    continue
                found.append((index, ipaddress.ip_interface(
                    f"{socket.inet_ntoa(address)}/{socket.inet_ntoa(mask)}")))
        with open("/proc/net/if_inet6") as table:
            for row in table:
                fields = row.split()
                address = ":".join(fields[0][i:i + 4] for i in range(0, 32, 4))
                found.append((int(fields[1], 16),
                              ipaddress.ip_interface(f"{address}/{int(fields[2], 16)}")))
    except (OSError, ValueError, ImportError):
        pass
    return found


@functools.lru_cache(maxsize=1)
def local_addresses() -> tuple[Address, ...]:
    """Every address of every local interface, with its prefix length: IPv4 first, each
    family in interface-index order (the order `ip addr` and Postfix show)."""
    try:
        found = _getifaddrs()
    except (OSError, AttributeError, TypeError, ValueError):
        found = _proc_addresses()
    ordered = [address for _, address in sorted(found, key=lambda pair: pair[0])]
    ipv4 = [a for a in ordered if a.version == 4]
    ipv6 = [a for a in ordered if a.version == 6]
    return tuple(ipv4 + ipv6)


# ---------------------------------------------------------------- inet_interfaces, mynetworks


def protocol_versions(inet_protocols: list[str]) -> set[int]:
    versions: set[int] = set()
    for item in inet_protocols:
        word = item
        if word == "all":
            versions |= {4, 6}
        elif word == "ipv4":
            versions.add(4)
        elif word == "ipv6":
            versions.add(6)
        else:
            raise NetinfoError(f'unknown inet_protocols value "{word}" in '
                               f'"{" ".join(inet_protocols)}"')
    return versions


def _resolve(item: str, versions: set[int]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    text = item[1:-1] if item.startswith("[") and item.endswith("]") else item
    try:
        literal = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None:
        return [literal] if literal.version in versions else []
    if item != text:
        return []
    found = []
    try:
        for family, *_, sockaddr in socket.getaddrinfo(text, None, type=socket.SOCK_STREAM):
            address = ipaddress.ip_address(sockaddr[0].split("%")[0])
            if address.version in versions and address not in found:
                found.append(address)
    except (OSError, UnicodeError, ValueError):
        return []
    return found


def interface_addresses(inet_interfaces: list[str], inet_protocols: list[str]) -> list[Address]:
    """The local interface addresses selected by inet_interfaces and inet_protocols."""
    versions = protocol_versions(inet_protocols)
    local = [a for a in local_addresses() if a.version in versions]
    if inet_interfaces == ["all"]:
        return local
    wanted: list[str] = []
    for item in inet_interfaces:
        if item == "loopback-only":
            wanted += [a for a in ("127.0.0.1", "::1") if ipaddress.ip_address(a).version in versions]
        else:
            wanted.append(item)
    selected: list[Address] = []
    for item in wanted:
        addresses = _resolve(item, versions)
        if not addresses:
            raise NetinfoError(f"config variable inet_interfaces: host not found: {item}")
        for address in addresses:
            match = next((a for a in local if a.ip == address), None)
            if match is None:
                raise NetinfoError(f"parameter inet_interfaces: no local interface found for {address}")
            if match not in selected:
                selected.append(match)
    return [a for a in selected if a.version == 4] + [a for a in selected if a.version == 6]


def _class_network(address: Address) -> str:
    if address.version == 6:
        return str(address.network)
    first = int(address.ip) >> 24
    prefix = 8 if first < 128 else 16 if first < 192 else 24 if first < 224 else address.network.prefixlen
    return str(ipaddress.ip_network(f"{address.ip}/{prefix}", strict=False))


def _format(network: str) -> str:
    if ":" in network:
        address, _, prefix = network.partition("/")
        return f"[{address}]/{prefix}"
    return network


def mynetworks(style: str, inet_interfaces: list[str], inet_protocols: list[str]) -> str:
    """The default value of mynetworks for this machine."""
    if len(style.split()) != 1:
        raise NetinfoError(f"bad mynetworks_style value: {style}; specify exactly one value")
    if style not in ("host", "subnet", "class"):
        raise NetinfoError(f'unknown mynetworks mask style value "{style}" in "{style}"')
    networks: list[str] = []
    for address in interface_addresses(inet_interfaces, inet_protocols):
        if style == "host":
            network = str(ipaddress.ip_network(address.ip))
        elif style == "subnet":
            network = str(address.network)
        else:
            network = _class_network(address)
        if _format(network) not in networks:
            networks.append(_format(network))
    return " ".join(networks)
