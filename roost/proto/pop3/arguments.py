"""Argument parsing of the TRANSACTION-state commands: message numbers and line counts.

RFC 1939 §5: LIST/RETR/DELE/UIDL take `msg`, TOP takes `msg n`; message numbers start at 1
and refer to the maildrop as it was when the session began (§4). The error texts and the
edge cases are Dovecot 2.3.19's, observed on the wire: only decimal digits (`+1`, `-1`, `x`
are "Invalid message number: ARG"), a 32-bit number (larger is "Message number too large:"
followed by what is left after the digits, or by the whole argument when it does not even fit
64 bits), nothing after it but, for TOP, one space ("Noise after message number: REST"),
leading zeros allowed (`LIST 01`), a 64-bit line count for TOP ("Invalid size", "Size too
large", "Noise after size").

Invariants: `parse_*` never raise; they return a value or the PopReply to send.
Security: echoed arguments go through replies.echo (no line breaks).
"""

from __future__ import annotations

import re

from roost.proto.pop3 import replies
from roost.proto.pop3.replies import PopReply

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1


_DIGITS = re.compile(r"[0-9]*")  # ASCII digits only (str.isdigit would take other scripts')


def _leading_digits(text: str) -> str:
    return _DIGITS.match(text).group()


def parse_number(args: str, *, then_space: bool) -> tuple[int, str] | PopReply:
    """A message number and the arguments after it (spaces skipped)."""
    digits = _leading_digits(args)
    if not digits:
        return replies.err(f"Invalid message number: {replies.echo(args)}")
    rest = args[len(digits):]
    value = int(digits)
    if value > UINT64_MAX:
        return replies.err(f"Message number too large: {replies.echo(args)}")
    if value > UINT32_MAX:
        return replies.err(f"Message number too large: {replies.echo(rest)}")
    if (rest[:1] != " ") if then_space else rest:
        return replies.err(f"Noise after message number: {replies.echo(rest)}")
    return value, rest.lstrip(" ")


def parse_line_count(args: str) -> int | PopReply:
    """TOP's `n` (RFC 1939 §7: a non-negative number of body lines)."""
    digits = _leading_digits(args)
    if not digits:
        return replies.err(f"Invalid size: {replies.echo(args)}")
    rest = args[len(digits):]
    if int(digits) > UINT64_MAX:
        return replies.err(f"Size too large: {replies.echo(args)}")
    if rest:
        return replies.err(f"Noise after size: {replies.echo(rest)}")
    return int(digits)
