"""The mbox file format as Postfix local(8) writes it and Dovecot reads and annotates it.

Implements the traditional mbox format (RFC 4155: a message starts with a `From sender date`
line at the start of the file or after an empty line; body lines starting with `From ` are
escaped as `>From `, mboxo style, as Postfix does; nothing is unescaped on reading, as in
Dovecot) and Dovecot's per-message metadata headers (doc.dovecot.org "mbox"): `X-IMAPbase:
UIDVALIDITY LAST-UID [KEYWORDS...]` in the first message (the last UID used, as UW-IMAP defined
it and Dovecot reads it, zero-padded to 10 digits so it can be updated in place; `X-IMAP` in a
"FOLDER INTERNAL DATA" pseudo message when every message was expunged), `X-UID`, `Status` (R = \\Seen, O = not recent), `X-Status` (A =
\\Answered, F = \\Flagged, T = \\Draft, D = \\Deleted), `X-Keywords`, and `Content-Length`
(trusted when it lands on the next `From ` line, which Dovecot-written mboxes need because
Dovecot does not escape body `From ` lines). These headers are hidden from readers, as
Dovecot hides them.

Invariants: `scan` never raises on any byte content (garbage gives messages with no uid);
`Entry.content_*` offsets always lie within the scanned range; writing then scanning a
message gives back its visible bytes with LF line endings and `From ` lines escaped.
Security: metadata headers in an incoming message are dropped before saving, so a sender
cannot choose its UID or flags.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field

HIDDEN_HEADERS = (b"x-imapbase", b"x-imap", b"x-uid", b"status", b"x-status", b"x-keywords",
                  b"content-length")
_FROM_LINE = re.compile(
    rb"From (.*?) +(?:[A-Z][a-z]{2} +)?([A-Z][a-z]{2}) +(\d{1,2}) +(\d{1,2}):(\d{2})(?::(\d{2}))?"
    rb"(?: +[A-Z]{3,4}| +[+-]\d{4})? +(\d{4})(?: +[+-]\d{4})? *\r?\Z")
_MONTHS = {name: index for index, name in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
     b"Dec"), 1)}
STATUS_FLAGS = {"\\Seen": "R"}
X_STATUS_FLAGS = {"\\Answered": "A", "\\Flagged": "F", "\\Draft": "T", "\\Deleted": "D"}
UIDNEXT_WIDTH = 10
MAILER_DAEMON = "MAILER-DAEMON"


def from_line(sender: str, when: float) -> bytes:
    """`From sender  Mon Nov 23 22:10:49 2026` (two spaces, local time, as Postfix/Dovecot)."""
    shown = (sender or MAILER_DAEMON).replace(" ", "_").replace("\n", "").replace("\r", "")
    return f"From {shown}  {time.asctime(time.localtime(when))}\n".encode("utf-8", "replace")


def parse_from_line(line: bytes) -> tuple[str, float] | None:
    """(sender, time) of a valid From_ line (without its LF), else None."""
    match = _FROM_LINE.match(line)
    if not match:
        return None
    sender, month, day, hour, minute, second, year = match.groups()
    if month not in _MONTHS:
        return None
    try:
        local = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second or 0),
                 0, 0, -1)
        when = time.mktime(local)  # type: ignore[arg-type]
    except (OverflowError, ValueError):
        when = float(calendar.timegm(local[:6] + (0, 0, 0)))  # type: ignore[arg-type]
    return sender.decode("utf-8", "replace"), when


@dataclass
class Entry:
    """One message as found in an mbox file (offsets into the file)."""
    start: int  # offset of the From_ line
    header_start: int  # first byte after the From_ line
    body_start: int  # first byte after the empty line ending the header
    header_end: int  # where the empty line ending the header starts (= body_start if none)
    end: int  # end of the message content (the separator LF is not part of it)
    sender: str
    internal_date: float
    hidden: list[tuple[int, int]] = field(default_factory=list)  # metadata header byte ranges
    uid: int | None = None
    status: str = ""
    x_status: str = ""
    keywords: tuple[str, ...] = ()
    imapbase: tuple[int, int, tuple[str, ...]] | None = None  # (uidvalidity, last uid, keywords)
    uidnext_span: tuple[int, int] | None = None  # where the 10-digit last UID sits
    content_length: int | None = None
    pseudo: bool = False  # the "FOLDER INTERNAL DATA" message holding X-IMAP (not a message)

    @property
    def flags(self) -> frozenset[str]:
        found = {flag for flag, letter in STATUS_FLAGS.items() if letter in self.status}
        found |= {flag for flag, letter in X_STATUS_FLAGS.items() if letter in self.x_status}
        return frozenset(found)

    @property
    def recent(self) -> bool:
        return "O" not in self.status

    def visible_ranges(self) -> list[tuple[int, int]]:
        """Byte ranges of the message as readers see it (metadata headers cut out)."""
        ranges, position = [], self.header_start
        for start, end in self.hidden:
            if start > position:
                ranges.append((position, start))
            position = end
        if self.end > position:
            ranges.append((position, self.end))
        return ranges


def _header_lines(data, start: int, limit: int) -> tuple[list[tuple[int, int]], int, int]:
    """(start, end incl. LF) of each header line, where the empty line starts and where the
    body starts (after the empty line; both `limit` when the message has no body)."""
    lines: list[tuple[int, int]] = []
    position = start
    while position < limit:
        newline = data.find(b"\n", position, limit)
        end = limit if newline < 0 else newline + 1
        if data[position:end] in (b"\n", b"\r\n"):
            return lines, position, end
        lines.append((position, end))
        position = end
    return lines, limit, limit


def entries_before(entry: Entry) -> bool:
    """A pseudo message is only recognised as the first message of the file."""
    return entry.start != 0


def _parse_headers(data, entry: Entry, limit: int) -> None:
    lines, entry.header_end, entry.body_start = _header_lines(data, entry.header_start, limit)
    current: list[tuple[int, int]] = []
    fields: list[list[tuple[int, int]]] = []
    for start, end in lines:
        if data[start:start + 1] in (b" ", b"\t") and current:
            current.append((start, end))
        else:
            current = [(start, end)]
            fields.append(current)
    for group in fields:
        start, end = group[0][0], group[-1][1]
        name, colon, _rest = bytes(data[start:min(end, start + 64)]).partition(b":")
        if not colon:
            continue
        name = name.strip().lower()
        if name not in HIDDEN_HEADERS:
            continue
        entry.hidden.append((start, end))
        value = bytes(data[start + len(name) + 1:end]).decode("utf-8", "replace")
        value = value.split(":", 1)[1] if ":" in value else value
        words = value.split()
        if name == b"x-uid" and words and words[0].isdigit():
            entry.uid = int(words[0])
        elif name == b"status":
            entry.status = "".join(words)
        elif name == b"x-status":
            entry.x_status = "".join(words)
        elif name == b"x-keywords":
            entry.keywords = tuple(words)
        elif name == b"content-length" and words and words[0].isdigit():
            entry.content_length = int(words[0])
        elif name in (b"x-imapbase", b"x-imap") and len(words) >= 2 and words[0].isdigit() \
                and words[1].isdigit():
            entry.imapbase = (int(words[0]), int(words[1]), tuple(words[2:]))
            entry.pseudo = name == b"x-imap" and not entries_before(entry)
            raw = bytes(data[start:end])
            digits = re.search(rb"^[^:]*:\s*\d+\s+(\d+)", raw)
            if digits and len(digits.group(1)) == UIDNEXT_WIDTH:
                entry.uidnext_span = (start + digits.start(1), start + digits.end(1))
    if entry.uid is not None:
        entry.pseudo = False  # a real pseudo message never carries an X-UID


def _from_line_at(data, position: int, limit: int) -> bool:
    if data[position:position + 5] != b"From ":
        return False
    newline = data.find(b"\n", position, limit)
    line_end = limit if newline < 0 else newline
    return parse_from_line(bytes(data[position:line_end])) is not None


def _next_from(data, position: int, limit: int) -> int:
    """Offset of the next valid From_ line at or after `position` that starts a line, or -1."""
    while position < limit:
        if position == 0 or data[position - 1:position] == b"\n":
            if data[position:position + 5] == b"From ":
                newline = data.find(b"\n", position, limit)
                line_end = limit if newline < 0 else newline
                if parse_from_line(bytes(data[position:line_end])) is not None:
                    return position
        found = data.find(b"\nFrom ", position, limit)
        if found < 0:
            return -1
        position = found + 1
    return -1


def scan(data, start: int = 0, limit: int | None = None) -> list[Entry]:
    """Every message of `data` (bytes or mmap) from `start` (a From_ line or 0) to `limit`."""
    limit = len(data) if limit is None else limit
    entries: list[Entry] = []
    position = _next_from(data, start, limit)
    while position >= 0:
        newline = data.find(b"\n", position, limit)
        header_start = limit if newline < 0 else newline + 1
        parsed = parse_from_line(bytes(data[position:header_start]).rstrip(b"\n"))
        sender, when = parsed if parsed else ("", 0.0)
        entry = Entry(position, header_start, header_start, header_start, limit, sender, when)
        _parse_headers(data, entry, limit)
        following = -1
        if entry.content_length is not None:
            candidate = entry.body_start + entry.content_length
            if candidate == limit or (candidate < limit and data[candidate:candidate + 1] == b"\n"
                                      and (candidate + 1 == limit
                                           or _from_line_at(data, candidate + 1, limit))):
                following = candidate + 1 if candidate + 1 < limit else -1
                entry.end = candidate
            else:
                entry.content_length = None
        if entry.content_length is None:
            following = _next_from(data, entry.body_start, limit)
            entry.end = limit if following < 0 else following - 1  # the LF before From
            if (following < 0 and entry.end > entry.body_start and data[entry.end - 1:entry.end] == b"\n"
                    and (entry.end - 1 == entry.body_start or data[entry.end - 2:entry.end - 1] == b"\n")):
                entry.end -= 1  # the empty separator line at the end of the file
        entry.end = max(entry.end, entry.body_start)
        entries.append(entry)
        position = following
    return entries


def clean_header_block(header: bytes) -> bytes:
    """The incoming header block without Dovecot's metadata headers (and CR)."""
    kept: list[bytes] = []
    skipping = False
    for line in header.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name in HIDDEN_HEADERS
        if not skipping:
            kept.append(_escape_line(line))
    return b"".join(kept)


