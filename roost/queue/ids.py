"""Queue IDs in Postfix's two forms (postconf(5) enable_long_queue_ids, mail_queue(3) facts).

Short form: the arrival microseconds as 5 upper-case hex digits followed by the queue
file's inode number in upper-case hex (`3A1F2C0B12`). Long form: the arrival seconds in a
base-52 alphabet without vowels (at least 6 digits), the microseconds in the same base
(exactly 4 digits), the separator `z`, then the inode number in base 51 (the same alphabet
minus `z`), e.g. `4Ffg7y1dXQz9sGc`. Both forms are built after the file exists, because
the inode is part of the name; the inode makes an ID unique among live queue files.

`hash_key(queue_id)` is what hashed queue directories are named after: the microseconds as
5 hex digits, for both forms, so hash directories are always single hex digits 0-F.

Invariants: `is_queue_id` accepts exactly the names the two generators can produce.
Security: an ID is validated before it becomes part of a path (no `/`, no `..`).
"""

from __future__ import annotations

import re

LONG_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"  # 52 symbols, no vowels
INODE_ALPHABET = LONG_ALPHABET[:-1]                                       # 51: no `z` separator
LONG_SEPARATOR = "z"
SECONDS_MIN_WIDTH = 6
USEC_WIDTH = 4
SHORT_USEC_WIDTH = 5

_SHORT = re.compile(r"[0-9A-F]{6,}")
_LONG = re.compile(rf"[{LONG_ALPHABET}]{{{SECONDS_MIN_WIDTH + USEC_WIDTH},}}z[{INODE_ALPHABET}]+")
_INDEX = {symbol: value for value, symbol in enumerate(LONG_ALPHABET)}


def _encode(number: int, alphabet: str, width: int = 1) -> str:
    base = len(alphabet)
    digits = []
    while number or not digits:
        number, digit = divmod(number, base)
        digits.append(alphabet[digit])
    return "".join(reversed(digits)).rjust(width, alphabet[0])


def _decode(text: str) -> int:
    value = 0
    for symbol in text:
        value = value * len(LONG_ALPHABET) + _INDEX[symbol]
    return value


def short_id(usec: int, inode: int) -> str:
    return f"{usec:0{SHORT_USEC_WIDTH}X}{inode:X}"


def long_id(seconds: int, usec: int, inode: int) -> str:
    return (_encode(seconds, LONG_ALPHABET, SECONDS_MIN_WIDTH) + _encode(usec, LONG_ALPHABET, USEC_WIDTH)
            + LONG_SEPARATOR + _encode(inode, INODE_ALPHABET))


def make_queue_id(seconds: int, usec: int, inode: int, long_form: bool) -> str:
    return long_id(seconds, usec, inode) if long_form else short_id(usec, inode)


def is_long_id(queue_id: str) -> bool:
    return bool(_LONG.fullmatch(queue_id))


def is_queue_id(name: str) -> bool:
    """True for a name either generator can produce (so it is also safe as a file name)."""
    return bool(_SHORT.fullmatch(name) or _LONG.fullmatch(name))


def hash_key(queue_id: str) -> str:
    """The 5 hex digits of the arrival microseconds that hashed directory names come from."""
    if is_long_id(queue_id):
        time_part = queue_id.rpartition(LONG_SEPARATOR)[0]
        return f"{_decode(time_part[-USEC_WIDTH:]):0{SHORT_USEC_WIDTH}X}"
    return queue_id[:SHORT_USEC_WIDTH]
