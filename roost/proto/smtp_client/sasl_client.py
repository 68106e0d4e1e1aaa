"""Client side of SMTP AUTH (RFC 4954) mechanisms: PLAIN (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195).

`choose_mechanism(offered, filter, security_options)` applies Postfix's
smtp_sasl_mechanism_filter and smtp_sasl_security_options (`noplaintext` excludes PLAIN and
LOGIN, `noanonymous` excludes ANONYMOUS); the preference is CRAM-MD5, PLAIN, LOGIN.
A ClientMechanism gives the initial response and answers each 334 challenge (decoded bytes).

Invariants: answers are base64 (RFC 4954 §4) without line breaks; a malformed challenge is
answered with `*` (cancel, RFC 4954 §4). Security: the password only leaves in the mechanism's
own encoding; nothing here logs it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFERENCE = ("CRAM-MD5", "PLAIN", "LOGIN")
PLAINTEXT = {"PLAIN", "LOGIN"}


def choose_mechanism(offered: str, mechanism_filter: tuple[str, ...],
                     security_options: tuple[str, ...]) -> str | None:
    names = {name.upper() for name in offered.split()}
    if mechanism_filter:
        names &= {name.upper() for name in mechanism_filter}
    options = {option.lower() for option in security_options}
    if "noplaintext" in options:
        names -= PLAINTEXT
    for name in PREFERENCE:
        if name in names:
            return name
    return None


class ClientMechanism:
    def __init__(self, name: str, username: str, password: str) -> None:
        self.name = name
        self.username = username.encode("utf-8")
        self.password = password.encode("utf-8")
        self._step = 0

    def initial(self) -> bytes | None:
        """The initial response (RFC 4954 §4), already base64; None when the mechanism has none."""
        if self.name == "PLAIN":
            return base64.b64encode(b"\0" + self.username + b"\0" + self.password)
        return None

    def answer(self, challenge_b64: str) -> bytes:
        """The base64 answer to one 334 challenge, or b"*" to cancel."""
        try:
            challenge = base64.b64decode(challenge_b64.strip(), validate=True)
        except (binascii.Error, ValueError):
            return b"*"
        self._step += 1
        if self.name == "LOGIN":
            return base64.b64encode(self.username if self._step == 1 else self.password)
        if self.name == "CRAM-MD5" and self._step == 1:
            digest = hmac.new(self.password, challenge, hashlib.md5).hexdigest()
            return base64.b64encode(self.username + b" " + digest.encode("ascii"))
        if self.name == "PLAIN" and self._step == 1 and not challenge:
            return base64.b64encode(b"\0" + self.username + b"\0" + self.password)
        return b"*"
