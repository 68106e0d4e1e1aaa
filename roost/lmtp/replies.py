"""The replies of roost's LMTP server, worded as Dovecot 2.3's LMTP server words them.

Implements RFC 2033 §4.2 replies (one per recipient after DATA) with RFC 3463 enhanced codes;
texts observed from Debian's Dovecot 2.3 lmtp (tests/net/test_lmtp_dovecot.py compares them).

Invariants: every builder returns a Reply; recipient addresses are shown in <> as received.
Security: addresses come from the client; Reply sanitizes control characters.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace

from roost.proto.smtp import reply as R
from roost.proto.smtp.reply import Reply

_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*\Z")


def shown(address: str) -> str:
    """The address as Dovecot prints it in <>: a local part that is no dot-atom is quoted
    (RFC 5321 §4.1.2 Quoted-string)."""
    local, at, domain = address.rpartition("@") if "@" in address else (address, "", "")
    if local and not _DOT_ATOM.match(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return local + at + domain


# Postfix's codes, Dovecot's words
MAIL_OK = replace(R.MAIL_OK, text="OK")
RCPT_OK = replace(R.RCPT_OK, text="OK")
DATA_GO = replace(R.START_DATA, text="OK")
OK = replace(R.OK, text="OK")
BYE = R.BYE
TRY_RCPT = Reply(252, "2.3.3", "Try RCPT instead")
UNKNOWN_COMMAND = Reply(500, "5.5.1", "Unknown command")
SHUTTING_DOWN = Reply(421, "4.3.2", "Shutting down")
IDLE_TIMEOUT = Reply(421, "4.4.2", "Disconnected for inactivity")
TLS_UNAVAILABLE = replace(R.TLS_UNAVAILABLE, text="TLS not available")
QUOTA_EXCEEDED = "Quota exceeded (mailbox for user is full)"  # Dovecot's quota_exceeded_message


def greeting(hostname: str, login_greeting: str) -> Reply:
    """`220 host Dovecot (Debian) ready.` (login_greeting)."""
    return Reply(220, None, f"{hostname} {login_greeting}")


def user_unknown(address: str, user: str) -> Reply:
    return Reply(550, "5.1.1", f"<{shown(address)}> User doesn't exist: {user}")


def lookup_failed(address: str) -> Reply:
    return Reply(451, "4.3.0", f"<{shown(address)}> Temporary user lookup failure")


def saved(address: str, delivery_id: str) -> Reply:
    return Reply(250, "2.0.0", f"<{shown(address)}> {delivery_id} Saved")


def over_quota(address: str, text: str, tempfail: bool = False) -> Reply:
    """quota_full_tempfail = yes answers 452 4.2.2 instead of 552 5.2.2."""
    return (Reply(452, "4.2.2", f"<{shown(address)}> {text}") if tempfail
            else Reply(552, "5.2.2", f"<{shown(address)}> {text}"))


def internal_error(address: str, when: float | None = None) -> Reply:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when or time.time()))
    return Reply(451, "4.2.0", f"<{shown(address)}> Internal error occurred. "
                               f"Refer to server log for more information. [{stamp}]")


def too_big(address: str) -> Reply:
    return Reply(552, "5.2.3", f"<{shown(address)}> Message size exceeds administrative limit")


def spool_failed(address: str) -> Reply:
    """The message could not be written to mail_temp_dir: try again later."""
    return Reply(451, "4.3.0", f"<{shown(address)}> Temporary internal failure")


# The shared SMTP machine words sequence errors as Postfix does; Dovecot's LMTP server says:
DOVECOT_WORDING = {
    R.NEED_MAIL: Reply(503, "5.5.0", "MAIL needed first"),
    R.NEED_RCPT: Reply(503, "5.5.0", "MAIL needed first"),  # DATA before MAIL
    R.NESTED_MAIL: Reply(503, "5.5.0", "MAIL already given"),
    R.NO_VALID_RECIPIENTS: Reply(503, "5.5.0", "No valid recipients"),
    R.NOT_RECOGNIZED: UNKNOWN_COMMAND,
}


def dovecot_wording(reply: Reply) -> Reply:
    """Dovecot's text for a protocol error the machine found (others unchanged)."""
    if reply.code == 555 and reply.text.startswith("Unsupported option"):
        return Reply(555, "5.5.4", "Unsupported parameters")
    return DOVECOT_WORDING.get(reply, reply)
