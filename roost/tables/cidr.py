"""`cidr:` tables (cidr_table(5)): `pattern result`, `!pattern result`, `if pattern` ...
`endif`, where a pattern is `address` or `address/prefix_length`, IPv4 or IPv6, optionally
inside `[]`. Keys and patterns are compared in binary, so IPv6 leading zeros and `::`
forms are equivalent. A key that is not an IP address matches nothing (not even a `!`
rule), and an address only matches patterns of its own family, as Postfix does.
Malformed rules (bad address, host bits set, bad mask, missing result) are skipped with a
`cidr map FILE, line N: ...` warning.

Invariants: parsing never raises; the table re-reads its file when it changes.
Security: keys are parsed with `ipaddress`, never interpreted otherwise.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics
from roost.tables.base import LookupTable, TableError, TableOptions
from roost.tables.source import WHITESPACE, decode, logical_lines, split_word

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


class CidrTable(LookupTable):
    fixed_keys = False  # sees whole strings only; no partial (parent/prefix) keys
    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        self._rules: list[CidrRule] = []
        super().__init__(type, name, options, diags)

    @property
    def label(self) -> str:
        return f"cidr map {self.name}"

    def watched_files(self) -> tuple[str, ...]:
        return () if self.name.lstrip().startswith("{") else (self.name,)

    def _source_text(self) -> str:
        spec = self.name.strip(WHITESPACE)
        if spec.startswith("{"):
            from roost.tables.memory import split_braced_list

            if not spec.endswith("}") or (rules := split_braced_list(spec[1:-1])) is None:
                raise TableError(f'bad syntax: "{self.spec}"; need "cidr:{{rule...}}"')
            return "\n".join(rules)
        try:
            with open(self.name, "rb") as handle:
                return decode(handle.read())
        except OSError as exc:
            raise TableError(f"open {self.name}: {exc.strerror or exc}") from None

    def _load(self) -> None:
        self._rules = self.parse(self._source_text())

    def parse(self, text: str) -> list[CidrRule]:
        rules: list[CidrRule] = []
        open_ifs: list[int] = []
        for line in logical_lines(text, self.label, self.diags):
            rule = self._parse_line(line.text, line.line)
            if rule is None:
                continue
            if rule.kind == "if":
                open_ifs.append(line.line)
            elif rule.kind == "endif":
                if not open_ifs:
                    self.diags.warning(self.label, line.line, "ignoring ENDIF without matching IF")
                    continue
                open_ifs.pop()
            rules.append(rule)
        for start in open_ifs:
            self.diags.warning(self.label, start, "IF has no matching ENDIF")
        return rules

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

    def _get(self, key: str) -> str | None:
        address = parse_address(key)
        if address is None:
            return None
        skip_depth = 0
        for rule in self._rules:
            if skip_depth:
                if rule.kind == "if":
                    skip_depth += 1
                elif rule.kind == "endif":
                    skip_depth -= 1
                continue
            if rule.kind == "endif":
                continue
            assert rule.network is not None
            if rule.network.version != address.version:
                # Another family never matches, negated or not; its IF block is skipped.
                skip_depth = 1 if rule.kind == "if" else 0
                continue
            hit = (address in rule.network) != rule.negated
            if rule.kind == "if":
                if not hit:
                    skip_depth = 1
                continue
            if hit:
                return rule.result
        return None
