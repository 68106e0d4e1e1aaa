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

Rule files, inline `regexp:{...}` lists and if/endif blocks are handled by
roost.tables.rules; this module parses `/pattern/flags` rules, translates the pattern
syntax (one scanner, `_translate`, with a POSIX and a PCRE step) and expands `$n`.

Invariants: a bad rule is skipped with a warning naming `regexp map FILE, line N`, never
an exception; the table re-reads its file when it changes.
Security: patterns come from the administrator's files; a lookup never executes results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from roost.tables.rules import RuleTable
from roost.tables.source import WHITESPACE

_REF = re.compile(r"\$(?:(\d)|\{(\d+)\}|\((\d+)\)|(\$))")
_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v", "upper": "A-Z", "xdigit": "0-9A-Fa-f", "word": "a-zA-Z0-9_",
}
_UNSUPPORTED_PCRE = re.compile(r"\(\?R\)|\(\?[+-]?\d+\)|\\[KGpPX]|\(\*[A-Z]|\(\?C")
_POSIX_ANCHORS = {"<": r"\b(?=\w)", ">": r"\b(?<=\w)", "`": r"\A", "'": r"\Z"}
_BRE_SPECIALS = "(){}|+?"  # literal in POSIX basic syntax unless escaped
_INTERVAL = re.compile(r"\{\d*(,\d*)?\}")
_QUANTIFIER = re.compile(r"[*+?]|\{\d+(,\d*)?\}")
_BRACED_HEX = re.compile(r"\\x\{([0-9a-fA-F]+)\}")
_PCRE_ESCAPES = {"z": r"\Z", "Z": r"(?=\n?\Z)", "e": r"\x1b", "h": r"[ \t]", "E": ""}


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


def _translate(pattern: str, posix: bool, step: Callable[[str, int], tuple[str, int]]) -> str:
    """Walk `pattern`: bracket expressions go through `_bracket`, everything else through
    `step(pattern, index) -> (Python syntax, next index)`."""
    out: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern[index] == "[":
            text, index = _bracket(pattern, index, posix)
        else:
            text, index = step(pattern, index)
        out.append(text)
    return "".join(out)


def _posix_escape(escaped: str, extended: bool) -> str:
    if escaped in _POSIX_ANCHORS:
        return _POSIX_ANCHORS[escaped]
    if not extended and escaped in _BRE_SPECIALS:
        return escaped
    if escaped.isdigit() or escaped in "wWsSbB":
        return "\\" + escaped
    return re.escape(escaped)


def translate_posix(pattern: str, extended: bool) -> str:
    """POSIX ERE (or BRE when not extended) to Python syntax."""
    def step(pattern: str, index: int) -> tuple[str, int]:
        char = pattern[index]
        if char == "\\":
            if index + 1 == len(pattern):
                raise RuleError("Trailing backslash")
            return _posix_escape(pattern[index + 1], extended), index + 2
        if not extended and char in _BRE_SPECIALS:
            return "\\" + char, index + 1
        if char == "{" and not _INTERVAL.match(pattern, index):
            raise RuleError("Invalid preceding regular expression")
        return char, index + 1

    return _translate(pattern, True, step)


def _swap_greediness(pattern: str) -> str:
    """PCRE's U flag on an already translated pattern: `*` becomes `*?` and `*?` `*`."""
    def step(pattern: str, index: int) -> tuple[str, int]:
        char = pattern[index]
        if char == "\\":
            return pattern[index:index + 2], index + 2
        quantifier = _QUANTIFIER.match(pattern, index)
        if quantifier is None or (char == "?" and pattern[index - 1:index] == "("):
            return char, index + 1
        end = quantifier.end()
        following = pattern[end:end + 1]
        if following == "?":
            return quantifier.group(), end + 1
        if following == "+":  # possessive stays possessive
            return quantifier.group() + "+", end + 1
        return quantifier.group() + "?", end

    return _translate(pattern, False, step)


def translate_pcre(pattern: str, dollar_end_only: bool, ungreedy: bool) -> str:
    if _UNSUPPORTED_PCRE.search(pattern):
        raise RuleError("construct not supported by roost's PCRE emulation")

    def step(pattern: str, index: int) -> tuple[str, int]:
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            escaped = pattern[index + 1]
            if escaped == "Q":
                end = pattern.find("\\E", index + 2)
                if end < 0:
                    return re.escape(pattern[index + 2:]), len(pattern)
                return re.escape(pattern[index + 2:end]), end + 2
            braced = _BRACED_HEX.match(pattern, index)
            if braced:
                return f"\\U{int(braced.group(1), 16):08x}", braced.end()
            return _PCRE_ESCAPES.get(escaped, pattern[index:index + 2]), index + 2
        if pattern.startswith("(?<", index) and index + 3 < len(pattern) and pattern[index + 3] not in "=!":
            return "(?P<", index + 3
        if char == "$" and dollar_end_only:
            return r"\Z", index + 1
        return char, index + 1

    translated = _translate(pattern, False, step)
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


class RegexpTable(RuleTable):
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

    def _test(self, rule: Rule, key: str) -> tuple[bool, re.Match | None]:
        assert rule.regex is not None
        match = rule.regex.match(key) if rule.anchored else rule.regex.search(key)
        return (match is None) == rule.negated, match

    def _result(self, rule: Rule, match: re.Match | None) -> str:
        return expand_result(rule.result, match)


def expand_result(result: str, match: re.Match | None) -> str:
    def replace(found: re.Match) -> str:
        if found.group(4):
            return "$"
        number = int(found.group(1) or found.group(2) or found.group(3))
        return (match.group(number) or "") if match is not None else ""

    return _REF.sub(replace, result)
