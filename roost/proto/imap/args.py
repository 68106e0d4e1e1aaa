"""A reader over generic IMAP arguments with the typed accessors every command grammar uses.

RFC 3501 §9 productions: astring (atom / string), nstring, string, number / nz-number,
flag-list, date (`d-Mon-yyyy`), date-time (`"dd-Mon-yyyy hh:mm:ss +zzzz"`), mailbox (with
INBOX case-insensitive, §5.1, and modified UTF-7 decoding, §5.1.3, unless UTF8=ACCEPT is on,
RFC 6855 §3). Every accessor raises ArgError with the text Dovecot uses after
`BAD Error in IMAP command NAME: ` so the caller can answer with the tag.
Invariants: never returns malformed values. Security: numbers are range-checked (number64
where RFC 7162 allows it), strings that must be 7-bit are checked.
"""

from __future__ import annotations

import datetime
import re

from roost.proto.imap.lexer import Arg, Atom, ListArg, Literal, Quoted
from roost.proto.imap.utf7 import decode_mailbox

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE = re.compile(r"\A(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")
_DATE_TIME = re.compile(r"\A([ \d]?\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z")
MAX_NUMBER64 = 2**63 - 1
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
_SYSTEM_BY_UPPER = {f.upper(): f for f in SYSTEM_FLAGS}
_ATOM_CHARS = re.compile(r'\A[^\x00-\x20\x7f(){%*"\\\]]+\Z')


class ArgError(Exception):
    """Bad arguments (tagged BAD); str() is Dovecot's reason text."""


class ArgRefused(ArgError):
    """Well-formed but unusable arguments that Dovecot answers with a tagged NO."""


class Args:
    def __init__(self, items, utf8: bool = False, error: Exception | None = None):
        self.items = list(items)
        self.pos = 0
        self.utf8 = utf8
        self.error = error  # a syntax error after the last item: raised only when reached

    def more(self) -> bool:
        return self.pos < len(self.items) or self.error is not None

    def peek(self) -> Arg | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self) -> Arg:
        if self.pos >= len(self.items):
            if self.error is not None:
                raise ArgError(str(self.error))
            raise ArgError("Invalid arguments")
        item = self.items[self.pos]
        self.pos += 1
        return item

    def end(self) -> None:
        if self.error is not None and self.pos >= len(self.items):
            raise ArgError(str(self.error))
        if self.pos < len(self.items):
            raise ArgError("Invalid arguments")

    def peek_atom(self) -> str | None:
        item = self.peek()
        return item.value.upper() if isinstance(item, Atom) else None

    def atom(self) -> str:
        item = self.next()
        if not isinstance(item, Atom):
            raise ArgError("Invalid arguments")
        return item.value

    def list(self) -> "Args":
        item = self.next()
        if not isinstance(item, ListArg):
            raise ArgError("Invalid arguments")
        return Args(item.items, self.utf8)

    def string_bytes(self) -> bytes:
        """astring: atom, quoted or literal (RFC 3501 §9)."""
        item = self.next()
        if isinstance(item, Atom):
            return item.value.encode("ascii")
        if isinstance(item, (Quoted, Literal)):
            return item.value
        raise ArgError("Invalid arguments")

    def nstring_bytes(self) -> bytes | None:
        item = self.peek()
        if isinstance(item, Atom) and item.value.upper() == "NIL":
            self.pos += 1
            return None
        return self.string_bytes()

    def text(self, charset: str = "utf-8") -> str:
        raw = self.string_bytes()
        try:
            return raw.decode(charset)
        except (UnicodeDecodeError, LookupError):
            raise ArgError("Invalid string in charset " + charset) from None

    def number(self, nonzero: bool = False, limit: int = 2**32 - 1) -> int:
        value = self.atom()
        if not value.isascii() or not value.isdigit() or len(value) > 20:
            raise ArgError("Invalid number")
        number = int(value)
        if number > limit or (nonzero and number == 0):
            raise ArgError("Invalid number")
        return number

    def number64(self) -> int:
        return self.number(limit=MAX_NUMBER64)

    def mailbox(self) -> str:
        """A mailbox name: INBOX case-insensitively (RFC 3501 §5.1), modified UTF-7 decoded."""
        raw = self.string_bytes()
        return mailbox_name(raw, self.utf8)

    def date(self) -> datetime.date:
        """RFC 3501 §9 date: d-Mon-yyyy, optionally quoted."""
        text = self.string_bytes().decode("latin-1")
        match = _DATE.match(text)
        month = _month(match.group(2)) if match else 0
        if not match or not month:
            raise ArgError("Invalid search date parameter")
        try:  # lenient like Dovecot (observed): 31-Feb is 2-Mar, 0-Feb is 31-Jan
            first = datetime.date(int(match.group(3)), month, 1)
            return first + datetime.timedelta(days=int(match.group(1)) - 1)
        except (ValueError, OverflowError):
            raise ArgError("Invalid search date parameter") from None

    def flag_list(self) -> list[str]:
        """`(flag ...)` or, where allowed by the caller, bare flags; validated (RFC 3501 §9)."""
        return [parse_flag(a) for a in _atoms(self.list())]


def _atoms(args: Args) -> list[str]:
    out = []
    while args.more():
        out.append(args.atom())
    return out


def parse_flag(text: str) -> str:
    if text.startswith("\\"):
        upper = text.upper()
        if upper in _SYSTEM_BY_UPPER:
            return _SYSTEM_BY_UPPER[upper]
        if upper == "\\RECENT":
            raise ArgError("Invalid system flag \\RECENT")
        raise ArgError(f"Invalid system flag {upper}")
    if not _ATOM_CHARS.match(text):
        raise ArgError("Invalid flag")
    return text


def _month(name: str) -> int:
    lower = name.capitalize()
    return MONTHS.index(lower) + 1 if lower in MONTHS else 0


def parse_date_time(text: str) -> float | None:
    """RFC 3501 §9 date-time as a POSIX timestamp; None when malformed."""
    match = _DATE_TIME.match(text)
    if not match:
        return None
    month = _month(match.group(2))
    if not month:
        return None
    try:
        sign = 1 if match.group(7) == "+" else -1
        offset = datetime.timedelta(hours=int(match.group(8)), minutes=int(match.group(9)))
        zone = datetime.timezone(sign * offset)
        # lenient like Dovecot (observed): day 99 rolls over into the following months
        moment = datetime.datetime(int(match.group(3)), month, 1, tzinfo=zone) + datetime.timedelta(
            days=int(match.group(1).strip()) - 1, hours=int(match.group(4)),
            minutes=int(match.group(5)), seconds=int(match.group(6)))
    except (ValueError, OverflowError):
        return None
    return moment.timestamp()


def mailbox_name(raw: bytes, utf8: bool) -> str:
    if utf8:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ArgRefused("Mailbox name is not valid UTF-8") from None
    else:
        try:
            name = decode_mailbox(raw)
        except ValueError:
            raise ArgRefused("Mailbox name is not valid mUTF-7") from None
    return "INBOX" if name.upper() == "INBOX" else name
