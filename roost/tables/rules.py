"""The shared engine of rule-list tables: `regexp:`, `pcre:` and `cidr:` (regexp_table(5),
pcre_table(5), cidr_table(5)).

Such a table is an ordered list of rules read from a file, or from `type:{rule, rule}`
given inline; a lookup returns the result of the first matching rule. Rules may be
grouped in `if PATTERN` ... `endif` blocks (nesting allowed): the block's rules are only
tried when the IF pattern matches (or, for `if !PATTERN`, does not match). An ENDIF
without IF is ignored with a warning, an IF without ENDIF warns at end of file; both as
`TYPE map FILE, line N: ...`, the label Postfix uses.
Each table type implements `_parse_line` (one logical line to a rule, or None after a
warning) and `_test` (whether a rule matches a key); this module owns the file, the
if/endif bookkeeping and the walk over the rules.

Invariants: parsing never raises on bad input; a rule's `kind` is "match", "if" or
"endif", and in a parsed list every "if" has its "endif" unless the file lacked it.
Security: rules come from the administrator's files; keys are only compared, never run.
"""

from __future__ import annotations

import abc
from typing import Any, Protocol

from roost.config.diagnostics import Diagnostics
from roost.tables.base import LookupTable, TableError, TableOptions
from roost.tables.source import WHITESPACE, decode, logical_lines


class ParsedRule(Protocol):
    kind: str  # "match", "if", "endif"
    negated: bool
    result: str
    line: int


class RuleTable(LookupTable):
    fixed_keys = False  # sees whole strings only; no partial (parent/prefix) keys

    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        self._rules: list[Any] = []
        super().__init__(type, name, options, diags)

    @property
    def label(self) -> str:
        return f"{self.type} map {self.name}"

    # --- subclass hooks -------------------------------------------------------------
    @abc.abstractmethod
    def _parse_line(self, text: str, line: int) -> ParsedRule | None:
        """One rule from one logical line, or None (reported) when it is malformed."""

    def _subject(self, key: str) -> Any:
        """What rules are tested against; None when the key can match no rule at all."""
        return key

    @abc.abstractmethod
    def _test(self, rule: Any, subject: Any) -> tuple[bool, Any]:
        """(hit, detail): whether `rule` applies, negation included, and what
        `_result` needs to build the answer (e.g. the regex match)."""

    def _result(self, rule: Any, detail: Any) -> str:
        return rule.result

    # --- file -----------------------------------------------------------------------
    def watched_files(self) -> tuple[str, ...]:
        return () if self.name.lstrip().startswith("{") else (self.name,)

    def _source_text(self) -> str:
        spec = self.name.strip(WHITESPACE)
        if spec.startswith("{"):
            from roost.tables.memory import split_braced_list

            if not spec.endswith("}") or (rules := split_braced_list(spec[1:-1])) is None:
                raise TableError(f'bad syntax: "{self.spec}"; need "{self.type}:{{rule...}}"')
            return "\n".join(rules)
        try:
            with open(self.name, "rb") as handle:
                return decode(handle.read())
        except OSError as exc:
            raise TableError(f"open {self.name}: {exc.strerror or exc}") from None

    def _load(self) -> None:
        self._rules = self.parse(self._source_text())

    def parse(self, text: str) -> list[Any]:
        rules: list[Any] = []
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

    # --- lookup ---------------------------------------------------------------------
    def _get(self, key: str) -> str | None:
        subject = self._subject(key)
        if subject is None:
            return None
        skip_depth = 0  # > 0: inside an IF block whose condition failed
        for rule in self._rules:
            if skip_depth:
                if rule.kind == "if":
                    skip_depth += 1
                elif rule.kind == "endif":
                    skip_depth -= 1
                continue
            if rule.kind == "endif":
                continue
            hit, detail = self._test(rule, subject)
            if rule.kind == "if":
                if not hit:
                    skip_depth = 1
                continue
            if hit:
                return self._result(rule, detail)
        return None
