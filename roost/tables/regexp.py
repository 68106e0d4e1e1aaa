"""`regexp:` (regexp_table(5)) and `pcre:` (pcre_table(5)) tables on Python's `re`.

Rules: `/pattern/flags result`, `!/pattern/flags result`, `if /pattern/flags` ... `endif`
(nesting), any non-alphanumeric, non-whitespace delimiter, results with `$1`..`$9`,
`${n}`, `$(n)` and `$$`; a missing result is the empty string (with a warning, as Postfix).
Flags: regexp `i` (default on: case-insensitive), `x` (default on: extended syntax; off is
POSIX basic syntax), `m`; pcre `i` (on), `s` (on: dot matches newline), `m`, `x`, `A`
(anchored), `E` (dollar matches only at the very end), `U` (ungreedy), `X` (accepted,
ignored as with PCRE2).
Translation: POSIX bracket classes `[[:alpha:]]`, literal backslash inside POSIX brackets,
`\\<` `\\>` word boundaries, PCRE `(?<name>`, `\\x{hh}`, `\\Q..\\E`, `\\z`, `\\e`, `\\h`.
Cannot be expressed (documented; such a rule is skipped with a file:line warning): PCRE
recursion `(?R)`/`(?1)`, `\\K`, `\\G`, `\\p{..}`/`\\X`, backtracking verbs `(*...)`,
callouts. POSIX regexps match leftmost-longest while `re` is leftmost-first: a match is
found in the same cases, but `$n` of an alternation may capture a shorter branch.

Invariants: a bad rule is skipped with a warning naming `regexp map FILE, line N`, never
an exception; the table re-reads its file when it changes.
Security: patterns come from the administrator's files; a lookup never executes results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics
from roost.tables.base import LookupTable, TableError, TableOptions
from roost.tables.source import WHITESPACE, decode, logical_lines

_REF = re.compile(r"\$(?:(\d)|\{(\d+)\}|\((\d+)\)|(\$))")
_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v", "upper": "A-Z", "xdigit": "0-9A-Fa-f", "word": "a-zA-Z0-9_",
}
_UNSUPPORTED_PCRE = re.compile(r"\(\?R\)|\(\?[+-]?\d+\)|\\[KGpPX]|\(\*[A-Z]|\(\?C")


class RuleError(Exception):
    pass


@dataclass
class Rule:
    kind: str  # "match", "if", "endif"
    regex: re.Pattern | None
    negated: bool
    result: str
    line: int
    anchored: bool = False


def _bracket(pattern: str, index: int, posix: bool) -> tuple[str, int]:
    """Translate one bracket expression starting at pattern[index] == '['."""
    out = ["["]
    index += 1
    if index < len(pattern) and pattern[index] == "^":
        out.append("^")
        index += 1
    first = True
    while index < len(pattern):
        char = pattern[index]
        if char == "]" and not first:
            out.append("]")
            return "".join(out), index + 1
        if char == "[" and pattern.startswith("[:", index):
            end = pattern.find(":]", index + 2)
            name = pattern[index + 2:end] if end > 0 else ""
            if name not in _POSIX_CLASSES:
                raise RuleError("Invalid character class name")
            out.append(_POSIX_CLASSES[name])
            index = end + 2
        elif char == "[" and pattern.startswith(("[.", "[="), index):
            raise RuleError("collating elements are not supported")
        elif char == "\\" and posix:
            out.append("\\\\")
            index += 1
        elif char == "\\":
            out.append(pattern[index:index + 2])
            index += 2
        elif char in "[&~|" or (char == "-" and pattern.startswith("--", index)):
            out.append("\\" + char)  # literal in POSIX/PCRE, special or warned about in re
            index += 1
        elif char == "]":
            out.append("\\]")
            index += 1
        else:
            out.append(char)
            index += 1
        first = False
    raise RuleError("Unmatched [ or [^")


def translate_posix(pattern: str, extended: bool) -> str:
    """POSIX ERE (or BRE when not extended) to Python syntax."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "[":
            text, index = _bracket(pattern, index, posix=True)
            out.append(text)
            continue
        if char == "\\" and index + 1 < len(pattern):
            nxt = pattern[index + 1]
            index += 2
            if nxt == "<":
                out.append(r"\b(?=\w)")
            elif nxt == ">":
                out.append(r"\b(?<=\w)")
            elif nxt == "`":
                out.append(r"\A")
            elif nxt == "'":
                out.append(r"\Z")
            elif not extended and nxt in "(){}|+?":
                out.append(nxt)
            elif nxt.isdigit() or nxt in "wWsSbB":
                out.append("\\" + nxt)
            else:
                out.append(re.escape(nxt))
            continue
        if char == "\\":
            raise RuleError("Trailing backslash")
        if not extended and char in "(){}|+?":
            out.append("\\" + char)
        elif char == "{" and not re.match(r"\{\d*(,\d*)?\}", pattern[index:]):
            raise RuleError("Invalid preceding regular expression")
        else:
            out.append(char)
        index += 1
    return "".join(out)


def _swap_greediness(pattern: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index:index + 2])
            index += 2
            continue
        if char == "[":
            text, index = _bracket(pattern, index, posix=False)
            out.append(text)
            continue
        quantifier = re.match(r"[*+?]|\{\d+(,\d*)?\}", pattern[index:])
        previous = "".join(out)[-1:] if out else ""
        if quantifier and not (char == "?" and previous == "("):
            out.append(quantifier.group())
            index += len(quantifier.group())
            if index < len(pattern) and pattern[index] == "?":
                index += 1
            elif index < len(pattern) and pattern[index] == "+":
                out.append("+")
                index += 1
            else:
                out.append("?")
            continue
        out.append(char)
        index += 1
    return "".join(out)


