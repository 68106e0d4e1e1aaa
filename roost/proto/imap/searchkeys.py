"""SEARCH program as typed values (RFC 3501 §6.4.4, RFC 9051 §6.4.4, RFC 7162 §3.1.5 MODSEQ,
RFC 5032 WITHIN, RFC 5182 `$`).

The parser (roost.proto.imap.parser) builds these; roost.message.search evaluates them. A
search program is an implicit AND of its keys (RFC 3501 §6.4.4), represented as And.
Invariants: immutable; dates are datetime.date; strings are already decoded to str from the
command's CHARSET. Security: nesting depth is bounded by the parser (MAX_SEARCH_DEPTH).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from roost.proto.imap.seqset import SequenceSet

# ANSWERED DELETED DRAFT FLAGGED SEEN and their UN- forms map to system flags
SYSTEM_FLAG_KEYS = {"ANSWERED": "\\Answered", "DELETED": "\\Deleted", "DRAFT": "\\Draft",
                    "FLAGGED": "\\Flagged", "SEEN": "\\Seen"}


@dataclass(frozen=True)
class All:
    pass


@dataclass(frozen=True)
class And:
    keys: tuple


@dataclass(frozen=True)
class Or:
    left: object
    right: object


@dataclass(frozen=True)
class Not:
    key: object


@dataclass(frozen=True)
class Flag:
    flag: str        # "\\Seen" or a keyword
    present: bool    # False for UNSEEN, UNKEYWORD...


@dataclass(frozen=True)
class Recent:        # RECENT; NEW = And(Recent, Flag(\\Seen, False)); OLD = Not(Recent)
    pass


@dataclass(frozen=True)
class Header:
    field: str       # "From", "Subject"... HEADER field-name
    value: str
    kind: str = "raw"   # raw (HEADER f s) | compress (SUBJECT) | address (FROM TO CC BCC)


@dataclass(frozen=True)
class Body:
    value: str


@dataclass(frozen=True)
class Text:
    value: str


@dataclass(frozen=True)
class Date:
    op: str          # "before" | "on" | "since"
    sent: bool       # SENTBEFORE... (Date header) vs BEFORE... (internal date)
    date: datetime.date


@dataclass(frozen=True)
class Size:
    larger: bool
    octets: int


@dataclass(frozen=True)
class Sequence:
    numbers: SequenceSet


@dataclass(frozen=True)
class Uid:
    numbers: SequenceSet


@dataclass(frozen=True)
class ModSeq:
    value: int       # RFC 7162 §3.1.5: matches messages with MODSEQ >= value


@dataclass(frozen=True)
class Within:
    older: bool      # OLDER n: internal date more than n seconds ago; YOUNGER n: within
    seconds: int


def needs_message(key) -> bool:
    """Whether evaluating `key` reads the message itself (not just flags, size, dates)."""
    if isinstance(key, (Header, Body, Text)):
        return True
    if isinstance(key, Date):
        return key.sent
    if isinstance(key, And):
        return any(needs_message(k) for k in key.keys)
    if isinstance(key, Or):
        return needs_message(key.left) or needs_message(key.right)
    if isinstance(key, Not):
        return needs_message(key.key)
    return False
