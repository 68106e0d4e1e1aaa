"""Postfix parameter expansion: `$name`, `${name}`, `$(name)`, the `?`/`:` forms and
relational expressions, as postconf(5) describes them for Postfix 3.7.

Forms handled (postconf(5), "A parameter value may refer to other parameters"):
  `$name` `${name}` `$(name)`          the named value, recursively expanded; undefined -> ""
  `${name?value}` `${name?{value}}`     value when $name is non-empty
  `${name:value}` `${name:{value}}`     value when $name is empty
  `${name?{value1}:{value2}}`           either one ("{}" optional around value2)
  `${{a} OP {b} ...}`                   relational head: "true" or "" (then `?`/`:` as above);
                                        OP is ==, !=, <, <=, >, >= (numeric when both operands
                                        are all digits, else lexicographic) or ==level, !=level,
                                        <level, <=level, >level, >=level (compatibility levels
                                        "major[.minor[.patch]]", so 3.10 > 3.9)
  `$$`                                  a literal "$"
Whitespace around each `{value}` and around the name is ignored; a plain `?value` keeps its
text exactly. Observed details of Postfix 3.7 kept here: the value of an unselected branch is
only scanned (its syntax errors are warnings, its names still count as referenced); `$` not
followed by a name, `{` or `(` is an error; a bracket without its partner is an error.

Invariants: expansion is lazy and cached per parameter; a reference cycle or a nesting deeper
than MAX_NESTING is an `ExpansionError` naming the parameters, never a RecursionError; no
input makes this module raise anything but ExpansionError (callers turn it into diagnostics).
Security: expansion only substitutes configuration text; nothing is executed or opened.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MAX_NESTING = 100  # Postfix's own limit on nested macro calls
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
C_SPACE = " \t\n\v\f\r"
LONG_MAX = 2**63 - 1
# The operator is the text between the two `{...}` operands, matched whole.
OPERATORS = ("==level", "!=level", "<=level", ">=level", "<level", ">level",
             "==", "!=", "<=", ">=", "<", ">")
LEVEL_PATTERN = re.compile(r"[ \t]*\+?([0-9]+)(?:\.\+?([0-9]+))?(?:\.\+?([0-9]+))?")
LEVEL_MAJOR_LIMIT = 2**43  # major.minor.patch must fit Postfix's encoding (10 bits each)
LEVEL_MINOR_LIMIT = 2**10


class Final(str):
    """A looked-up value that is final text, not to be expanded (a computed default)."""


class ExpansionError(Exception):
    """A value that cannot be expanded: bad syntax, a loop, a bad level or number."""

    def __init__(self, message: str, names: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.names = names  # the parameters being expanded, outermost first


def parse_level(text: str) -> int | None:
    """A compatibility level as one comparable number, or None when malformed."""
    match = LEVEL_PATTERN.fullmatch(text)
    if not match:
        return None
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    if major >= LEVEL_MAJOR_LIMIT or minor >= LEVEL_MINOR_LIMIT or patch >= LEVEL_MINOR_LIMIT:
        return None
    return (major << 20) | (minor << 10) | patch


def _is_digits(text: str) -> bool:
    return bool(text) and all("0" <= c <= "9" for c in text)


def compare(left: str, op: str, right: str) -> bool:
    """Evaluate one relational operator; raises ExpansionError for a malformed operand."""
    if op.endswith("level"):
        a, b = parse_level(left), parse_level(right)
        for text, parsed in ((left, a), (right, b)):
            if parsed is None:
                raise ExpansionError(f'malformed compatibility level syntax: "{text}"')
        op = op[:-5]
    elif _is_digits(left) and _is_digits(right):
        a, b = int(left), int(right)
        for text, number in ((left, a), (right, b)):
            if number > LONG_MAX:
                raise ExpansionError(f"bad numerical conversion: {text}")
    else:
        a, b = left, right
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b,
            ">": a > b, ">=": a >= b}[op]


def _matching(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, or -1 (only that bracket kind nests)."""
    opening = text[start]
    closing = "}" if opening == "{" else ")"
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return index
    return -1


