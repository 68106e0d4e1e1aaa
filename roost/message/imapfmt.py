"""ENVELOPE, BODY and BODYSTRUCTURE in exact IMAP syntax (RFC 3501 §7.4.2, RFC 9051 §7.5.2).

Field order and defaults follow RFC 3501 §7.4.2: body type, subtype, parameter list, id,
description, encoding, size; text adds lines; message/rfc822 adds envelope, body, lines; the
extension data of BODYSTRUCTURE is md5, disposition, language, location (non-multipart) and
subtype, parameters, disposition, language, location (multipart). String forms and the choices
Dovecot 2.3 makes are reproduced (observed): the last of duplicated single-valued envelope
headers wins while address headers accumulate, Sender and Reply-To default to From, subjects
and display names use the "for humans" form, a missing encoding is "7bit".
Invariants: pure functions of (data, Part); never raise. Security: output strings are quoted
or literals (roost.proto.imap.quote), never raw client bytes in atom position.
"""

from __future__ import annotations

from roost.message.address import Address, parse_address_list
from roost.message.header import Header
from roost.message.mime import Part, content_disposition
from roost.message.mimeparams import transfer_mechanism
from roost.proto.imap.quote import NIL, for_humans, nstring, string


def _header_value(header: Header, name: str) -> bytes | None:
    field = header.last(name)
    return None if field is None else field.value


def _raw_value(header: Header, name: str) -> bytes | None:
    """The value with its folding kept: ENVELOPE's human forms see the CRLFs (Dovecot)."""
    field = header.last(name)
    return None if field is None else field.raw.lstrip(b" \t")


def _addresses(header: Header, name: str) -> list[Address]:
    out: list[Address] = []
    for field in header.all(name):
        out.extend(parse_address_list(field.value))
    return out


def _address_list(addresses: list[Address]) -> bytes:
    if not addresses:
        return NIL
    items = [b"(" + b" ".join((for_humans(a.name), nstring(a.route), nstring(a.mailbox),
                                nstring(a.host))) + b")" for a in addresses]
    return b"(" + b"".join(items) + b")"


def envelope(header: Header) -> bytes:
    """RFC 3501 §7.4.2 ENVELOPE of a message header."""
    sender_from = _addresses(header, "From")
    sender = _addresses(header, "Sender") or sender_from  # RFC 3501 §7.4.2 defaults
    reply_to = _addresses(header, "Reply-To") or sender_from
    items = [
        nstring(_header_value(header, "Date")),
        for_humans(_raw_value(header, "Subject")),
        _address_list(sender_from), _address_list(sender), _address_list(reply_to),
        _address_list(_addresses(header, "To")), _address_list(_addresses(header, "Cc")),
        _address_list(_addresses(header, "Bcc")),
        nstring(_header_value(header, "In-Reply-To")),
        nstring(_header_value(header, "Message-ID")),
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
