"""Maildir file names and mailbox names on disk.

Implements the Maildir file name convention (cr.yp.to/proto/maildir.html; Dovecot's
extensions, doc.dovecot.org "Maildir Mailbox Format"): `<base>[,S=<size>][,W=<vsize>]:2,<info>`
where the info letters are sorted, upper-case system flags (D Draft, F Flagged, R Answered,
S Seen, T Deleted; P Passed is kept but has no IMAP flag) followed by lower-case keyword
letters (a-z, indexes into dovecot-keywords). New names are Dovecot's
`<secs>.M<usecs>P<pid>.<host>` with '/' and ':' in the host escaped as \\057 and \\072.
Also modified UTF-7 (RFC 3501 §5.1.3), the on-disk form of mailbox names, and the checks
that keep a mailbox name inside the mail root.

Invariants: parsing never raises (garbage gives no flags/size); the base name (up to the last
':') identifies a message for its whole life, renames only change the info part.
Security: mailbox_name_problem() rejects every name that could leave the mail root or
collide with Maildir's own entries (empty / "." / ".." components, '/', NUL, control chars,
over-long names).
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time

FLAG_LETTERS = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                "\\Deleted": "T"}
LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}
KEYWORD_LETTERS = "abcdefghijklmnopqrstuvwxyz"  # Dovecot: at most 26 keywords in names
INFO_SEPARATOR = ":2,"
MAX_NAME_LENGTH = 255  # one path component (NAME_MAX)
MAX_MAILBOX_NAME = 900  # whole name, as Dovecot's MAILBOX_LIST_NAME_MAX_LENGTH (roughly)
MAX_HIERARCHY_DEPTH = 32


def split_name(filename: str) -> tuple[str, str]:
    """(base, info letters) of a Maildir file name; info "" when there is no `:2,` part."""
    colon = filename.rfind(":")
    if colon < 0:
        return filename, ""
    base, info = filename[:colon], filename[colon + 1:]
    if info.startswith("2,"):
        letters = info[2:]
        comma = letters.find(",")  # Dovecot stops at a second ',' (extension data)
        return base, letters if comma < 0 else letters[:comma]
    return base, ""


def delivery_order(base: str) -> tuple:
    """Sort key putting new files in delivery order: `<secs>.M<usecs>...` numerically."""
    secs, _dot, rest = base.partition(".")
    usecs = ""
    if rest.startswith("M"):
        usecs = rest[1:].partition("P")[0]
    return (int(secs) if secs.isdigit() and len(secs) < 20 else 0,
            int(usecs) if usecs.isdigit() and len(usecs) < 20 else 0, base)


def size_fields(base: str) -> tuple[int | None, int | None]:
    """(S=, W=) of a base name: the stored size and the CRLF (virtual) size."""
    stored = virtual = None
    for field in base.split(",")[1:]:
        if field.startswith("S=") and field[2:].isdigit():
            stored = int(field[2:])
        elif field.startswith("W=") and field[2:].isdigit():
            virtual = int(field[2:])
    return stored, virtual


def flags_of(letters: str) -> frozenset[str]:
    return frozenset(LETTER_FLAGS[c] for c in letters if c in LETTER_FLAGS)


def keyword_indexes(letters: str) -> list[int]:
    return [ord(c) - 97 for c in letters if "a" <= c <= "z"]


def info_letters(flags, keyword_idx, keep: str = "") -> str:
    """Sorted info letters: system flags, `keep` (unknown upper-case letters such as P), then
    keyword letters."""
    upper = {FLAG_LETTERS[f] for f in flags if f in FLAG_LETTERS}
    upper.update(c for c in keep if c.isupper() and c not in LETTER_FLAGS)
    lower = {KEYWORD_LETTERS[i] for i in keyword_idx if 0 <= i < 26}
    return "".join(sorted(upper)) + "".join(sorted(lower))


def filename_with(base: str, letters: str) -> str:
    return f"{base}{INFO_SEPARATOR}{letters}"


def escaped_hostname() -> str:
    host = os.environ.get("DOVECOT_HOSTNAME") or socket.gethostname().split(".")[0] or "localhost"
    return host.replace("/", "\\057").replace(":", "\\072")


_last_time = [0, 0]
_time_lock = threading.Lock()
_HOST = escaped_hostname()


def new_base(stored_size: int, virtual_size: int) -> str:
    """A unique base name: `<secs>.M<usecs>P<pid>.<host>,S=<size>,W=<vsize>` (the
    microseconds advance when two names would share a time, as Dovecot does)."""
    now = time.time_ns() // 1000
    with _time_lock:
        secs, usecs = divmod(now, 1_000_000)
        last_secs, last_usecs = _last_time
        if (secs, usecs) <= (last_secs, last_usecs):
            secs, usecs = last_secs, last_usecs + 1
            if usecs == 1_000_000:
                secs, usecs = secs + 1, 0
        _last_time[:] = [secs, usecs]
    return f"{secs}.M{usecs}P{os.getpid()}.{_HOST},S={stored_size},W={virtual_size}"


# --- modified UTF-7 (RFC 3501 §5.1.3) ----------------------------------------------------------

def mutf7_encode(name: str) -> str:
    """Unicode -> modified UTF-7: printable ASCII stays, '&' becomes "&-", the rest is
    modified base64 of UTF-16BE between '&' and '-'."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be", "surrogatepass")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def mutf7_decode(text: str) -> str:
    """Modified UTF-7 -> Unicode; ValueError for malformed input."""
    out: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char != "&":
            if not 0x20 <= ord(char) <= 0x7E:
                raise ValueError("8-bit character in modified UTF-7")
            out.append(char)
            pos += 1
            continue
        end = text.find("-", pos + 1)
        if end < 0:
            raise ValueError("unterminated modified UTF-7 shift")
        chunk = text[pos + 1:end]
        if not chunk:
            out.append("&")
        else:
            if any(c not in _B64 for c in chunk):
                raise ValueError("bad modified base64")
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                data = base64.b64decode(padded, validate=True)
            except ValueError as error:
                raise ValueError("bad modified base64") from error
            if len(data) % 2:
                raise ValueError("odd UTF-16 length")
            out.append(data.decode("utf-16-be", "strict"))
        pos = end + 1
    return "".join(out)


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def disk_name(name: str) -> str:
    """The on-disk (modified UTF-7) form of one mailbox name or component."""
    return mutf7_encode(name)


