"""Header texts cleanup adds: Received (as Postfix smtpd(8)/pickup(8) write it), Date and
Message-Id (cleanup(8)), with Postfix's date format (mail_date: RFC 5322 section 3.3 date-time
plus the zone name in a comment). Observed from Postfix 3.7 queue files:

    Received: from HELO (NAME [ADDR])
    \t(using TLSv1.3 with cipher ... (256/256 bits))     smtpd_tls_received_header = yes
    \t(Authenticated sender: USER)                       smtpd_sasl_authenticated_header = yes
    \tby MYHOSTNAME (MAIL_NAME) with PROTOCOL id QUEUEID
    \tfor <RCPT>; DATE                                   exactly one recipient, else `id ID;\\n\\tDATE`

Local submissions: `Received: by MYHOSTNAME (MAIL_NAME, from userid UID)\\n\\tid ID; DATE`.
`Message-Id: <YYYYMMDDhhmmss.QUEUEID@MYHOSTNAME>` and `Date: DATE` (local time).
IPv6 client addresses appear as `[IPv6:...]` (RFC 5321 section 4.1.3).

Invariants: pure; returns header text without the final newline, lines joined by "\\n".
Security: client-supplied HELO text is kept as given but cannot add lines (CR/LF removed).
"""

from __future__ import annotations

import time

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


_last_date: tuple[int, str] = (-1, "")


def mail_date(when: float) -> str:
    """`Mon, 23 Nov 2026 22:12:15 +0000 (UTC)` in local time, English names (%e day). The
    text of the last second is kept: localtime() stats /etc/localtime in the C library, and
    every message of that second would format the same text again."""
    global _last_date
    second = int(when)
    cached = _last_date
    if cached[0] == second:
        return cached[1]
    text = _format_date(second)
    _last_date = (second, text)
    return text


def _format_date(when: float) -> str:
    t = time.localtime(when)
    offset = t.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return (f"{DAYS[t.tm_wday]}, {t.tm_mday:2d} {MONTHS[t.tm_mon - 1]} {t.tm_year} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{offset // 60:02d}{offset % 60:02d} ({t.tm_zone})")


def _clean(text: str) -> str:
    return text.replace("\r", "").replace("\n", "")


def rfc_address(address: str) -> str:
    # RFC 5321 section 4.1.3: IPv6 address literals carry the "IPv6:" tag
    return f"IPv6:{address}" if ":" in address else address


def received_header(*, client, myhostname: str, mail_name: str, queue_id: str, recipient: str | None,
                    when: float, tls_header: bool, sasl_header: bool, uid: int | None = None) -> str:
    date = mail_date(when)
    if client is None:
        lines = [f"Received: by {myhostname} ({mail_name}, from userid {0 if uid is None else uid})",
                 f"\tid {queue_id}; {date}"]
        return "\n".join(lines)
    helo = _clean(client.helo) if client.helo else client.name
    lines = [f"Received: from {helo} ({client.name} [{rfc_address(client.address)}])"]
    if tls_header and client.tls:
        lines += ["\t" + line.lstrip("\t") for line in client.tls.split("\n") if line.strip()]
    if sasl_header and client.sasl_username:
        lines.append(f"\t(Authenticated sender: {_clean(client.sasl_username)})")
    by = f"\tby {myhostname} ({mail_name}) with {client.protocol} id {queue_id}"
    if recipient is not None:
        lines += [by, f"\tfor <{recipient}>; {date}"]
    else:
        lines += [by + ";", f"\t{date}"]
    return "\n".join(lines)


def message_id(when: float, queue_id: str, myhostname: str) -> str:
    t = time.localtime(when)
    return f"{time.strftime('%Y%m%d%H%M%S', t)}.{queue_id}@{myhostname}"
