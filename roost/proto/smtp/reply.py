"""SMTP replies as values: `Reply(550, "5.1.1", "<x@y>: Recipient address rejected: ...")`.

RFC 5321 §4.2 (reply lines: three digits, then `-` on every line but the last, else a space),
RFC 3463 / RFC 2034 (enhanced status codes `class.subject.detail` after the code when
ENHANCEDSTATUSCODES is in force). Postfix's reply texts are built by the caller; this module
only formats and validates.

Invariants: a Reply is immutable; `lines()` always yields at least one CRLF-terminated line;
the enhanced code's class digit equals the reply code's first digit (checked at creation).
Security: reply text never contains CR or LF from client input (newlines split into lines,
other control characters replaced by `?`), so a client cannot inject extra reply lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}\Z")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str | None  # "5.1.1"; None for replies without one (220, 221 on HELO sessions)
    text: str

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code out of range: {self.code}")
        if self.enhanced is not None:
            if not _ENHANCED.match(self.enhanced) or self.enhanced[0] != str(self.code)[0]:
                raise ValueError(f"enhanced status {self.enhanced!r} does not fit {self.code}")

    @property
    def is_positive(self) -> bool:
        return self.code < 400

    @property
    def is_temporary(self) -> bool:
        return 400 <= self.code < 500

    def lines(self, enhanced_codes: bool = True) -> list[bytes]:
        """Wire lines (RFC 5321 §4.2.1 multiline form), each ending in CRLF."""
        parts = self.text.split("\n") if self.text else [""]
        prefix = f"{self.enhanced} " if (enhanced_codes and self.enhanced) else ""
        out = []
        for index, part in enumerate(parts):
            sep = " " if index == len(parts) - 1 else "-"
            clean = _CONTROL.sub("?", part.rstrip("\r"))
            out.append(f"{self.code}{sep}{prefix}{clean}".rstrip(" ").encode("utf-8", "replace") + b"\r\n"
                       if clean or prefix else f"{self.code}{sep}".encode() + b"\r\n")
        return out

    def to_bytes(self, enhanced_codes: bool = True) -> bytes:
        # a pure function of the fields, kept on the (immutable) instance: the named replies
        # are formatted once per process instead of once per command
        key = "_wire" if enhanced_codes else "_wire_plain"
        wire = self.__dict__.get(key)
        if wire is None:
            wire = b"".join(self.lines(enhanced_codes))
            object.__setattr__(self, key, wire)
        return wire

    def __str__(self) -> str:
        head = f"{self.code} {self.enhanced} " if self.enhanced else f"{self.code} "
        return head + self.text.replace("\n", " ")


class ReplyError(Exception):
    """Raised anywhere while handling a command; written at the command boundary."""

    def __init__(self, reply: Reply):
        super().__init__(str(reply))
        self.reply = reply


# --- Postfix's reply texts, as Debian's Postfix 3.7 smtpd(8) sends them ----------------------
# (observed against a private Postfix instance; tests/net/test_smtpd_oracle.py compares them)

OK = Reply(250, "2.0.0", "Ok")
MAIL_OK = Reply(250, "2.1.0", "Ok")
RCPT_OK = Reply(250, "2.1.5", "Ok")
START_DATA = Reply(354, None, "End data with <CR><LF>.<CR><LF>")
BYE = Reply(221, "2.0.0", "Bye")
READY_TLS = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")

SYNC_ERROR = Reply(554, "5.5.0", "Error: SMTP protocol synchronization")  # smtpd_forbid_unauth_pipelining
NOT_RECOGNIZED = Reply(500, "5.5.2", "Error: command not recognized")
BAD_SYNTAX = Reply(500, "5.5.2", "Error: bad syntax")
BAD_UTF8 = Reply(500, "5.5.2", "Error: bad UTF-8 syntax")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Error: command not implemented")
HELO_SYNTAX = Reply(501, None, "Syntax: HELO hostname")
EHLO_SYNTAX = Reply(501, None, "Syntax: EHLO hostname")
LHLO_SYNTAX = Reply(501, None, "Syntax: LHLO hostname")
MAIL_SYNTAX = Reply(501, "5.5.4", "Syntax: MAIL FROM:<address>")
RCPT_SYNTAX = Reply(501, "5.5.4", "Syntax: RCPT TO:<address>")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
RSET_SYNTAX = Reply(501, "5.5.4", "Syntax: RSET")
QUIT_SYNTAX = Reply(501, "5.5.4", "Syntax: QUIT")
STARTTLS_SYNTAX = Reply(501, "5.5.4", "Syntax: STARTTLS")
VRFY_SYNTAX = Reply(501, "5.5.4", "Syntax: VRFY address [SMTPUTF8]")
ETRN_SYNTAX = Reply(500, None, "Syntax: ETRN domain")
AUTH_SYNTAX = Reply(501, "5.5.4", "Syntax: AUTH mechanism")
BDAT_SYNTAX = Reply(521, "5.5.4", "Syntax: BDAT count [LAST]")  # then disconnect
SEND_HELO_FIRST = Reply(503, "5.5.1", "Error: send HELO/EHLO first")
SEND_LHLO_FIRST = Reply(503, "5.5.1", "Error: send LHLO first")
NESTED_MAIL = Reply(503, "5.5.1", "Error: nested MAIL command")
NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Error: need RCPT command")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "Error: no valid recipients")
TRANSACTION_IN_PROGRESS = Reply(503, "5.5.1", "Error: MAIL transaction in progress")
ETRN_IN_TRANSACTION = Reply(503, None, "Error: MAIL transaction in progress")
ETRN_SEND_HELO_FIRST = Reply(503, None, "Error: send HELO/EHLO first")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_SIZE_SYNTAX = Reply(501, "5.5.4", "Bad message size syntax")
SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds fixed limit")
BAD_RET = Reply(501, "5.5.4", "Bad RET parameter syntax")
BAD_ENVID = Reply(501, "5.5.4", "Bad ENVID parameter syntax")
BAD_NOTIFY = Reply(501, "5.5.4", "Error: Bad NOTIFY parameter syntax")
BAD_ORCPT = Reply(501, "5.5.4", "Error: Bad ORCPT parameter syntax")
FORBIDDEN_COMMAND = Reply(221, "2.7.0", "Error: I can break rules, too. Goodbye.")
DSN_DISABLED = Reply(501, "5.7.1", "DSN support is disabled")
BAD_AUTH_PARAM = Reply(501, "5.5.4", "Bad AUTH parameter syntax")
SMTPUTF8_REQUIRED = Reply(553, "5.6.7", "Must declare SMTPUTF8 to send unicode address")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Error: too many recipients")
VRFY_DISABLED = Reply(502, "5.5.1", "VRFY command is disabled")
TLS_ALREADY_ACTIVE = Reply(554, "5.5.1", "Error: TLS already active")
MUST_STARTTLS = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available due to local problem")
AUTH_NOT_ENABLED = Reply(503, "5.5.1", "Error: authentication not enabled")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Error: already authenticated")
AUTH_ABORTED = Reply(501, "5.7.0", "Authentication aborted")
AUTH_TEMPFAIL = Reply(454, "4.7.0", "Temporary authentication failure")
AUTH_ENCRYPTION_REQUIRED = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")
AUTH_INVALID_MECHANISM = Reply(535, "5.7.8", "Error: authentication failed: Invalid authentication mechanism")
AUTH_BAD_BASE64 = Reply(501, "5.5.2", "Error: authentication failed: Invalid base64 data in continued response")
CONFIG_ERROR = Reply(451, "4.3.5", "Server configuration error")
LOCAL_ERROR = Reply(451, "4.3.0", "Error: queue file write error")
BARE_LF_IN_DATA_CODE = 550  # smtpd_forbid_bare_newline_reject_code's default


def unsupported_option(option: str) -> Reply:
    return Reply(555, "5.5.4", f"Unsupported option: {option}")


def auth_failed(reason: str = "") -> Reply:
    return Reply(535, "5.7.8", f"Error: authentication failed: {reason or '(reason unavailable)'}")


def bare_newline(hostname: str, code: int = BARE_LF_IN_DATA_CODE) -> Reply:
    return Reply(code, f"{str(code)[0]}.5.2", f"{hostname} Error: bare <LF> received")


def timeout_exceeded(hostname: str) -> Reply:
    return Reply(421, "4.4.2", f"{hostname} Error: timeout exceeded")


def too_many_errors(hostname: str) -> Reply:
    return Reply(421, "4.7.0", f"{hostname} Error: too many errors")


def queued(queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


def chunk_ok(size: int) -> Reply:
    return Reply(250, "2.0.0", f"Ok: {size} bytes")


def chunk_queued(size: int, queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: {size} bytes queued as {queue_id}")
