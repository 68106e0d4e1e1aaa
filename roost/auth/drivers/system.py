"""System users: the `shadow` passdb and the `passwd` userdb.

Implements Dovecot 2.3's `shadow` passdb (the hash of /etc/shadow, shadow(5) format
`name:hash:lastchg:min:max:warn:inactive:expire:`, verified as scheme CRYPT, so yescrypt `$y$`
(the Debian 12 default), `$6$`, `$5$`, `$1$`, `$2b$` all work; an account past its `expire`
day is refused), the `passwd` passdb (the hash getpwnam(3) returns: only useful without
shadow passwords; `x` never matches) and the `passwd` userdb (uid, gid and home from getpwnam(3)), as the seeds use
them (`useradd boss; passwd boss`). /etc/shadow is read directly (the `spwd` module is
deprecated) and re-read on every login, so `passwd` changes apply at once.

Invariants: lookups never raise; an unreadable /etc/shadow is an internal failure. A locked
password (`!` or `*` prefix, or empty) never matches and is not handed to the verifier.
Security: /etc/shadow is readable by root only: the auth work runs with that privilege, and
no hash is ever logged.
"""

from __future__ import annotations

import pwd
import time

from roost.auth.passdb import (AuthContext, PassdbResult, PassdbStatus, VerifyFn,
                               check_password, internal_failure, parse_args, unknown_user)
from roost.auth.userdb import UserdbResult, UserdbStatus
from roost.config.diagnostics import Diagnostics, excerpt

SHADOW_PATH = "/etc/shadow"
SECONDS_PER_DAY = 86400


def shadow_entry(user: str, path: str = SHADOW_PATH) -> list[str] | None:
    """The shadow(5) fields of `user`, None when absent; OSError when unreadable."""
    if not user or ":" in user or "\n" in user:
        return None
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for line in handle:
            fields = line.rstrip("\n").split(":")
            if fields[0] == user and len(fields) >= 2:
                return fields + [""] * (9 - len(fields))
    return None


def account_expired(fields: list[str], now: float) -> bool:
    expire = fields[7].strip()
    return expire.isdigit() and int(expire) <= int(now // SECONDS_PER_DAY)


def no_options(kind: str, driver: str, args: str, file: str, line: int,
               diags: Diagnostics) -> None:
    options, rest = parse_args(args)
    for key in options:
        if key not in ("blocking",):
            diags.warning(file, line, f"{kind} {driver}: unsupported arg '{excerpt(key)}', "
                                      "ignored")
    if rest:
        diags.warning(file, line, f"{kind} {driver}: unexpected args '{excerpt(rest)}', ignored")


class ShadowPassdb:
    driver = "shadow"

    def __init__(self, path: str = SHADOW_PATH, clock=time.time):
        self.path = path
        self.clock = clock

    @classmethod
    def from_args(cls, args: str, file: str, line: int, diags: Diagnostics) -> "ShadowPassdb":
        no_options("passdb", "shadow", args, file, line, diags)
        return cls()

    def _entry(self, context: AuthContext) -> tuple[list[str] | None, PassdbResult | None]:
        """The user's shadow fields, or the failure result to return instead."""
        try:
            fields = shadow_entry(context.user, self.path)
        except OSError as error:
            return None, internal_failure(self.driver, context,
                                          f"open({self.path}) failed: {error.strerror or error}")
        if fields is None:
            return None, unknown_user(self.driver, context)
        return fields, None

    def verify(self, context: AuthContext, verify: VerifyFn) -> PassdbResult:
        fields, failure = self._entry(context)
        if failure is not None:
            return failure
        prefix = context.log_prefix(self.driver)
        if account_expired(fields, self.clock()):
            return PassdbResult(PassdbStatus.MISMATCH,
                                log=(("info", f"{prefix}: account expired"),))
        stored = fields[1]
        if not stored or stored[0] in "!*":
            return PassdbResult(PassdbStatus.MISMATCH,
                                log=(("info", f"{prefix}: Password mismatch"),))
        return check_password(self.driver, context, "{CRYPT}" + stored, {}, "CRYPT", verify)

    def lookup_fields(self, context: AuthContext) -> PassdbResult:
        """Whether the system user exists, without checking a password."""
        _fields, failure = self._entry(context)
        return failure or PassdbResult(PassdbStatus.OK)


class PasswdUserdb:
    driver = "passwd"

    @classmethod
    def from_args(cls, args: str, file: str, line: int, diags: Diagnostics) -> "PasswdUserdb":
        no_options("userdb", "passwd", args, file, line, diags)
        return cls()

    def lookup(self, context: AuthContext) -> UserdbResult:
        if not context.user or "\0" in context.user:
            return UserdbResult(UserdbStatus.UNKNOWN_USER)
        try:
            entry = pwd.getpwnam(context.user)
        except KeyError:
            return UserdbResult(UserdbStatus.UNKNOWN_USER)
        except (OSError, ValueError) as error:
            return UserdbResult(UserdbStatus.INTERNAL_FAILURE,
                                log=(("error", f"{context.log_prefix(self.driver)}: "
                                               f"getpwnam() failed: {error}"),))
        return UserdbResult(UserdbStatus.OK, {"uid": str(entry.pw_uid), "gid": str(entry.pw_gid),
                                              "home": entry.pw_dir})


class PasswdPassdb:
    driver = "passwd"

    @classmethod
    def from_args(cls, args: str, file: str, line: int, diags: Diagnostics) -> "PasswdPassdb":
        no_options("passdb", "passwd", args, file, line, diags)
        return cls()

    def _entry(self, context: AuthContext):
        if not context.user or "\0" in context.user:
            return None
        try:
            return pwd.getpwnam(context.user)
        except KeyError:
            return None

    def verify(self, context: AuthContext, verify: VerifyFn) -> PassdbResult:
        entry = self._entry(context)
        if entry is None:
            return unknown_user(self.driver, context)
        stored = entry.pw_passwd
        if not stored.startswith("$") and len(stored) != 13:  # "x", "*", "!": no usable hash
            return PassdbResult(PassdbStatus.MISMATCH, log=(
                ("info", f"{context.log_prefix(self.driver)}: Password mismatch"),))
        return check_password(self.driver, context, "{CRYPT}" + stored, {}, "CRYPT", verify)

    def lookup_fields(self, context: AuthContext) -> PassdbResult:
        if self._entry(context) is None:
            return unknown_user(self.driver, context)
        return PassdbResult(PassdbStatus.OK)
