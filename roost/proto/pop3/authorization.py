"""The AUTHORIZATION state of a POP3 session (RFC 1939 §4), as Dovecot's pop3-login runs it.

Commands: CAPA (RFC 2449 §5), USER/PASS (RFC 1939 §7), AUTH (RFC 5034 §4; no argument: the
mechanism list, the old discovery Outlook uses), STLS (RFC 2595 §4), QUIT. This machine
decides what the client may do (disable_plaintext_auth, ssl = required) and answers what needs
no outside work; it asks the caller to check a password (`PasswordLogin`), to run a SASL
exchange (`SaslBegin`, then `sasl_response` for each client line), to start TLS (`StartTls`)
or to end the session (`QuitLogin`, `Close`). It also keeps what Dovecot's login log line
reports: attempts, the user and mechanism tried, and why a login failed.

Reply texts are Dovecot 2.3.19's (replies.py). Three bad commands in a row disconnect
("Too many invalid bad commands."), as Dovecot's login processes do.

Invariants: exactly one event per command line; plaintext credentials are never accepted on
a connection `plaintext_allowed` refuses (USER, PASS, AUTH PLAIN/LOGIN are all checked).
Security: the password is carried only in PasswordLogin (hidden from repr) and never logged.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from roost.proto.pop3 import replies
from roost.proto.pop3.lines import SASL_LINE_MAX, split_command

MAX_BAD_COMMANDS = 3
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class Close:
    data: bytes
    reason: str  # Dovecot's disconnect reason for the log


@dataclass(frozen=True)
class PasswordLogin:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class SaslBegin:
    mechanism: str  # upper case, one of the allowed mechanisms
    initial_response: bytes | None  # decoded; None when the client sent none


@dataclass(frozen=True)
class SaslResponse:
    data: bytes  # decoded client response


@dataclass(frozen=True)
class SaslCancel:
    """The client sent `*` (RFC 5034 §4)."""


@dataclass(frozen=True)
class SaslMalformed:
    """Not base64: answered INVALID_BASE64, the exchange ends."""


@dataclass(frozen=True)
class StartTls:
    """Send BEGIN_TLS, drop buffered input, start the TLS handshake, call `tls_started`."""


@dataclass(frozen=True)
class QuitLogin:
    """Send LOGIN_QUIT and close: "Aborted login by logging out"."""


Event = Send | Close | PasswordLogin | SaslBegin | StartTls | QuitLogin


@dataclass
class Policy:
    """What this connection may do, from the login settings."""
    mechanisms: tuple[str, ...]  # auth_mechanisms roost serves, upper case, in order
    secured: bool  # TLS, a trusted network, or remote IP == local IP (Dovecot's rule)
    tls_active: bool
    tls_available: bool  # a certificate is configured: STLS can be offered
    disable_plaintext_auth: bool = True
    ssl_required: bool = False  # Dovecot ssl = required

    @property
    def plaintext_allowed(self) -> bool:
        return self.secured or not (self.disable_plaintext_auth or self.ssl_required)

    def advertised(self) -> tuple[str, ...]:
        return tuple(name for name in self.mechanisms
                     if name not in PLAINTEXT_MECHANISMS or self.plaintext_allowed)


@dataclass
class Authorization:
    policy: Policy
    last_user: str | None = None  # USER argument waiting for PASS
    bad_counter: int = 0
    # What Dovecot's disconnect line reports:
    auth_attempts: int = 0
    tried_disabled_plaintext: bool = False
    tried_unsupported_mech: bool = False
    sent_invalid_base64: bool = False  # in an AUTH initial response
    log_user: str = ""  # the last user name tried
    log_method: str = ""  # the last mechanism tried
    in_sasl: bool = False  # an AUTH exchange waits for a client response

    def command(self, line: bytes) -> Event:
        name, args = split_command(line, skip_spaces=False)
        handler = _COMMANDS.get(name)
        if handler is None:
            self.bad_counter += 1
            data = replies.LOGIN_UNKNOWN_COMMAND.wire()
            if self.bad_counter >= MAX_BAD_COMMANDS:
                return Close(data + replies.LOGIN_TOO_MANY_BAD.wire(),
                             "Disconnected: Too many bad commands")
            return Send(data)
        self.bad_counter = 0
        return handler(self, args)

    # --- commands ----------------------------------------------------------------------

    def capa(self, args: str) -> Event:
        return Send(replies.capabilities(
            authenticated=False, stls=self.policy.tls_available and not self.policy.tls_active,
            user=self.policy.plaintext_allowed, mechanisms=self.policy.advertised()))

    def _plaintext_refused(self) -> Event | None:
        if self.policy.plaintext_allowed:
            return None
        # Dovecot 2.3.19 logs "tried to use disallowed plaintext auth" for these refusals
        # unless ssl = required, where they count as plain failed attempts (observed).
        if not self.policy.ssl_required:
            self.tried_disabled_plaintext = True
        self.auth_attempts += 1
        return Send(replies.PLAINTEXT_DISALLOWED.wire())

    def user(self, args: str) -> Event:
        self.log_user = args
        refused = self._plaintext_refused()
        if refused is not None:
            return refused
        self.last_user = args
        return Send(replies.OK_EMPTY.wire())

    def pass_(self, args: str) -> Event:
        if self.last_user is None:
            refused = self._plaintext_refused()
            return refused or Send(replies.NO_USERNAME.wire())
        user, self.last_user = self.last_user, None
        self.auth_attempts += 1
        self.log_user, self.log_method = user, "PLAIN"
        return PasswordLogin(user, args)

    def auth(self, args: str) -> Event:
        if not args:
            lines = [name.encode("ascii") for name in self.policy.advertised()]
            return Send(replies.OK_EMPTY.wire() + replies.multiline(lines))
        mechanism, _space, initial = args.partition(" ")
        mechanism = mechanism.upper()
        self.auth_attempts += 1
        self.log_method = mechanism
        if self.policy.ssl_required and not self.policy.secured:
            return Send(replies.SSL_REQUIRED.wire())
        if mechanism not in self.policy.mechanisms:
            self.tried_unsupported_mech = True
            return Send(replies.UNSUPPORTED_MECHANISM.wire())
        if mechanism in PLAINTEXT_MECHANISMS and not self.policy.plaintext_allowed:
            self.tried_disabled_plaintext = True
            return Send(replies.PLAINTEXT_MECH_DISABLED.wire())
        decoded: bytes | None = None
        if _space:
            decoded = decode_response(initial)
            if decoded is None:
                self.sent_invalid_base64 = True
                return Send(replies.INVALID_BASE64_INITIAL.wire())
        self.in_sasl = True
        return SaslBegin(mechanism, decoded)

    def stls(self, args: str) -> Event:
        if self.policy.tls_active:
            return Send(replies.TLS_ALREADY_ACTIVE.wire())
        if not self.policy.tls_available:
            return Send(replies.TLS_UNAVAILABLE.wire())
        return StartTls()

    def quit(self, args: str) -> Event:
        return QuitLogin()

    # --- the caller reports back ---------------------------------------------------------

    def sasl_response(self, line: bytes) -> SaslResponse | SaslCancel | SaslMalformed:
        """A client line during an AUTH exchange (RFC 5034 §4: base64, or `*` to cancel)."""
        text = line.decode("ascii", "replace")
        if text == "*":
            self.in_sasl = False
            return SaslCancel()
        decoded = decode_response(text)
        if decoded is None:
            # Dovecot still logs such a session as "client didn't finish SASL auth".
            return SaslMalformed()
        return SaslResponse(decoded)

    def sasl_finished(self, user: str | None, *, malformed: bool = False) -> None:
        if not malformed:
            self.in_sasl = False
        if user:
            self.log_user = user

    def tls_started(self) -> None:
        self.policy.tls_active = True
        self.policy.secured = True
        self.last_user = None  # RFC 2595 §4: forget what was said in clear text


def decode_response(text: str) -> bytes | None:
    """Base64 (RFC 4648 §4) of a SASL response; `=` is the empty response (RFC 5034 §4)."""
    if text == "=":
        return b""
    if len(text) > SASL_LINE_MAX:
        return None
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


_COMMANDS = {"CAPA": Authorization.capa, "USER": Authorization.user,
             "PASS": Authorization.pass_, "AUTH": Authorization.auth,
             "STLS": Authorization.stls, "QUIT": Authorization.quit}
