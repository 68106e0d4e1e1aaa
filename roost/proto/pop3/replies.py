"""POP3 replies as values: `PopReply(ok, code, text)` → `+OK text` / `-ERR [CODE] text`.

RFC 1939 §3 (status indicators `+OK` / `-ERR`, one line, CRLF), RFC 2449 §8 and RFC 3206
(extended response codes in brackets: `[IN-USE]`, `[LOGIN-DELAY]`, `[SYS/TEMP]`, `[SYS/PERM]`,
`[AUTH]`). The texts are those Debian's Dovecot 2.3.19 pop3-login and pop3 print (observed
transcripts; tests/net/test_pop3_dovecot_differential.py compares them byte for byte).

Invariants: `wire()` is always exactly one CRLF-terminated line; a reply never carries CR,
LF or NUL from client input (`echo` replaces them), so echoed arguments cannot add lines.
Security: replies for a wrong password and an unknown user are the same value (AUTH_FAILED).
"""

from __future__ import annotations

from dataclasses import dataclass

CRLF = b"\r\n"


@dataclass(frozen=True)
class PopReply:
    ok: bool
    code: str | None  # RFC 2449 §8 response code without brackets ("IN-USE", "SYS/TEMP")
    text: str

    def wire(self) -> bytes:
        status = "+OK" if self.ok else "-ERR"
        parts = [status]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.text:
            parts.append(self.text)
        return " ".join(parts).encode("utf-8", "surrogateescape") + CRLF

    def with_text(self, text: str) -> "PopReply":
        return PopReply(self.ok, self.code, text)


def ok(text: str = "") -> PopReply:
    return PopReply(True, None, text)


def err(text: str, code: str | None = None) -> PopReply:
    return PopReply(False, code, text)


def echo(data: bytes | str) -> str:
    """Client text as a reply may quote it. Only LF could end a reply line early, and a
    command line never contains one (LF ends it); a lone CR is echoed as Dovecot does
    (`NOOP\r` gives `-ERR Unknown command: NOOP\r\r\n`). NUL already ended the text."""
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    return text.replace("\n", " ")


def multiline(lines: list[bytes]) -> bytes:
    """RFC 1939 §3 multi-line body: lines (without CRLF, already dot-stuffed) then `.`."""
    return b"".join(line + CRLF for line in lines) + b"." + CRLF


# --- AUTHORIZATION state (Dovecot's pop3-login) ---------------------------------------------
OK_EMPTY = ok()
BEGIN_TLS = ok("Begin TLS negotiation now.")
LOGIN_QUIT = ok("Logging out")
TLS_ALREADY_ACTIVE = err("TLS is already active.")
TLS_UNAVAILABLE = err("TLS support isn't enabled.")
LOGIN_UNKNOWN_COMMAND = err("Unknown command.")
LOGIN_TOO_MANY_BAD = err("Too many invalid bad commands.")
NO_USERNAME = err("No username given.")
PLAINTEXT_DISALLOWED = err("Plaintext authentication disallowed on non-secure (SSL/TLS) "
                           "connections.", "AUTH")
PLAINTEXT_MECH_DISABLED = err("Plaintext authentication disabled.", "AUTH")
UNSUPPORTED_MECHANISM = err("Unsupported authentication mechanism.", "AUTH")
SSL_REQUIRED = err("Authentication not allowed until SSL/TLS is enabled.", "AUTH")
AUTH_FAILED = err("Authentication failed.", "AUTH")  # wrong password and unknown user alike
AUTH_TEMP_FAILED = err("Temporary authentication failure.", "SYS/TEMP")
AUTH_ABORTED = err("Authentication aborted by client.")
INVALID_BASE64 = err("Invalid base64 in response", "AUTH")
INVALID_BASE64_INITIAL = err("Invalid base64 data in initial response", "AUTH")
LOGGED_IN = ok("Logged in.")
INPUT_BUFFER_FULL = err("Input buffer full, aborting")
LOGIN_INACTIVITY = err("Disconnected for inactivity.")
SHUTTING_DOWN = err("Server shutting down.", "SYS/TEMP")

# --- TRANSACTION state (Dovecot's pop3) -------------------------------------------------
NOOP_OK = ok()
DELETED_OK = ok("Marked to be deleted.")
MESSAGE_IS_DELETED = err("Message is deleted.")
QUIT_OK = ok("Logging out.")
QUIT_DELETED = ok("Logging out, messages deleted.")
INPUT_LINE_TOO_LONG = err("Input line too long.")
TOO_MANY_BAD = err("Too many bad commands.")
INACTIVITY = err("Disconnected for inactivity.")
IN_USE = err("Mailbox is locked by another POP3 session.", "IN-USE")
LOCK_FAILED = err("Failed to create POP3 session lock.", "SYS/TEMP")
SYNC_FAILED = err("Couldn't sync mailbox.", "SYS/TEMP")


def unknown_command(name: str) -> PopReply:
    if not name:  # an empty line, or one starting with a space (Dovecot 2.3.19)
        return err("Unknown command.")
    return err(f"Unknown command: {echo(name)}")


def no_such_message(number: int) -> PopReply:
    return err(f"There's no message {number}.")


def message_expunged(number: int) -> PopReply:
    return err(f"Message {number} expunged.")


def octets(size: int) -> PopReply:
    return ok(f"{size} octets")


def internal_error(stamp: str) -> PopReply:
    """Dovecot's answer when something broke on the server (`stamp`: YYYY-MM-DD HH:MM:SS)."""
    return err(f"Internal error occurred. Refer to server log for more information. [{stamp}]",
               "SYS/TEMP")


def storage_error(reason: str, temporary: bool = True) -> PopReply:
    return err(reason, "SYS/TEMP" if temporary else "SYS/PERM")


def capabilities(*, authenticated: bool, stls: bool, user: bool,
                 mechanisms: list[str] | tuple[str, ...]) -> bytes:
    """The CAPA answer (RFC 2449 §5) in Dovecot's order; after login only the base list."""
    lines = [b"CAPA", b"TOP", b"UIDL", b"RESP-CODES", b"PIPELINING", b"AUTH-RESP-CODE"]
    if not authenticated:
        if stls:
            lines.append(b"STLS")  # RFC 2595 §4
        if user:
            lines.append(b"USER")
        lines.append(" ".join(["SASL", *mechanisms]).encode("ascii"))  # RFC 5034 §3
    return OK_EMPTY.wire() + multiline(lines)
