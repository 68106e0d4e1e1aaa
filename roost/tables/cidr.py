"""`cidr:` tables (cidr_table(5)): `pattern result`, `!pattern result`, `if pattern` ...
`endif`, where a pattern is `address` or `address/prefix_length`, IPv4 or IPv6, optionally
inside `[]`. Keys and patterns are compared in binary, so IPv6 leading zeros and `::`
forms are equivalent. A key that is not an IP address matches nothing (not even a `!`
rule), and an address only matches patterns of its own family, as Postfix does.
Malformed rules (bad address, host bits set, bad mask, missing result) are skipped with a
`cidr map FILE, line N: ...` warning.

Rule files, inline `cidr:{...}` lists and if/endif blocks are handled by
roost.tables.rules; this module parses and matches address patterns.

Invariants: parsing never raises; the table re-reads its file when it changes.
Security: keys are parsed with `ipaddress`, never interpreted otherwise.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from roost.tables.rules import RuleTable
from roost.tables.source import WHITESPACE, split_word

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class CidrRule:
    kind: str  # "match", "if", "endif"
    network: Network | None
    negated: bool
    result: str
    line: int


def parse_address(text: str) -> Address | None:
    """A lookup key or pattern address; None unless strictly IPv4 dotted-quad or IPv6."""
    if not text or "%" in text or any(c in WHITESPACE for c in text):
        return None
    try:
        if ":" in text:
            return ipaddress.IPv6Address(text)
        if text.count(".") == 3:
            return ipaddress.IPv4Address(text)
    except ValueError:
        return None
    return None


def parse_pattern(text: str) -> tuple[Network | None, str | None]:
    """(network, None) or (None, Postfix-style error message)."""
    if text.startswith("[") and "]" in text:
        close = text.index("]")
        text = text[1:close] + text[close + 1:]
    address_text, slash, length_text = text.partition("/")
    address = parse_address(address_text)
    if address is None:
        return None, f'bad address pattern: "{text}"'
    if not slash:
        return ipaddress.ip_network(address), None
    if not length_text.isdigit() or len(length_text) > 3:
        return None, f'bad mask value in "{text}"'
    length = int(length_text)
    if length > address.max_prefixlen:
        return None, f'bad mask length in "{text}"'
    try:
        return ipaddress.ip_network(f"{address}/{length}", strict=True), None
    except ValueError:
        base = ipaddress.ip_network(f"{address}/{length}", strict=False).network_address
        return None, (f'non-null host address bits in "{text}", perhaps you should use '
                      f'"{base}/{length}" instead')


class CidrTable(RuleTable):
    def _parse_line(self, text: str, line: int) -> CidrRule | None:
        if text.lower() == "endif":
            return CidrRule("endif", None, False, "", line)
        kind = "match"
        first, rest = split_word(text)
        if first.lower() == "if" and rest:
            kind, text = "if", rest
        negated = text.startswith("!")
        if negated:
            text = text[1:].lstrip(WHITESPACE)
        pattern, result = split_word(text)
        network, error = parse_pattern(pattern)
        if error:
            self.diags.warning(self.label, line, f"{error}: skipping this rule")
            return None
        if kind == "if":
            if result:
                self.diags.warning(self.label, line, "ignoring extra text after IF statement")
            return CidrRule("if", network, negated, "", line)
        if not result:
            self.diags.warning(self.label, line, "no lookup result: skipping this rule")
            return None
        return CidrRule("match", network, negated, result, line)

    def _subject(self, key: str) -> Address | None:
        return parse_address(key)

    def _test(self, rule: CidrRule, address: Address) -> tuple[bool, None]:
        assert rule.network is not None
        if rule.network.version != address.version:
            # Another family never matches, negated or not; its IF block is skipped.
            return False, None
        return (address in rule.network) != rule.negated, None
