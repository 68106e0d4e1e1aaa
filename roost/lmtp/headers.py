"""The trace header lines Dovecot's LMTP server prepends to a delivered message.

Implements Dovecot 2.3's LMTP trace headers (observed from Debian's dovecot lmtp, compared in
tests/net/test_lmtp_dovecot.py): `Return-Path: <sender>` (RFC 5321 §4.4), `Delivered-To:
<rcpt>` only when the transaction has a single recipient (lmtp_hdr_delivery_address = final),
and with lmtp_add_received_header = yes a `Received:` field (RFC 5321 §4.4 time-stamp line)

    Received: from HELO ([IP])      (no "([IP])" for a unix-socket client)
    \tby HOSTNAME with LMTP
    \tid TRANSACTION-ID
    \t(envelope-from <sender>)
    \tfor <rcpt>; DATE          (the `for` clause only for a single recipient)

Invariants: the result is CRLF-terminated lines; no client text can start a new line.
Security: CR/LF and other control characters in client-supplied values are replaced.
"""

from __future__ import annotations

import email.utils
import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: str) -> str:
    return _UNSAFE.sub("?", text)


def trace_headers(*, sender: str, recipient: str | None, helo: str | None, client_ip: str,
                  hostname: str, transaction_id: str, when: float,
                  add_received: bool = True, delivered_to: bool = True) -> bytes:
    """`recipient` is the single recipient's address, or None for several."""
    sender, helo_name = _clean(sender), _clean(helo or "")
    lines = [f"Return-Path: <{sender}>"]
    if recipient is not None and delivered_to:
        lines.append(f"Delivered-To: {_clean(recipient)}")
    if add_received:
        # a unix-socket client has no address: Dovecot then names only the LHLO name
        peer = f" ([{client_ip}])" if client_ip else ""
        source = f"from {helo_name or 'unknown'}{peer}"
        date = email.utils.formatdate(when, localtime=True)
        lines.append(f"Received: {source}")
        lines.append(f"\tby {_clean(hostname)} with LMTP")
        lines.append(f"\tid {transaction_id}")
        if recipient is not None:
            lines.append(f"\t(envelope-from <{sender}>)")
            lines.append(f"\tfor <{_clean(recipient)}>; {date}")
        else:
            lines.append(f"\t(envelope-from <{sender}>); {date}")
    return "".join(line + "\r\n" for line in lines).encode("utf-8", "replace")
