"""dovecot-keywords: which keyword each Maildir info letter a-z stands for.

Implements Dovecot's file (doc.dovecot.org "Maildir Mailbox Format", observed with Dovecot
2.3.19): one `<index> <keyword>` line per keyword, index 0..25 = letters a..z. Indexes are
only ever added, never renumbered (file names already on disk refer to them). Written with
`dovecot-keywords.lock` renamed over the file (Dovecot's dotlock replace).

Invariants: parse() never raises; bad lines are skipped with a warning; keyword names are
IMAP atoms (RFC 3501 §9 flag-keyword) without spaces, at most mail_max_keyword_length (50).
Security: names are validated before they are written, so the file stays one keyword a line.
"""

from __future__ import annotations

import logging
import os

from roost.store.maildir.dotlock import DotLock

FILE_NAME = "dovecot-keywords"
MAX_KEYWORDS = 26
MAX_KEYWORD_LENGTH = 50
ATOM_SPECIALS = set('(){ %*"\\]')
log = logging.getLogger("roost.store")


def valid_keyword(name: str) -> bool:
    """An IMAP flag-keyword atom (RFC 3501 §9): no atom-specials, CTLs, spaces or 8-bit."""
    return (0 < len(name) <= MAX_KEYWORD_LENGTH and not name.startswith("\\")
            and all(0x21 <= ord(c) <= 0x7E and c not in ATOM_SPECIALS for c in name))


def parse(data: bytes, path: str = FILE_NAME) -> dict[int, str]:
    keywords: dict[int, str] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        index_text, _space, name = raw.decode("utf-8", "replace").partition(" ")
        if (not index_text.isdigit() or int(index_text) >= MAX_KEYWORDS
                or not valid_keyword(name) or name in keywords.values()):
            log.warning("%s line %d: ignoring invalid keyword line", path, number)
            continue
        keywords.setdefault(int(index_text), name)
    return keywords


def read(directory: str) -> dict[int, str]:
    path = os.path.join(directory, FILE_NAME)
    try:
        with open(path, "rb") as handle:
            return parse(handle.read(1 << 16), path)
    except FileNotFoundError:
        return {}


def serialize(keywords: dict[int, str]) -> bytes:
    return "".join(f"{i} {name}\n" for i, name in sorted(keywords.items())).encode()


def ensure(directory: str, names, current: dict[int, str], *,
           owner: tuple[int, int] | None = None) -> dict[int, str]:
    """The keyword map with every name in `names` given an index when there is room
    (re-reading the file under its lock first); names beyond 26 stay without a letter."""
    wanted = [n for n in names if n not in current.values() and valid_keyword(n)]
    if not wanted:
        return current
    path = os.path.join(directory, FILE_NAME)
    lock = DotLock(path)
    lock.acquire()
    try:
        keywords = read(directory)
        added = False
        for name in wanted:
            if name in keywords.values():
                continue
            free = next((i for i in range(MAX_KEYWORDS) if i not in keywords), None)
            if free is None:
                break
            keywords[free] = name
            added = True
        if added:
            lock.replace(serialize(keywords), fsync=False, owner=owner)
        return keywords
    finally:
        lock.release()
