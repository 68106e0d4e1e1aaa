"""header_checks(5) / body_checks: the tables and the actions their results name.

A result is `ACTION optional text`: BCC, DISCARD, DUNNO, FILTER, HOLD, IGNORE, INFO, OK,
PASS, PREPEND, REDIRECT, REPLACE, REJECT, STRIP, WARN (case-insensitive). The tables of one
parameter are asked in order and the first that matches decides (Postfix maps_find), so a
DUNNO also ends the search. An unknown action is logged as Postfix does ("unknown command
in header_checks or body_checks") and treated as DUNNO.

Invariants: pure apart from the table lookups; TableError propagates (the message is then
deferred with 451 4.3.0, never accepted unchecked).
Security: results are actions and text; nothing is executed.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.tables.registry import open_table

ACTIONS = frozenset(("BCC", "DISCARD", "DUNNO", "FILTER", "HOLD", "IGNORE", "INFO", "OK", "PASS",
                     "PREPEND", "REDIRECT", "REPLACE", "REJECT", "STRIP", "WARN"))
NEEDS_TEXT = frozenset(("BCC", "FILTER", "PREPEND", "REDIRECT", "REPLACE"))


@dataclass(frozen=True)
class CheckAction:
    action: str        # one of ACTIONS, or "UNKNOWN"
    text: str
    raw: str


def parse_action(value: str) -> CheckAction:
    stripped = value.strip()
    word, _, rest = stripped.partition(" ")
    if "\t" in word:
        word, _, tail = word.partition("\t")
        rest = f"{tail} {rest}".strip()
    upper = word.upper()
    if upper not in ACTIONS:
        return CheckAction("UNKNOWN", stripped, value)
    text = rest.strip()
    if upper in NEEDS_TEXT and not text:
        return CheckAction("UNKNOWN", stripped, value)
    return CheckAction(upper, text, value)


PARSED_MEMO_SIZE = 1024  # distinct table results whose parsed action is remembered


class Checks:
    """The tables of one *_checks parameter."""

    def __init__(self, references) -> None:
        self.tables = [open_table(ref) for ref in references]
        # parse_action is a pure function of the result text, and a table has few distinct
        # results: each is parsed once (CheckAction is immutable, so it can be shared)
        self._parsed: dict[str, CheckAction] = {}

    def __bool__(self) -> bool:
        return bool(self.tables)

    def match(self, text: str) -> CheckAction | None:
        for table in self.tables:
            value = table.lookup(text)
            if value is not None:
                action = self._parsed.get(value)
                if action is None:
                    if len(self._parsed) >= PARSED_MEMO_SIZE:
                        self._parsed.clear()
                    action = self._parsed[value] = parse_action(value)
                return action
        return None