def _escape_line(line: bytes) -> bytes:
    return b">" + line if line.startswith(b"From ") else line


def escape_body_line(line: bytes) -> bytes:
    """mboxo escaping (RFC 4155 §2, Postfix local(8)): `From ` at line start gets `>`."""
    return _escape_line(line)


def metadata_headers(uid: int, flags: frozenset[str], keywords: frozenset[str],
                     content_length: int, imapbase: tuple[int, int, tuple[str, ...]] | None,
                     recent: bool = True) -> bytes:
    """Dovecot's metadata header lines for one message (X-IMAPbase only for the first)."""
    lines = []
    if imapbase is not None:
        uidvalidity, last_uid, base_keywords = imapbase
        extra = "".join(f" {word}" for word in base_keywords)
        lines.append(f"X-IMAPbase: {uidvalidity} {last_uid:0{UIDNEXT_WIDTH}d}{extra}")
    lines.append(f"X-UID: {uid}")
    status = "".join(letter for flag, letter in STATUS_FLAGS.items() if flag in flags)
    lines.append(f"Status: {status}{'' if recent else 'O'}")
    x_status = "".join(letter for flag, letter in X_STATUS_FLAGS.items() if flag in flags)
    if x_status:
        lines.append(f"X-Status: {x_status}")
    if keywords:
        lines.append("X-Keywords: " + " ".join(sorted(keywords)))
    lines.append(f"Content-Length: {content_length}")
    return "".join(line + "\n" for line in lines).encode("utf-8", "replace")


PSEUDO_TEXT = (b"This text is part of the internal format of your mail folder, and is not\n"
               b"a real message.  It is created automatically by the mail system software.\n"
               b"If deleted, important folder data will be lost, and it will be re-created\n"
               b"with the data reset to initial values.\n")


def pseudo_message(uidvalidity: int, last_uid: int, keywords: tuple[str, ...], when: float,
                   hostname: str) -> bytes:
    """The UW-IMAP/Dovecot pseudo message keeping UIDVALIDITY and UIDNEXT in an mbox whose
    last real message was expunged (so UIDs are never reused), with its separator line."""
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when))
    extra = "".join(f" {word}" for word in keywords)
    head = (f"Date: {date}\nFrom: Mail System Internal Data <MAILER-DAEMON@{hostname}>\n"
            f"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\n"
            f"Message-ID: <{int(when)}@{hostname}>\n"
            f"X-IMAP: {uidvalidity} {last_uid:0{UIDNEXT_WIDTH}d}{extra}\nStatus: RO\n\n")
    return from_line(MAILER_DAEMON, when) + head.encode() + PSEUDO_TEXT + b"\n"
