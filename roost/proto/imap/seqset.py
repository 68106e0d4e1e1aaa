"""IMAP sequence sets: `1:3,7,10:*` and `$` (RFC 3501 §9 sequence-set, RFC 5182 SEARCHRES).

A range a:b equals b:a (RFC 3501 §9: "the range ... includes both its end points" in either
order); `*` is the largest number in use (the last message's sequence number or UID), so it
is kept symbolic and resolved against the mailbox at use time. `$` is the saved search result.
Invariants: numbers are 1..2^32-1 (nz-number); a parsed set is never empty.
Security: membership and iteration never expand a range into a list (1:4294967295 is cheap);
`iterate` yields at most the numbers that exist.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_NUMBER = 2**32 - 1
STAR = 0  # stands for "*" inside ranges


@dataclass(frozen=True)
class SequenceSet:
    ranges: tuple[tuple[int, int], ...] = ()   # (low, high) with STAR for "*"
    saved: bool = False                         # "$" (RFC 5182)

    @classmethod
    def parse(cls, text: str) -> "SequenceSet":
        """Parse `text`; raises ValueError on anything that is not a sequence-set."""
        if text == "$":
            return cls((), True)
        ranges = []
        for item in text.split(","):
            low, sep, high = item.partition(":")
            first = _number(low)
            ranges.append((first, _number(high) if sep else first))
        return cls(tuple(ranges))

    def bounds(self, largest: int) -> list[tuple[int, int]]:
        """Concrete (low, high) ranges with `*` = largest, each low <= high."""
        out = []
        for low, high in self.ranges:
            low = largest if low == STAR else low
            high = largest if high == STAR else high
            out.append((min(low, high), max(low, high)))
        return out

    def contains(self, number: int, largest: int) -> bool:
        return any(low <= number <= high for low, high in self.bounds(largest))

    def pick(self, numbers: list[int]) -> list[int]:
        """The members of the ascending list `numbers` (sequence numbers or UIDs) in the set."""
        if not numbers:
            return []
        bounds = self.bounds(numbers[-1])
        return [n for n in numbers if any(low <= n <= high for low, high in bounds)]

    def __str__(self) -> str:
        if self.saved:
            return "$"
        def show(n: int) -> str:
            return "*" if n == STAR else str(n)
        return ",".join(show(a) if a == b else f"{show(a)}:{show(b)}" for a, b in self.ranges)


def _number(text: str) -> int:
    if text == "*":
        return STAR
    if not text.isdigit() or not text.isascii() or text[0] == "0":
        raise ValueError(f"bad sequence number {text!r}")
    value = int(text)
    if value > MAX_NUMBER:
        raise ValueError(f"sequence number out of range {text!r}")
    return value


def compact(numbers: list[int]) -> str:
    """`1:3,7` for [1, 2, 3, 7] (ascending input); the UIDPLUS / ESEARCH output form."""
    out: list[str] = []
    start = prev = None
    for n in numbers:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(out)