def user_name(disk: str) -> str:
    """The Unicode name of an on-disk name; undecodable names are shown as they are."""
    try:
        return mutf7_decode(disk)
    except (ValueError, UnicodeDecodeError):
        return disk


def mailbox_name_problem(name: str, separator: str, layout: str = "maildir++") -> str | None:
    """Why `name` cannot be a mailbox name under this separator and layout, or None."""
    if not name:
        return "Empty mailbox name"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_MAILBOX_NAME:
        return "Mailbox name too long"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "Control characters not allowed in mailbox name"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        return "Invalid characters in mailbox name"
    if "/" in name and separator != "/":
        return "Character not allowed in mailbox name: '/'"
    parts = name.split(separator)
    if len(parts) > MAX_HIERARCHY_DEPTH:
        return "Mailbox name has too many levels"
    for index, part in enumerate(parts):
        if part in ("", ".", ".."):
            return "Invalid mailbox name: empty or '.' levels"
        if index == 0 and part.startswith("~"):
            return "Mailbox name cannot begin with '~'"
        if len(disk_name(part)) > MAX_NAME_LENGTH - 1:
            return "Mailbox name too long"
        if layout == "maildir++" and "." in part:
            return "Character not allowed in mailbox name: '.'"  # '.' is the on-disk separator
        if layout == "fs" and part.startswith("."):
            return "Mailbox name levels cannot begin with '.'"  # hidden, and dovecot's files
        if layout == "fs" and part in ("new", "cur", "tmp"):
            return "Mailbox name conflicts with a Maildir directory"
    return None
