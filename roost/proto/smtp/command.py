"""SMTP command line syntax: the verb, MAIL/RCPT paths and their ESMTP parameters, xtext.

RFC 5321 §4.1.1 (command verbs, case-insensitive), §4.1.2 (Reverse-path / Forward-path,
source routes are accepted and dropped per §4.1.1.3 and Appendix C), RFC 1870 (SIZE),
RFC 6152 (BODY=7BIT/8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 §4 (RET, ENVID, NOTIFY, ORCPT;
xtext §4), RFC 4954 §5 (AUTH=). Leniency follows Postfix with `strict_rfc821_envelopes = no`:
`MAIL FROM: <a@b>` and `MAIL FROM:root` (no brackets) are accepted; `<a@b>SIZE=1` is not.

Invariants: every function here is total on str input: a syntax problem is returned as a
`Reply` (Postfix's text), never raised.
Security: decoded xtext may hold any byte; callers keep it out of logs unescaped (Reply and
the loggers replace control characters).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from roost.proto.smtp import reply as R
from roost.proto.smtp.reply import Reply

_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*\Z")  # RFC 3461 §4: 33-126 but "+" "="
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")  # RFC 3461 §4.2 addr-type atom
_NOTIFY_WORDS = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAX_SIZE_DIGITS = 18


def xtext_decode(text: str) -> str | None:
    """RFC 3461 §4 xtext to its value; None when `text` is not valid xtext."""
    if not _XTEXT.match(text):
        return None
    return _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), text)


def xtext_encode(value: str) -> str:
    return "".join(ch if 33 <= ord(ch) <= 126 and ch not in "+=" else
                   "".join(f"+{b:02X}" for b in ch.encode("utf-8")) for ch in value)


_SEPARATORS = re.compile(r"[ \t\r\n]+")


def split_verb(line: str) -> tuple[str, str]:
    """(VERB in upper case, argument text) of one command line without its CRLF. Like
    Postfix, space, TAB and stray CR/LF all separate words."""
    words = _SEPARATORS.split(line.strip(" \t\r\n"), maxsplit=1)
    return words[0].upper(), (words[1] if len(words) > 1 else "")


def _scan_bracketed(text: str) -> int:
    """Index of the `>` closing the path that starts with `<` at 0, honouring quotes and
    backslash escapes (RFC 5321 §4.1.2 Quoted-string); -1 when it does not close."""
    if '"' not in text and "\\" not in text:  # the common case, without a loop per character
        close = text.find(">", 1)
        return -1 if close < 0 or text.find("<", 1, close) >= 0 else close
    return _scan_bracketed_quoted(text)


def _scan_bracketed_quoted(text: str) -> int:
    """_scan_bracketed character by character (any input; the shortcut's reference)."""
    quoted = False
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        elif char == ">" and not quoted:
            return index
        elif char == "<" and not quoted:
            return -1
        index += 1
    return -1


_UNQUOTED_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f <>(),;]")


def _valid_mailbox(address: str) -> bool:
    """Postfix's minimal path checks: balanced quotes, no unquoted space or control."""
    if '"' not in address and "\\" not in address:  # nothing quoted: one regex pass
        return _UNQUOTED_FORBIDDEN.search(address) is None
    return _valid_mailbox_quoted(address)


def _valid_mailbox_quoted(address: str) -> bool:
    """_valid_mailbox character by character (any input; the shortcut's reference)."""
    quoted = False
    escaped = False
    for char in address:
        if escaped:
            escaped = False
            continue
        if ord(char) < 32 or char == "\x7f":
            return False
        if char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif not quoted and char in " <>(),;":
            return False
    return not quoted and not escaped


def _drop_source_route(address: str) -> str:
    # RFC 5321 §4.1.1.3 / Appendix C: "@a,@b:user@d" — relays MUST ignore the route.
    if address.startswith("@"):
        colon = address.find(":")
        if colon > 0:
            return address[colon + 1:]
    return address


def parse_path(text: str, strict: bool) -> tuple[str, list[str]] | None:
    """(address without <> and source route, parameter words) from the text after `FROM:` or
    `TO:`; None on a syntax error."""
    text = text.lstrip(" \t")
    if not text:
        return None
    if text.startswith("<"):
        close = _scan_bracketed(text)
        if close < 0:
            return None
        rest = text[close + 1:]
        if rest and rest[0] not in " \t":
            return None
        address = _drop_source_route(text[1:close])
    elif strict:
        return None
    else:
        address, _, rest = text.partition(" ")
        if "<" in address or ">" in address:
            return None
        address = _drop_source_route(address)
    if not _valid_mailbox(address):
        return None
    return address, rest.split()


