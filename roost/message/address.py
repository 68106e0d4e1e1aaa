"""RFC 5322 address lists as IMAP ENVELOPE sees them (name, route, mailbox, host).

RFC 5322 §3.4 (address-list, mailbox, name-addr, angle-addr, group), §4.4 (obsolete routes
`@a,@b:user@host`), RFC 3501 §7.4.2 (ENVELOPE address structure; a group is a start marker
(NIL NIL name NIL) and an end marker (NIL NIL NIL NIL)). Lenient like Dovecot 2.3 (observed):
a missing domain is "MISSING_DOMAIN", a missing local part "MISSING_MAILBOX", and a comment
after a bare addr-spec becomes the display name when there is none. Display names keep encoded
words undecoded (ENVELOPE is raw); callers decode with `encoded_words.decode_header`.
Lists made only of the common shapes are read by regular expressions first (_simple_list,
same result, a few times faster), everything else by the scanner.

Invariants: never raises; always makes progress, so hostile input ends in linear time.
Security: at most MAX_ADDRESSES entries are returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_ADDRESSES = 10_000
_SPECIALS = b'()<>[]:;@\\,." \t\r\n'


@dataclass(frozen=True, slots=True)
class Address:
    name: bytes | None
    route: bytes | None
    mailbox: bytes | None
    host: bytes | None
    empty: bool = False  # `<>`: the MISSING_* values are only ENVELOPE's stand-ins
    @property
    def is_group_start(self) -> bool:
        return self.host is None and self.mailbox is not None

    @property
    def is_group_end(self) -> bool:
        return self.mailbox is None and self.host is None

    @property
    def addr_spec(self) -> bytes:
        return (self.mailbox or b"") + (b"@" + self.host if self.host else b"")


class _Scanner:
    def __init__(self, text: bytes):
        self.text = text
        self.pos = 0
        self.comment: bytes | None = None

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> int:
        return self.text[self.pos] if self.pos < len(self.text) else -1

    def skip_cfws(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in b" \t\r\n":
                self.pos += 1
            elif char == 0x28:
                self.comment = self._comment()
            else:
                return

    def _comment(self) -> bytes:
        out = bytearray()
        depth = 0
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == 0x5C and self.pos < len(text):
                out.append(text[self.pos])
                self.pos += 1
                continue
            if char == 0x28:
                depth += 1
                if depth == 1:
                    continue
            elif char == 0x29:
                depth -= 1
                if depth == 0:
                    break
            if char not in (0x0D, 0x0A):
                out.append(char)
        return bytes(out)

    def word(self) -> bytes | None:
        """An atom or a quoted-string (unquoted), or None when neither starts here."""
        text = self.text
        if self.pos >= len(text):
            return None
        if text[self.pos] == 0x22:
            out = bytearray()
            self.pos += 1
            while self.pos < len(text):
                char = text[self.pos]
                self.pos += 1
                if char == 0x22:
                    break
                if char == 0x5C and self.pos < len(text):
                    char = text[self.pos]
                    self.pos += 1
                if char not in (0x0D, 0x0A):
                    out.append(char)
            return bytes(out)
        start = self.pos
        while self.pos < len(text) and text[self.pos] not in _SPECIALS:
            self.pos += 1
        return text[start:self.pos] if self.pos > start else None

    def phrase(self) -> list[bytes]:
        """Words and dots up to a special character (RFC 5322 §3.2.5, obs-phrase allows '.')."""
        words: list[bytes] = []
        while True:
            self.skip_cfws()
            if self.peek() == 0x2E:  # "."
                words.append(b".")
                self.pos += 1
                continue
            word = self.word()
            if word is None:
                return words
            self.comment = None  # only a comment after the last word can name the address
            words.append(word)

    def domain(self) -> bytes:
        self.skip_cfws()
        if self.peek() == 0x5B:  # "[" domain-literal
            end = self.text.find(b"]", self.pos)
            end = len(self.text) if end < 0 else end + 1
            literal = self.text[self.pos:end]
            self.pos = end
            return literal
        return _join_dotted(self.phrase())


def _join_dotted(words: list[bytes]) -> bytes:
    return b"".join(words)


def _join_phrase(words: list[bytes]) -> bytes:
    out = bytearray()
    for word in words:
        if out and word != b"." and not out.endswith(b"."):
            out += b" "
        out += word
    return bytes(out)


def _addr(name: bytes | None, route: bytes | None, local: bytes, host: bytes) -> Address:
    return Address(name, route, local or b"MISSING_MAILBOX", host or b"MISSING_DOMAIN")


def _angle(scanner: _Scanner, name: bytes | None) -> Address:
    """After '<': [route ':'] local-part '@' domain '>' (RFC 5322 §3.4, §4.4)."""
    scanner.pos += 1
    route = None
    scanner.skip_cfws()
    if scanner.peek() == 0x40:  # obs-route "@a,@b:"
        hops = []
        while scanner.peek() in (0x40, 0x2C):
            if scanner.peek() == 0x2C:
                scanner.pos += 1
                scanner.skip_cfws()
                continue
            scanner.pos += 1
            hops.append(b"@" + scanner.domain())
            scanner.skip_cfws()
        route = b",".join(hops)
        if scanner.peek() == 0x3A:
            scanner.pos += 1
    local = _join_dotted(scanner.phrase())
    scanner.skip_cfws()
    host = b""
    if scanner.peek() == 0x40:
        scanner.pos += 1
        host = scanner.domain()
        scanner.skip_cfws()
    if scanner.peek() == 0x3E:
        scanner.pos += 1
    address = _addr(name, route, local, host)
    if not local and not host:  # "<>" (Dovecot: not searchable text, observed)
        address = Address(address.name, address.route, address.mailbox, address.host, True)
    return address


def _mailbox(scanner: _Scanner, in_group: bool) -> Address | str | None:
    """One mailbox; 'group' when a group display name was read instead; None: nothing here."""
    scanner.comment = None
    start = scanner.pos
    words = scanner.phrase()
    scanner.skip_cfws()
    char = scanner.peek()
    if char == 0x3C:  # "<": name-addr; an empty display name is no name (Dovecot)
        return _angle(scanner, _join_phrase(words) or None)
    if char == 0x3A and not in_group:  # ":" group start
        scanner.pos += 1
        return "group:" + _join_phrase(words).decode("latin-1")
    if not words:
        return None
    local = _join_dotted(words)
    host = b""
    if char == 0x40:
        scanner.pos += 1
        host = scanner.domain()
    scanner.skip_cfws()
    name = scanner.comment
    if scanner.pos == start:
        scanner.pos += 1
    return _addr(name, None, local, host)


# The common shapes (`a@b.c`, `Name <a@b.c>`, `"Last, First" <a@b.c>`, comma separated, no
# comments, groups, routes, escapes or white space inside an addr-spec) read by regular
# expressions; they give exactly what _Scanner gives (tests/message/test_envelope_fast.py),
# anything else goes to _Scanner.
_ATOM = rb'[^()<>\[\]:;@\\,." \t\r\n]++'
_QUOTED = rb'"[^"\\\r\n]*"'
_WS = rb"[ \t\r\n]"
# words split one way only: an atom after an atom needs white space between them, an atom
# right after a quoted string none (so no backtracking blow-up on a failed match)
_PHRASE = (rb"(?:" + _QUOTED + rb"|" + _ATOM + rb")(?:" + _WS + rb"*" + _QUOTED + rb"|" + _WS
           + rb"+" + _ATOM + rb'|(?<=")' + _ATOM + rb")*")
_DOTTED = _ATOM + rb"(?:\." + _ATOM + rb")*"
_ITEM = (rb"(?:(" + _PHRASE + rb")" + _WS + rb"*<(" + _DOTTED + rb")@(" + _DOTTED
         + rb")>|(" + _DOTTED + rb")@(" + _DOTTED + rb"))")
_SIMPLE_ITEM = re.compile(_ITEM)
_SEPARATOR = re.compile(_WS + rb"*+(,)?" + _WS + rb"*+")
_PHRASE_WORD = re.compile(rb'"([^"\\\r\n]*)"|(' + _ATOM + rb")")


def _simple_list(value: bytes) -> list[Address] | None:
    """The addresses when `value` is a list of common shapes only, else None."""
    out = []
    position = len(value) - len(value.lstrip(b" \t\r\n"))
    while True:
        match = _SIMPLE_ITEM.match(value, position)
        if match is None or len(out) >= MAX_ADDRESSES:
            return None
        phrase, local, host, bare_local, bare_host = match.groups()
        if phrase is None:
            out.append(Address(None, None, bare_local, bare_host))
        else:
            words = [word.group(1) if word.group(1) is not None else word.group(2)
                     for word in _PHRASE_WORD.finditer(phrase)]
            out.append(Address(_join_phrase(words) or None, None, local, host))
        separator = _SEPARATOR.match(value, match.end())
        position = separator.end()
        if separator.group(1) is None:
            return out if position == len(value) else None


def parse_address_list(value: bytes) -> list[Address]:
    """Addresses of one header value in order, groups as start/end markers."""
    simple = _simple_list(value)
    return simple if simple is not None else scan_address_list(value)


def scan_address_list(value: bytes) -> list[Address]:
    """parse_address_list by the general scanner alone (any input)."""
    scanner = _Scanner(value)
    out: list[Address] = []
    in_group = False
    after_group = False
    while not scanner.at_end() and len(out) < MAX_ADDRESSES:
        before = scanner.pos
        just_closed, after_group = after_group, False
        item = _mailbox(scanner, in_group)
        if isinstance(item, str):
            out.append(Address(None, None, item[6:].encode("latin-1"), None))
            in_group = True
        elif item is not None:
            out.append(item)
        scanner.skip_cfws()
        char = scanner.peek()
        if char == 0x3B and in_group:  # ";" group end
            scanner.pos += 1
            out.append(Address(None, None, None, None))
            in_group = False
            after_group = True
        elif char in (0x2C, 0x3B):
            if item is None and char == 0x2C and not just_closed:  # an empty list element (Dovecot, observed)
                out.append(_addr(None, None, b"", b""))
            scanner.pos += 1
        elif scanner.pos == before and not scanner.at_end():
            scanner.pos += 1  # an unusable byte: skip it so parsing always progresses
    if in_group:
        out.append(Address(None, None, None, None))
    return out
