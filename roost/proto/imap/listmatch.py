"""LIST/LSUB mailbox patterns (RFC 3501 §6.3.8, RFC 9051 §6.3.9, RFC 5258 §3).

The reference and the pattern are concatenated (Dovecot, observed: `LIST "a" %` lists "a" and
"ab"), then `*` matches any characters and `%` any characters except the hierarchy separator.
The INBOX part of "INBOX" and "INBOX<sep>..." names matches case-insensitively (RFC 3501
§5.1: `LIST "" *b*` and `LIST "" in%` both list INBOX). An empty pattern is the request for
the hierarchy separator (`LIST "" ""`), reported by `is_separator_query`.
Invariants: pure; matching simulates the pattern as an NFA, so time is O(name × pattern)
whatever the wildcards (a backtracking regex took minutes on `*a*a*a...x`).
Security: pattern length is capped at MAX_PATTERN.
"""

from __future__ import annotations

import re

MAX_PATTERN = 1024


def is_separator_query(reference: str, pattern: str) -> bool:
    return pattern == ""


def join(reference: str, pattern: str, separator: str) -> str:
    return reference + pattern


def compile_pattern(reference: str, pattern: str, separator: str) -> list[str]:
    """The joined pattern as tokens: one character each, "*" and "%" as wildcards (runs that
    contain "*" collapse to one "*", runs of "%" to one "%": same language)."""
    full = join(reference, pattern, separator)[:MAX_PATTERN]
    full = re.sub(r"[*%]*\*[*%]*", "*", full)
    return list(re.sub(r"%+", "%", full))


def _closure(tokens: list[str], states: set[int]) -> set[int]:
    out = set()
    for state in states:
        while True:
            out.add(state)
            if state < len(tokens) and tokens[state] in ("*", "%"):
                state += 1
                continue
            break
    return out


def _match(tokens: list[str], separator: str, name: str) -> bool:
    """NFA simulation: O(len(name) * len(pattern)), no backtracking whatever the pattern."""
    states = _closure(tokens, {0})
    end = len(tokens)
    for char in name:
        following = set()
        for state in states:
            if state == end:
                continue
            token = tokens[state]
            if token == "*" or (token == "%" and char != separator):
                following.add(state)
            elif token == char:
                following.add(state + 1)
        if not following:
            return False
        states = _closure(tokens, following)
    return end in states


def _inbox_spellings():
    for bits in range(32):
        yield "".join(c.upper() if bits & (1 << i) else c for i, c in enumerate("inbox"))


_INBOX_SPELLINGS = tuple(_inbox_spellings())


class Matcher:
    """Compiled reference + pattern; `matches(name)` for mailbox names."""

    def __init__(self, reference: str, pattern: str, separator: str):
        self.separator = separator
        self.tokens = compile_pattern(reference, pattern, separator)

    def matches(self, name: str) -> bool:
        if _match(self.tokens, self.separator, name):
            return True
        if name[:5].upper() == "INBOX" and name[5:6] in ("", self.separator):
            rest = name[5:]
            return any(_match(self.tokens, self.separator, spelling + rest)
                       for spelling in _INBOX_SPELLINGS)
        return False


def matches(reference: str, pattern: str, separator: str, name: str) -> bool:
    return Matcher(reference, pattern, separator).matches(name)