@dataclass(frozen=True)
class MailParams:
    size: int | None = None
    body: str | None = None  # "7BIT" | "8BITMIME"
    smtputf8: bool = False
    ret: str | None = None  # "FULL" | "HDRS"
    envid: str | None = None  # decoded
    auth: str | None = None  # decoded AUTH= mailbox, "<>" for none

    def envelope(self) -> dict[str, str]:
        """The cleanup envelope dict (RET, ENVID, BODY, SMTPUTF8, SIZE)."""
        out = {}
        if self.ret:
            out["RET"] = self.ret
        if self.envid is not None:
            out["ENVID"] = self.envid
        if self.body:
            out["BODY"] = self.body
        if self.smtputf8:
            out["SMTPUTF8"] = "yes"
        if self.size is not None:
            out["SIZE"] = str(self.size)
        return out


@dataclass(frozen=True)
class RcptParams:
    notify: str | None = None  # "NEVER" or comma list of SUCCESS/FAILURE/DELAY
    orcpt: str | None = None  # "rfc822;decoded-address"


@dataclass(frozen=True)
class Features:
    """ESMTP extensions in force (after smtpd_discard_ehlo_keywords)."""
    size_limit: int = 0  # message_size_limit; 0 = none
    eightbitmime: bool = True
    dsn: bool = True
    smtputf8: bool = True
    names: frozenset = field(default_factory=frozenset)


def parse_mail_params(words: list[str], features: Features) -> MailParams | Reply:
    """RFC 5321 §4.1.2 Mail-parameters; the first problem wins, as in Postfix."""
    values: dict = {}
    for word in words:
        key, has_value, value = word.partition("=")
        key = key.upper()
        if key == "SIZE" and has_value:  # RFC 1870 §6
            if not value.isdigit() or not value.isascii() or len(value) > MAX_SIZE_DIGITS:
                return R.BAD_SIZE_SYNTAX
            size = int(value)
            if features.size_limit and size > features.size_limit:
                return R.SIZE_EXCEEDED
            values["size"] = size
        elif key == "BODY" and has_value and features.eightbitmime and value.upper() in ("7BIT", "8BITMIME"):
            values["body"] = value.upper()  # RFC 6152 §2
        elif key == "SMTPUTF8" and not has_value and features.smtputf8:
            values["smtputf8"] = True  # RFC 6531 §3.4
        elif key in ("RET", "ENVID") and has_value and not features.dsn:
            return R.DSN_DISABLED
        elif key == "RET" and has_value:
            if "ret" in values or value.upper() not in ("FULL", "HDRS"):  # RFC 3461 §4.3
                return R.BAD_RET
            values["ret"] = value.upper()
        elif key == "ENVID" and has_value:
            decoded = xtext_decode(value)  # RFC 3461 §4.4: xtext, at most 100 characters
            if "envid" in values or decoded is None or not value or len(value) > 100:
                return R.BAD_ENVID
            values["envid"] = decoded
        elif key == "AUTH" and has_value:
            decoded = "<>" if value == "<>" else xtext_decode(value)  # RFC 4954 §5
            if decoded is None:
                return R.BAD_AUTH_PARAM
            values["auth"] = decoded
        else:
            return R.unsupported_option(word)
    return MailParams(**values)


def parse_rcpt_params(words: list[str], features: Features) -> RcptParams | Reply:
    values: dict = {}
    for word in words:
        key, has_value, value = word.partition("=")
        key = key.upper()
        if key in ("NOTIFY", "ORCPT") and has_value and not features.dsn:
            return R.DSN_DISABLED
        if key == "NOTIFY" and has_value:
            items = value.upper().split(",")  # RFC 3461 §4.1: NEVER alone, or a list
            if "notify" in values or not value or (
                    items != ["NEVER"] and not all(item in _NOTIFY_WORDS for item in items)):
                return R.BAD_NOTIFY
            values["notify"] = ",".join(items)
        elif key == "ORCPT" and has_value:
            addr_type, semicolon, xtext = value.partition(";")  # RFC 3461 §4.2
            decoded = xtext_decode(xtext)
            if ("orcpt" in values or not semicolon or not _ADDR_TYPE.match(addr_type)
                    or decoded is None or not xtext or len(value) > 500):
                return R.BAD_ORCPT
            values["orcpt"] = f"{addr_type.lower()};{decoded}"
        else:
            return R.unsupported_option(word)
    return RcptParams(**values)


def parse_bdat(argument: str) -> tuple[int, bool] | None:
    """RFC 3030 §2: `BDAT chunk-size [LAST]`; None on a syntax error."""
    words = argument.split()
    if not 1 <= len(words) <= 2 or not words[0].isdigit() or not words[0].isascii():
        return None
    if len(words[0]) > MAX_SIZE_DIGITS:
        return None
    if len(words) == 2 and words[1].upper() != "LAST":
        return None
    return int(words[0]), len(words) == 2
