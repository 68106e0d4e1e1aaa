"""SORT keys (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO) and the per-message sort data.

Keys: ARRIVAL (internal date), DATE (Date header as UTC instant; internal date when missing
or invalid, RFC 5256 §2.2), SIZE (RFC822.SIZE), SUBJECT (base subject, RFC 5256 §2.1),
FROM/TO/CC (local part of the first address, RFC 5256 §3), DISPLAYFROM/DISPLAYTO (the first
address's decoded display name, or its addr-spec when it has none, RFC 5957 §3). Strings
compare by their titlecase (upper-case) mapping as Dovecot's i;unicode-casemap does; the final tie-breaker is the sequence number ascending (RFC 5256 §3),
REVERSE only inverts the key it precedes. Like Dovecot (observed) the FIRST Subject header
is the one sorted on.

`SortData` is a small picklable/JSON-able record per message so the store can cache it next
to the envelope and bodystructure. Invariants: never raises. Security: keys are bounded by
the header size.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import asdict, dataclass

from roost.message.address import parse_address_list
from roost.message.encoded_words import decode_header
from roost.message.header import Header
from roost.message.subject import base_subject


@dataclass(frozen=True)
class SortData:
    sent: float | None          # Date header instant (None: missing/invalid)
    subject: str                # base subject in comparison form (casemap)
    is_reply: bool              # base subject extraction removed re/fwd markers
    from_mailbox: str
    to_mailbox: str
    cc_mailbox: str
    display_from: str
    display_to: str
    message_id: str | None      # for THREAD=REFERENCES
    references: tuple[str, ...]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "SortData":
        data = dict(data)
        data["references"] = tuple(data["references"])
        return cls(**data)


def _first_address(header: Header, name: str):
    for field in header.all(name):
        for address in parse_address_list(field.value):
            if not address.is_group_end:  # a group's name counts, as in Dovecot (observed)
                return address
    return None


def _mailbox(header: Header, name: str) -> str:
    address = _first_address(header, name)
    if address is None or address.mailbox is None:
        return ""
    return decode_header(address.mailbox).upper()


def _display(header: Header, name: str) -> str:
    address = _first_address(header, name)
    if address is None:
        return ""
    if address.name:
        return decode_header(address.name).upper()
    return decode_header(address.addr_spec).upper()


# RFC 5322 §3.3 date-time (with obsolete forms: 2-digit years, named zones, no seconds);
# anything else, e.g. a quoted date, is invalid for Dovecot (observed)
_DATE_SHAPE = re.compile(r"\A[ \t]*(?:[A-Za-z]{3}[ \t]*,[ \t]*)?\d{1,2}[ \t]+[A-Za-z]{3}[ \t]+\d{2,4}[ \t]+"
                         r"\d{1,2}:\d{2}")


def parse_date_header(header: Header):
    """The Date header as email.utils.parsedate_tz's tuple, or None when absent or invalid."""
    field = header.last("Date")
    if field is None:
        return None
    text = field.value.decode("latin-1")
    if not _DATE_SHAPE.match(text):
        return None
    return email.utils.parsedate_tz(text)


def sent_timestamp(header: Header) -> float | None:
    parsed = parse_date_header(header)
    if not parsed:
        return None
    try:
        return float(email.utils.mktime_tz(parsed))
    except (OverflowError, ValueError, TypeError):
        return None


def _msg_ids(value: bytes) -> list[str]:
    """The `<...>` message ids in a References / In-Reply-To value (RFC 5322 §3.6.4)."""
    out = []
    pos = 0
    text = value.decode("latin-1")
    while True:
        start = text.find("<", pos)
        if start < 0:
            return out
        end = text.find(">", start)
        if end < 0:
            return out
        ident = "".join(text[start + 1:end].split())
        if ident:
            out.append(ident)
        pos = end + 1


def sort_data(header: Header) -> SortData:
    subject_field = header.first("Subject")
    subject, is_reply = base_subject(subject_field.value if subject_field else None)
    message_ids = _msg_ids(header.last("Message-ID").value) if header.last("Message-ID") else []
    references: list[str] = []
    for field in header.all("References"):
        references.extend(_msg_ids(field.value))
    if not references:  # RFC 5256 §2.2: else the first msg-id of In-Reply-To
        reply_to = header.first("In-Reply-To")
        ids = _msg_ids(reply_to.value) if reply_to else []
        references = ids[:1]
    return SortData(
        sent=sent_timestamp(header), subject=subject.upper(), is_reply=is_reply,
        from_mailbox=_mailbox(header, "From"), to_mailbox=_mailbox(header, "To"),
        cc_mailbox=_mailbox(header, "Cc"), display_from=_display(header, "From"),
        display_to=_display(header, "To"), message_id=message_ids[0] if message_ids else None,
        references=tuple(references))


@dataclass(frozen=True)
class SortItem:
    seq: int
    uid: int
    size: int
    internal_date: float
    data: SortData


def _key_value(item: SortItem, key: str):
    data = item.data
    if key == "ARRIVAL":
        return item.internal_date
    if key == "DATE":
        return data.sent if data.sent is not None else item.internal_date
    if key == "SIZE":
        return item.size
    if key == "SUBJECT":
        return data.subject
    if key == "FROM":
        return data.from_mailbox
    if key == "TO":
        return data.to_mailbox
    if key == "CC":
        return data.cc_mailbox
    if key == "DISPLAYFROM":
        return data.display_from
    return data.display_to  # DISPLAYTO


def sort_items(items: list[SortItem], criteria: tuple[tuple[str, bool], ...]) -> list[SortItem]:
    """Items ordered by the criteria (RFC 5256 §3); stable passes from the last key back."""
    ordered = sorted(items, key=lambda item: item.seq)
    for key, reverse in reversed(criteria):
        ordered.sort(key=lambda item: _key_value(item, key), reverse=reverse)
    return ordered