def translate_pcre(pattern: str, dollar_end_only: bool, ungreedy: bool) -> str:
    if _UNSUPPORTED_PCRE.search(pattern):
        raise RuleError("construct not supported by roost's PCRE emulation")
    out: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "[":
            text, index = _bracket(pattern, index, posix=False)
            out.append(text)
            continue
        if char == "\\" and index + 1 < len(pattern):
            nxt = pattern[index + 1]
            if nxt == "Q":
                end = pattern.find("\\E", index + 2)
                literal = pattern[index + 2:] if end < 0 else pattern[index + 2:end]
                out.append(re.escape(literal))
                index = len(pattern) if end < 0 else end + 2
                continue
            braced = re.match(r"\\x\{([0-9a-fA-F]+)\}", pattern[index:])
            if braced:
                out.append(f"\\U{int(braced.group(1), 16):08x}")
                index += len(braced.group())
                continue
            replacement = {"z": r"\Z", "Z": r"(?=\n?\Z)", "e": r"\x1b", "h": r"[ \t]", "E": ""}.get(nxt)
            out.append(replacement if replacement is not None else pattern[index:index + 2])
            index += 2
            continue
        if pattern.startswith("(?<", index) and index + 3 < len(pattern) and pattern[index + 3] not in "=!":
            out.append("(?P<")
            index += 3
            continue
        if char == "$" and dollar_end_only:
            out.append(r"\Z")
        else:
            out.append(char)
        index += 1
    translated = "".join(out)
    return _swap_greediness(translated) if ungreedy else translated


def split_rule(text: str) -> tuple[str, str, str]:
    """(pattern, flags, rest) of `/pattern/flags rest`; RuleError when malformed."""
    delimiter = text[0]
    if delimiter.isalnum() or delimiter in WHITESPACE:
        raise RuleError("regexp pattern must start with a non-alphanumeric delimiter")
    index = 1
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text):
            index += 2
            continue
        if text[index] == delimiter:
            break
        index += 1
    else:
        raise RuleError(f'no closing regexp delimiter "{delimiter}"')
    pattern = text[1:index]
    rest = text[index + 1:]
    flag_end = 0
    while flag_end < len(rest) and rest[flag_end] not in WHITESPACE:
        flag_end += 1
    return pattern, rest[:flag_end], rest[flag_end:].strip(WHITESPACE)


