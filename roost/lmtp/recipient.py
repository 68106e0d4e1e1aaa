"""Who an LMTP recipient is: the userdb lookup with recipient_delimiter, and the detail.

Implements Dovecot 2.3's LMTP recipient handling (doc.dovecot.org "LMTP server",
settings recipient_delimiter and lmtp_save_to_detail_mailbox): the local part is cut at the
first of the `recipient_delimiter` characters (each character is a delimiter), the rest up to
"@" is the detail; the user is looked up without the detail (service "lmtp"); an unknown
user is answered `550 5.1.1 <rcpt> User doesn't exist: user` naming the looked-up name.

Invariants: `split_detail` never raises; a Recipient always carries the UserRecord found.
Security: the detail becomes a mailbox name only through the store, which validates names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roost.lmtp import replies
from roost.proto.smtp.reply import Reply


@dataclass(frozen=True)
class Recipient:
    address: str  # as given in RCPT TO
    user: Any  # roost.auth.lookup.UserRecord
    detail: str  # "" when none
    index: int  # 1-based count of RCPT commands in the transaction (Dovecot's :R<n>)


def split_detail(address: str, delimiters: str) -> tuple[str, str]:
    """("user@domain", "detail") of "user+detail@domain"; no delimiter: (address, "")."""
    local, at, domain = address.rpartition("@") if "@" in address else (address, "", "")
    cut = min((local.find(char) for char in delimiters if char and local.find(char) > 0),
              default=-1)
    if cut < 0:
        return address, ""
    return local[:cut] + at + domain, local[cut + 1:]


def lookup_recipient(lookup: Any, address: str, delimiters: str, index: int
                     ) -> Recipient | Reply:
    """The Recipient, or the reply refusing it (blocking: userdb I/O)."""
    name, detail = split_detail(address, delimiters)
    try:
        user = lookup.lookup_user(name, "lmtp")
    except Exception:  # a database driver failure is a temporary failure, never a crash
        return replies.lookup_failed(address)
    if user is None:
        return replies.user_unknown(address, name)
    return Recipient(address, user, detail, index)
