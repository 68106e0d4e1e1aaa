"""Dropping root privileges to `mail_owner` after the listeners are bound.

postconf(5) mail_owner: "the UNIX system account that owns the Postfix queue and most
Postfix daemon processes". roost's master binds its sockets (ports < 1024 need root), opens
its log files and TLS keys, then becomes mail_owner (supplementary groups, gid, uid, in that
order; the saved ids too, so root cannot be regained).

The drop happens only when running as root and mail_owner is a different, unprivileged
account. If mail_owner resolves to root the master keeps running as root with a warning;
if it is the current user there is nothing to do.
Invariants: after `drop_privileges` returned a "dropped" result, getuid/geteuid/getresuid are
all mail_owner's uid; any failure raises PrivilegeError before the first client is served.
Security: refuses an unknown mail_owner instead of guessing (like Postfix's master).
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass


class PrivilegeError(Exception):
    """str() is the message for a `fatal:` line."""


@dataclass(frozen=True)
class DropResult:
    dropped: bool
    warning: str | None  # a warning line to log, if any
    uid: int
    gid: int


def resolve_owner(mail_owner: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(mail_owner)
    except KeyError:
        if mail_owner.isdigit():
            try:
                return pwd.getpwuid(int(mail_owner))
            except KeyError:
                pass
        raise PrivilegeError(f"parameter mail_owner: unknown user name value: {mail_owner}") from None


def drop_privileges(mail_owner: str) -> DropResult:
    uid, gid = os.getuid(), os.getgid()
    if os.geteuid() != 0:
        # Not root: nothing to drop; mail_owner must still name an account (config sanity).
        resolve_owner(mail_owner)
        return DropResult(False, None, uid, gid)
    entry = resolve_owner(mail_owner)
    if entry.pw_uid == 0:
        return DropResult(False, f"mail_owner {mail_owner} has root privileges; "
                                 "the mail system keeps running as root", 0, gid)
    if entry.pw_uid == uid:
        return DropResult(False, None, uid, gid)
    try:
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
        os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot become mail_owner {mail_owner}: {exc.strerror or exc}") from None
    if os.getresuid() != (entry.pw_uid,) * 3:
        raise PrivilegeError(f"cannot become mail_owner {mail_owner}: uid did not change")
    return DropResult(True, None, entry.pw_uid, entry.pw_gid)