class RegexpTable(LookupTable):
    fixed_keys = False  # sees whole strings only; no partial (parent/prefix) keys
    def __init__(self, type: str, name: str, options: TableOptions | None = None,
                 diags: Diagnostics | None = None) -> None:
        self._rules: list[Rule] = []
        super().__init__(type, name, options, diags)

    @property
    def label(self) -> str:
        return f"{self.type} map {self.name}"

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

    def parse(self, text: str) -> list[Rule]:
        rules: list[Rule] = []
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

    def _parse_line(self, text: str, line: int) -> Rule | None:
        lowered = text.lower()
        if lowered == "endif":
            return Rule("endif", None, False, "", line)
        kind = "match"
        if lowered.startswith("if") and len(text) > 2 and text[2] in WHITESPACE + "!/":
            kind, text = "if", text[2:].lstrip(WHITESPACE)
            if not text:
                self.diags.warning(self.label, line, "no regexp after IF: skipping this rule")
                return None
        negated = text.startswith("!")
        if negated:
            text = text[1:].lstrip(WHITESPACE)
        try:
            if not text:
                raise RuleError("no regexp pattern")
            pattern, flags, result = split_rule(text)
            regex, anchored = self._compile(pattern, flags)
        except RuleError as exc:
            self.diags.warning(self.label, line, f"{exc}: skipping this rule")
            return None
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            self.diags.warning(self.label, line, f"{exc}: skipping this rule")
            return None
        if kind == "if":
            if result:
                self.diags.warning(self.label, line, "ignoring extra text after IF statement")
            return Rule("if", regex, negated, "", line, anchored)
        if not result:
            self.diags.warning(self.label, line, "no replacement text: using empty string")
        for match in _REF.finditer(result):
            number = match.group(1) or match.group(2) or match.group(3)
            if number is not None and (negated or int(number) > regex.groups or int(number) == 0):
                self.diags.warning(self.label, line, f'out of range replacement index "{number}": skipping this rule')
                return None
        return Rule("match", regex, negated, result, line, anchored)

    def _compile(self, pattern: str, flags: str) -> tuple[re.Pattern, bool]:
        pcre = self.type == "pcre"
        state = {"i": True, "x": not pcre, "m": False, "s": True, "A": False, "E": False, "U": False, "X": False}
        allowed = "imsxAEUX" if pcre else "ixm"
        for flag in flags:
            if flag not in allowed:
                raise RuleError(f'unknown {self.type} option "{flag}"')
            state[flag] = not state[flag]
        re_flags = 0
        if state["i"]:
            re_flags |= re.IGNORECASE
        if state["m"]:
            re_flags |= re.MULTILINE
        if pcre:
            if state["s"]:
                re_flags |= re.DOTALL
            if state["x"]:
                re_flags |= re.VERBOSE
            source = translate_pcre(pattern, state["E"] and not state["m"], state["U"])
        else:
            # POSIX: '.' and '[^a]' match a newline unless REG_NEWLINE (the m flag).
            if not state["m"]:
                re_flags |= re.DOTALL
            source = translate_posix(pattern, state["x"])
        return re.compile(source, re_flags), state["A"]

    def _matches(self, rule: Rule, key: str) -> re.Match | None:
        assert rule.regex is not None
        return rule.regex.match(key) if rule.anchored else rule.regex.search(key)

    def _get(self, key: str) -> str | None:
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
            match = self._matches(rule, key)
            hit = (match is None) if rule.negated else (match is not None)
            if rule.kind == "if":
                if not hit:
                    skip_depth = 1
                continue
            if hit:
                return expand_result(rule.result, match)
        return None


def expand_result(result: str, match: re.Match | None) -> str:
    def replace(found: re.Match) -> str:
        if found.group(4):
            return "$"
        number = int(found.group(1) or found.group(2) or found.group(3))
        return (match.group(number) or "") if match is not None else ""

    return _REF.sub(replace, result)
