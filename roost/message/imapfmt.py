"""ENVELOPE, BODY and BODYSTRUCTURE in exact IMAP syntax (RFC 3501 §7.4.2, RFC 9051 §7.5.2).

Field order and defaults follow RFC 3501 §7.4.2: body type, subtype, parameter list, id,
description, encoding, size; text adds lines; message/rfc822 adds envelope, body, lines; the
extension data of BODYSTRUCTURE is md5, disposition, language, location (non-multipart) and
subtype, parameters, disposition, language, location (multipart). String forms and the choices
Dovecot 2.3 makes are reproduced (observed): the last of duplicated single-valued envelope
headers wins while address headers accumulate, Sender and Reply-To default to From, subjects
and display names use the "for humans" form, a missing encoding is "7bit".
Formatted address lists are remembered by their header values (bounded), since a mailbox
repeats the same To/Cc/From values.
Invariants: pure functions of (data, Part) (the memory only saves work); never raise. Security: output strings are quoted
or literals (roost.proto.imap.quote), never raw client bytes in atom position.
"""

from __future__ import annotations

import re

from roost.message.address import Address, parse_address_list
from roost.message.header import Header, HeaderField
from roost.message.mime import Part, content_disposition
from roost.message.mimeparams import transfer_mechanism
from roost.proto.imap.quote import NIL, for_humans, nstring, string


_NOT_PLAIN = re.compile(rb'[\x00\r\n"\\\x80-\xff]')


def _nstring(value: bytes | None) -> bytes:
    """quote.nstring, with the common case (nothing to escape, no literal) inline."""
    if value is None:
        return NIL
    if _NOT_PLAIN.search(value) is None:
        return b'"' + value + b'"'
    return string(value)


def _address_list(addresses: list[Address]) -> bytes:
    if not addresses:
        return NIL
    items = [b"(" + b" ".join((for_humans(a.name), _nstring(a.route), _nstring(a.mailbox),
                                _nstring(a.host))) + b")" for a in addresses]
    return b"(" + b"".join(items) + b")"


# Formatted address lists by their header values: a mailbox repeats the same To, Cc and
# From values a lot. Bounded: short values only, and emptied when full.
_FORMATTED: dict[object, bytes] = {}
_FORMATTED_ENTRIES = 1024
_FORMATTED_VALUE_BYTES = 512


def _address_field(fields: list[HeaderField] | None) -> bytes:
    """The ENVELOPE address list of these fields (one header name), remembered for short
    values; NIL exactly when they list no address."""
    if not fields:
        return NIL
    key: object = fields[0].raw if len(fields) == 1 else tuple(f.raw for f in fields)
    formatted = _FORMATTED.get(key)
    if formatted is None:
        addresses: list[Address] = []
        for field in fields:
            addresses.extend(parse_address_list(field.value))
        formatted = _address_list(addresses)
        if sum(len(f.raw) for f in fields) <= _FORMATTED_VALUE_BYTES:
            if len(_FORMATTED) >= _FORMATTED_ENTRIES:
                _FORMATTED.clear()
            _FORMATTED[key] = formatted
    return formatted


ENVELOPE_FIELDS = ("Date", "Subject", "From", "Sender", "Reply-To", "To", "Cc", "Bcc",
                   "In-Reply-To", "Message-ID")  # every field envelope() looks at


def envelope(header: Header) -> bytes:
    """RFC 3501 §7.4.2 ENVELOPE of a message header."""
    get = header.by_name().get
    date, subject = get("date"), get("subject")
    in_reply_to, message_id = get("in-reply-to"), get("message-id")
    sender_from = _address_field(get("from"))
    sender = _address_field(get("sender"))
    reply_to = _address_field(get("reply-to"))
    items = [
        _nstring(date[-1].value if date else None),
        for_humans(subject[-1].raw.lstrip(b" \t") if subject else None),  # folding kept (Dovecot)
        sender_from, sender if sender != NIL else sender_from,  # RFC 3501 §7.4.2 defaults
        reply_to if reply_to != NIL else sender_from,
        _address_field(get("to")), _address_field(get("cc")), _address_field(get("bcc")),
        _nstring(in_reply_to[-1].value if in_reply_to else None),
        _nstring(message_id[-1].value if message_id else None),
    ]
    return b"(" + b" ".join(items) + b")"


def _param_list(params: list[tuple[str, str]]) -> bytes:
    if not params:
        return NIL
    return b"(" + b" ".join(string(n.encode("latin-1")) + b" " + string(v.encode("latin-1"))
                            for n, v in params) + b")"


def _disposition(part: Part) -> bytes:
    parsed = content_disposition(part)
    if parsed is None:
        return NIL
    kind, params = parsed
    return b"(" + string(kind.encode("latin-1")) + b" " + _param_list(params) + b")"


def _language(part: Part) -> bytes:
    value = part.mime_field("Content-Language")
    if value is None:
        return NIL
    tags = [t.strip(b" \t") for t in value.split(b",")]
    tags = [t for t in tags if t]
    if not tags:
        return NIL
    return b"(" + b" ".join(string(t) for t in tags) + b")"


def _encoding(part: Part) -> bytes:
    value = part.mime_field("Content-Transfer-Encoding")
    return string((transfer_mechanism(value) if value is not None else None) or b"7bit")


def body_structure(data: bytes, part: Part, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (extended=True) or BODY (extended=False) of `part` (RFC 3501 §7.4.2)."""
    if part.is_multipart:
        out = b"".join(body_structure(data, child, extended) for child in part.children)
        out += b" " + string(part.subtype.encode("latin-1"))
        if extended:
            out += b" " + b" ".join((_param_list(part.params), _disposition(part), _language(part),
                                    nstring(part.mime_field("Content-Location"))))
        return b"(" + out + b")"
    items = [string(part.ctype.encode("latin-1")), string(part.subtype.encode("latin-1")),
             _param_list(part.params), nstring(part.mime_field("Content-ID")),
             nstring(part.mime_field("Content-Description")), _encoding(part),
             b"%d" % part.body_size]
    if part.message is not None:
        items += [envelope(part.message.header), body_structure(data, part.message, extended),
                  b"%d" % part.body_lines(data)]
    elif part.ctype.lower() == "text":
        items.append(b"%d" % part.body_lines(data))
    if extended:
        items += [nstring(part.mime_field("Content-MD5")), _disposition(part),
                  _language(part), nstring(part.mime_field("Content-Location"))]
    return b"(" + b" ".join(items) + b")"
