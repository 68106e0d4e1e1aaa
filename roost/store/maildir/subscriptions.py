"""The `subscriptions` file: which mailboxes a user subscribed to (IMAP SUBSCRIBE/LSUB).

Implements Dovecot 2.3's file (observed with Debian's Dovecot 2.3.19): version 2 starts with
the line `V<TAB>2` and an empty line, then one mailbox a line with the hierarchy levels
separated by TAB, names in modified UTF-7 (RFC 3501 §5.1.3); version 1 (no header) has one
name a line with the namespace separator. Written to a temporary file and renamed over.

Invariants: read() never raises (a missing or odd file is an empty or partial list); order
of first subscription is kept; no duplicates.
Security: names are written only after Layout.normalize accepted them; the file is 0600.
"""

from __future__ import annotations

import os

from roost.store.maildir.names import disk_name, user_name

FILE_NAME = "subscriptions"


def parse(data: bytes, separator: str) -> list[str]:
    lines = data.decode("utf-8", "replace").split("\n")
    names: list[str] = []
    if lines and lines[0] == "V\t2":
        body = lines[2:] if len(lines) > 1 and lines[1] == "" else lines[1:]
        for line in body:
            if line:
                names.append(separator.join(user_name(part) for part in line.split("\t")))
    else:
        for line in lines:
            if line.strip():
                names.append(user_name(line.strip()))
    unique: list[str] = []
    for name in names:
        if name not in unique:
            unique.append(name)
    return unique


def serialize(names: list[str], separator: str) -> bytes:
    lines = ["V\t2", ""]
    lines.extend("\t".join(disk_name(part) for part in name.split(separator)) for name in names)
    return ("\n".join(lines) + "\n").encode("utf-8")


def read(directory: str, separator: str) -> list[str]:
    try:
        with open(os.path.join(directory, FILE_NAME), "rb") as handle:
            return parse(handle.read(1 << 20), separator)
    except FileNotFoundError:
        return []


def update(directory: str, separator: str, name: str, subscribed: bool, *,
           owner: tuple[int, int] | None = None) -> None:
    from roost.store.maildir.dotlock import DotLock

    path = os.path.join(directory, FILE_NAME)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    with DotLock(path) as lock:
        names = read(directory, separator)
        if subscribed and name not in names:
            names.append(name)
        elif not subscribed and name in names:
            names.remove(name)
        else:
            return
        lock.replace(serialize(names, separator), owner=owner)