def _skip_space(text: str, index: int) -> int:
    while index < len(text) and text[index] in C_SPACE:
        index += 1
    return index


def _context(text: str, index: int) -> str:
    return f'"...{text[max(0, index - 3):index]}>>>{text[index:index + 20]}"'


class Expander:
    """Expands parameter values through `lookup(name) -> raw value | Final | None` (None:
    undefined; a Final is used as it is). `on_undefined(name)` is told of every undefined name
    a value refers to (in unselected branches too, as postconf warns); `on_warning(message)`
    of syntax errors found in branches that were only scanned."""

    def __init__(self, lookup: Callable[[str], str | None], *,
                 on_undefined: Callable[[str], None] | None = None,
                 on_warning: Callable[[str], None] | None = None):
        self._lookup = lookup
        self._on_undefined = on_undefined
        self._on_warning = on_warning
        self._cache: dict[str, str] = {}
        self._active: list[str] = []  # parameters being expanded, outermost first
        self._depth = 0

    # -------------------------------------------------------------- public

    def value(self, name: str) -> str:
        """The expanded value of parameter `name` ("" when undefined)."""
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        if name in self._active:
            cycle = self._active[self._active.index(name):] + [name]
            raise ExpansionError("expansion loop: " + " -> ".join(f"${n}" for n in cycle),
                                 tuple(self._active))
        raw = self._lookup(name)
        if raw is None:
            if self._on_undefined:
                self._on_undefined(name)
            return ""
        if isinstance(raw, Final):
            self._cache[name] = str(raw)
            return str(raw)
        self._active.append(name)
        try:
            result = self._expand(raw, scan_only=False)
        finally:
            self._active.pop()
        self._cache[name] = result
        return result

    def expand(self, text: str) -> str:
        """Expand free text (not itself a parameter)."""
        return self._expand(text, scan_only=False)

    # -------------------------------------------------------------- engine

    def _expand(self, text: str, scan_only: bool) -> str:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise ExpansionError("unreasonable macro call nesting", tuple(self._active))
            return self._expand_flat(text, scan_only)
        finally:
            self._depth -= 1

    def _expand_flat(self, text: str, scan_only: bool) -> str:
        out: list[str] = []
        index = 0
        length = len(text)
        while index < length:
            dollar = text.find("$", index)
            if dollar < 0:
                out.append(text[index:])
                break
            out.append(text[index:dollar])
            index = dollar + 1
            char = text[index] if index < length else ""
            if char == "$":
                out.append("$")
                index += 1
            elif char in ("{", "("):
                end = _matching(text, index)
                if end < 0:
                    raise ExpansionError(f'truncated macro reference: "{text}"')
                out.append(self._braced(text[index + 1:end], scan_only))
                index = end + 1
            elif char and char in NAME_CHARS:
                end = index
                while end < length and text[end] in NAME_CHARS:
                    end += 1
                out.append(self._reference(text[index:end], scan_only))
                index = end
            else:
                raise ExpansionError(f'empty macro name: "{text}"')
        return "".join(out)

    def _reference(self, name: str, scan_only: bool) -> str:
        if scan_only:
            self._note_reference(name)
            return ""
        return self.value(name)

    def _note_reference(self, name: str) -> None:
        if self._lookup(name) is None and self._on_undefined:
            self._on_undefined(name)

    def _braced(self, inner: str, scan_only: bool) -> str:
        index = _skip_space(inner, 0)
        if index < len(inner) and inner[index] == "{":
            head, index = self._relational(inner, index, scan_only)
        else:
            start = index
            while index < len(inner) and inner[index] in NAME_CHARS:
                index += 1
            head = self._reference(inner[start:index], scan_only)
            index = _skip_space(inner, index)
            if index < len(inner) and inner[index] not in "?:":
                raise ExpansionError(f"attribute name syntax error at: {_context(inner, index)}")
        index = _skip_space(inner, index)
        if index >= len(inner):
            return head
        operator = inner[index]
        if operator not in "?:":
            raise ExpansionError(f'"?" or ":" expected at: {_context(inner, index)}')
        selected = (head != "") if operator == "?" else (head == "")
        return self._conditional(inner, index + 1, operator, selected, scan_only)

    def _relational(self, inner: str, index: int, scan_only: bool) -> tuple[str, int]:
        end = _matching(inner, index)
        if end < 0:
            raise ExpansionError(f'truncated macro reference: "{inner}"')
        left = inner[index + 1:end]
        index = _skip_space(inner, end + 1)
        token_end = index
        while token_end < len(inner) and inner[token_end] not in C_SPACE + "{":
            token_end += 1
        operator = inner[index:token_end] if inner[index:token_end] in OPERATORS else None
        if operator is None:
            raise ExpansionError('"==" or "!=" or "<" or "<=" or ">=" or ">" expected at: '
                                 + _context(inner, index))
        index = _skip_space(inner, index + len(operator))
        if index >= len(inner) or inner[index] != "{":
            raise ExpansionError(f'"{{expression}}" expected at: {_context(inner, index)}')
        end = _matching(inner, index)
        if end < 0:
            raise ExpansionError(f'truncated macro reference: "{inner}"')
        right = inner[index + 1:end]
        left_value = self._expand(left, scan_only)
        right_value = self._expand(right, scan_only)
        if scan_only:
            return "", end + 1
        return ("true" if compare(left_value, operator, right_value) else ""), end + 1

    def _conditional(self, inner: str, index: int, operator: str, selected: bool,
                     scan_only: bool) -> str:
        body_start = _skip_space(inner, index)
        if body_start >= len(inner) or inner[body_start] != "{":
            return self._branch(inner[index:], selected, scan_only)  # `?value`: text as is
        end = _matching(inner, body_start)
        if end < 0:
            raise ExpansionError(f'truncated macro reference: "{inner}"')
        first = inner[body_start + 1:end]
        index = _skip_space(inner, end + 1)
        if index >= len(inner):
            return self._branch(first, selected, scan_only)
        if operator == ":" or inner[index] != ":":
            message = "unexpected input" if operator == ":" else '":" expected'
            raise ExpansionError(f"{message} at: {_context(inner, index)}")
        second = inner[index + 1:]
        second_start = _skip_space(second, 0)
        if second_start < len(second) and second[second_start] == "{":
            end = _matching(second, second_start)
            if end < 0:
                raise ExpansionError(f'truncated macro reference: "{inner}"')
            trailing = _skip_space(second, end + 1)
            if trailing < len(second):
                raise ExpansionError(f"unexpected input at: {_context(second, trailing)}")
            second = second[second_start + 1:end]
        chosen = self._branch(first, selected, scan_only)
        other = self._branch(second, not selected, scan_only)
        return chosen if selected else other

    def _branch(self, text: str, selected: bool, scan_only: bool) -> str:
        if selected and not scan_only:
            return self._expand(text, scan_only=False)
        try:
            self._expand(text, scan_only=True)
        except ExpansionError as error:
            if scan_only:
                raise
            if self._on_warning:
                self._on_warning(error.message)
        return ""


def scan_references(text: str) -> tuple[list[str], list[str]]:
    """Every `$name` in `text` (all branches, in order) and the syntax errors found, as
    Postfix's postconf scans a value to find which parameters it uses."""
    names: list[str] = []
    warnings: list[str] = []

    def note(name: str) -> str | None:
        names.append(name)
        return None

    scanner = Expander(note)
    try:
        scanner._expand(text, scan_only=True)
    except ExpansionError as error:
        warnings.append(error.message)
    return names, warnings
