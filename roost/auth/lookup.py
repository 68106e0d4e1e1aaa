"""The authentication chain: the login name, then every passdb and userdb in order.

Implements Dovecot 2.3's auth request flow (doc.dovecot.org "Authentication", "Password
databases", settings auth_username_chars, auth_default_realm, auth_username_format): the
login name is checked against auth_username_chars, gets `@auth_default_realm` when it has no
domain, and is rewritten by auth_username_format (`%Lu` by default; the seeds use `%n`, so
`bob@abc.mail` logs in as `bob`). passdbs are then tried in configuration order with their
`skip`, `deny`, `result_success`, `result_failure` and `result_internalfail` actions
(`return`, `return-ok`, `return-fail`, `continue`, `continue-ok`, `continue-fail`); a passdb's
`user=` extra field renames the user for what follows. The state machine, checked against
Dovecot 2.3.19 with `doveadm auth test` (tests/auth/test_lookup_doveadm.py): only `*-ok`
actions make the login succeed and `*-fail` ones undo that (a bare `return` or a trailing
`continue` keeps the state); once a passdb verified the password with `continue` or
`continue-ok`, later passdbs only look the user up (no second password check); a `deny`
passdb only looks the user up, and finding the user fails the login at once. A failure names
the worst failure seen (internal failure, then password mismatch, then unknown user). userdbs
follow the same actions; a static userdb without allow_all_users first asks the passdbs
whether the user exists, a prefetch userdb uses the login's `userdb_*` fields. Each database's
`default_fields` go under its own fields and `override_fields` over them (templates with
variables).

Invariants: `authenticate` and `lookup_user` are synchronous and pure apart from reading the
databases: no sleeping (auth_failure_delay belongs to the network layer), no exception escapes
a driver. Password verification is CPU work: callers run `authenticate` in a thread pool.
Log texts are Dovecot's and go into the result and to the injected logger (info lines only
with auth_verbose, as in Dovecot).
Security: the result's reason distinguishes unknown user from password mismatch for logs
only; protocol layers must answer both the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from roost.auth import variables
from roost.auth.passdb import (AuthContext, Passdb, PassdbResult, PassdbStatus, VerifyFn,
                               create_passdb, default_verify, split_extra_fields)
from roost.auth.drivers.prefetch import PrefetchUserdb
from roost.auth.userdb import Userdb, UserdbResult, UserdbStatus, create_userdb
from roost.config.diagnostics import Diagnostics, excerpt

DEFAULT_USERNAME_FORMAT = "%Lu"
DEFAULT_USERNAME_CHARS = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "01234567890.-_@")
ACTIONS = ("return", "return-ok", "return-fail", "continue", "continue-ok", "continue-fail")
FAILURE_RANK = {PassdbStatus.UNKNOWN_USER: 0, PassdbStatus.MISMATCH: 1,
                PassdbStatus.INTERNAL_FAILURE: 2}


@dataclass(frozen=True)
class AuthResult:
    ok: bool
    user: str  # after auth_default_realm, auth_username_format and any passdb `user=`
    reason: str | None  # None, "password mismatch", "unknown user" or "internal failure"
    extra: dict[str, str] = field(default_factory=dict)
    userdb_fields: dict[str, str] = field(default_factory=dict)  # passdb `userdb_*` fields
    log: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class UserRecord:
    user: str
    uid: str | None
    gid: str | None
    home: str | None
    mail: str | None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainEntry:
    """One passdb/userdb with its chain settings (Dovecot's defaults when built by hand)."""
    db: Any
    result_success: str = "return-ok"
    result_failure: str = "continue"
    result_internalfail: str = "continue"
    skip: str = "never"
    deny: bool = False
    default_fields: str = ""  # `key=value ...` templates the database's own fields override
    override_fields: str = ""  # `key=value ...` templates that override the database's

    def merged(self, fields: dict[str, str], context: AuthContext) -> dict[str, str]:
        """`fields` with default_fields under them and override_fields over them."""
        if not self.default_fields and not self.override_fields:
            return fields
        values = context.values()
        return {**template_fields(self.default_fields, values), **fields,
                **template_fields(self.override_fields, values)}


class AuthLookup:
    """The configured passdbs and userdbs of one auth service."""

    def __init__(self, passdbs: list[ChainEntry], userdbs: list[ChainEntry], *,
                 username_format: str = DEFAULT_USERNAME_FORMAT, default_realm: str = "",
                 username_chars: str = DEFAULT_USERNAME_CHARS,
                 verify: VerifyFn = default_verify, logger: Any = None,
                 verbose: bool = True):
        self.passdbs = passdbs
        self.userdbs = userdbs
        self.username_format = username_format
        self.default_realm = default_realm
        # An empty auth_username_chars allows every character, as in Dovecot.
        self.username_chars = frozenset(username_chars) if username_chars else None
        self.verify = verify
        self.logger = logger
        # auth_verbose: Dovecot logs info lines (mismatch, unknown user) only when it is set;
        # errors are always logged. Results carry every line either way.
        self.verbose = verbose

    @classmethod
    def from_settings(cls, settings: Any, diags: Diagnostics, *, verify: VerifyFn = default_verify,
                      logger: Any = None, clock: Callable[[], float] = time.monotonic,
                      warn: Callable[[str], None] | None = None) -> "AuthLookup":
        """From a roost.config.dovecot_settings.DovecotSettings; problems go to `diags`."""
        passdbs = [entry for db in settings.passdbs
                   if (entry := chain_entry(db, diags, clock=clock, warn=warn)) is not None]
        userdbs = [entry for db in settings.userdbs
                   if (entry := chain_entry(db, diags, clock=clock, warn=warn)) is not None]
        format_error = variables.check(settings.auth_username_format)
        if format_error is not None:
            where = settings.setting("auth_username_format")
            diags.fatal(where.file if where else "dovecot.conf", where.line if where else None,
                        f"auth_username_format: {format_error}")
        return cls(passdbs, userdbs,
                   username_format=settings.auth_username_format if format_error is None
                   else DEFAULT_USERNAME_FORMAT,
                   default_realm=settings.auth_default_realm,
                   username_chars=settings.raw("auth_username_chars"),
                   verify=verify, logger=logger, verbose=settings.bool("auth_verbose"))

    # --- the login name ----------------------------------------------------------------

    def login_name(self, username: str, service: str) -> str | None:
        """The user name the databases see, or None when the login name is refused."""
        return self.check_login_name(username, service)[0]

    def check_login_name(self, username: str, service: str) -> tuple[str | None, str]:
        """(user name for the databases, "") or (None, Dovecot's reason for refusing it)."""
        if not username:
            return None, "Empty username"
        for char in username:
            if char == "\0" or (self.username_chars is not None
                                 and char not in self.username_chars):
                return None, (f"Username character disallowed by auth_username_chars: "
                              f"0x{ord(char):02x} (username: {shown_name(username)})")
        if "@" not in username and self.default_realm:
            username = f"{username}@{self.default_realm}"
        try:
            return variables.expand(self.username_format,
                                    variables.user_values(username, service=service)), ""
        except variables.VariableError as error:
            return None, f"auth_username_format: {error}"

    def emit(self, lines: tuple[tuple[str, str], ...]) -> None:
        if self.logger is None:
            return
        for level, text in lines:
            if level == "info" and not self.verbose:
                continue
            getattr(self.logger, level, self.logger.info)(text)

    # --- passdb chain --------------------------------------------------------------------

    def authenticate(self, username: str, password: str, service: str = "",
                     remote_ip: str = "", local_ip: str = "", secured: bool = False, *,
                     mechanism: str = "PLAIN") -> AuthResult:
        user, refusal = self.check_login_name(username, service)
        if user is None:
            where = f",{remote_ip}" if remote_ip else ""
            line = (("info", f"{mechanism.lower()}(?{where}): {refusal}"),)
            self.emit(line)
            return AuthResult(False, username, "unknown user", log=line)
        context = AuthContext(user, service, remote_ip, local_ip, secured, password)
        result = self.run_passdbs(context, lambda db, ctx: db.verify(ctx, self.verify))
        self.emit(result.log)
        return result

    def run_passdbs(self, context: AuthContext,
                    ask: Callable[[Passdb, AuthContext], PassdbResult]) -> AuthResult:
        log: list[tuple[str, str]] = []
        extra: dict[str, str] = {}
        userdb_fields: dict[str, str] = {}
        success = False
        # Once a passdb verified the password, later ones only look the user up (for their
        # extra fields): Dovecot's behaviour, observed with doveadm auth test.
        password_verified = False
        worst: PassdbStatus | None = None
        if not self.passdbs:
            log.append(("error", "No passdbs configured"))
            return AuthResult(False, context.user, "internal failure", log=tuple(log))
        for entry in self.passdbs:
            if entry.skip == "authenticated" and success or \
                    entry.skip == "unauthenticated" and not success:
                continue
            if (password_verified or entry.deny) and hasattr(entry.db, "lookup_fields"):
                result = entry.db.lookup_fields(context)
            else:
                result = ask(entry.db, context)
            log.extend(result.log)
            status = result.status
            if entry.deny:
                if status is PassdbStatus.OK:
                    log.append(("info", "User found from deny passdb"))  # Dovecot's words
                    return AuthResult(False, context.user, "password mismatch",
                                      log=tuple(log))
                continue
            if status is PassdbStatus.OK:
                both = entry.merged({**result.extra, **{f"userdb_{key}": value for key, value
                                                        in result.userdb_fields.items()}},
                                    context)
                passdb_fields, more_userdb_fields = split_extra_fields(both)
                extra.update(passdb_fields)
                userdb_fields.update(more_userdb_fields)
                renamed = passdb_fields.get("user")
                if renamed:
                    context = AuthContext(renamed, context.service, context.remote_ip,
                                          context.local_ip, context.secured, context.password)
                rule = entry.result_success
            else:
                if worst is None or FAILURE_RANK[status] > FAILURE_RANK[worst]:
                    worst = status
                rule = (entry.result_internalfail if status is PassdbStatus.INTERNAL_FAILURE
                        else entry.result_failure)
            if rule in ("return-ok", "continue-ok"):
                success = True
            elif rule in ("return-fail", "continue-fail"):
                success = False
            if rule == "continue-ok" or (rule == "continue" and status is PassdbStatus.OK):
                password_verified = True
            if not rule.startswith("continue"):
                break
        return self._passdb_end(context, success, worst or PassdbStatus.MISMATCH, extra,
                                userdb_fields, log)

    @staticmethod
    def _passdb_end(context: AuthContext, ok: bool, status: PassdbStatus, extra: dict[str, str],
                    userdb_fields: dict[str, str], log: list[tuple[str, str]]) -> AuthResult:
        if ok:
            return AuthResult(True, context.user, None, extra, userdb_fields, tuple(log))
        reason = (status if status is not PassdbStatus.OK else PassdbStatus.MISMATCH).value
        return AuthResult(False, context.user, reason, {}, {}, tuple(log))

    # --- userdb chain --------------------------------------------------------------------

    def lookup_user(self, username: str, service: str = "",
                    prefetched: dict[str, str] | None = None) -> UserRecord | None:
        """The user's fields from the userdbs, None when unknown (or a database failed).

        `prefetched`: AuthResult.userdb_fields of this user's login, for a prefetch userdb."""
        user = self.login_name(username, service)
        if user is None:
            return None
        context = AuthContext(user, service)
        fields: dict[str, str] = {}
        found = False
        log: list[tuple[str, str]] = []
        for entry in self.userdbs:
            if entry.skip == "found" and found or entry.skip == "notfound" and not found:
                continue
            if isinstance(entry.db, PrefetchUserdb):
                result = entry.db.lookup(context, prefetched)
            else:
                result = self._userdb_lookup(entry.db, context)
            log.extend(result.log)
            ok = result.status is UserdbStatus.OK
            if ok:
                fields.update(entry.merged(result.fields, context))
                action = entry.result_success
            elif result.status is UserdbStatus.INTERNAL_FAILURE:
                action = entry.result_internalfail
            else:
                action = entry.result_failure
            # the same state machine as the passdb chain (verified there against Dovecot)
            if action in ("return-ok", "continue-ok"):
                found = True
            elif action in ("return-fail", "continue-fail"):
                found = False
            if not action.startswith("continue"):
                break
        self.emit(tuple(log))
        if not found:
            return None
        return UserRecord(context.user, fields.pop("uid", None), fields.pop("gid", None),
                          fields.pop("home", None), fields.pop("mail", None), fields)

    def _userdb_lookup(self, db: Userdb, context: AuthContext) -> UserdbResult:
        """A userdb lookup; a static userdb without allow_all_users asks the passdbs first."""
        if not getattr(db, "needs_passdb_check", False):
            return db.lookup(context)
        if not any(hasattr(entry.db, "lookup_fields") for entry in self.passdbs):
            return UserdbResult(UserdbStatus.INTERNAL_FAILURE, log=(
                ("error", f"{context.log_prefix(db.driver)}: no passdb supports user lookups "
                          "(set allow_all_users=yes)"),))
        checked = self.run_passdbs(
            context, lambda passdb, ctx: passdb.lookup_fields(ctx)
            if hasattr(passdb, "lookup_fields")
            else PassdbResult(PassdbStatus.INTERNAL_FAILURE))
        if not checked.ok:
            status = (UserdbStatus.INTERNAL_FAILURE if checked.reason == "internal failure"
                      else UserdbStatus.UNKNOWN_USER)
            return UserdbResult(status, log=checked.log)
        result = db.lookup(AuthContext(checked.user, context.service))
        if result.status is not UserdbStatus.OK:
            return result
        return UserdbResult(UserdbStatus.OK, {**checked.userdb_fields, **result.fields},
                            result.log)


def shown_name(text: str) -> str:
    """A login name as a log line may quote it: bounded, control characters escaped."""
    return excerpt(text, 64)


def chain_entry(db: Any, diags: Diagnostics, **kwargs) -> ChainEntry | None:
    """A ChainEntry for a roost.config.dovecot_settings.AuthDb, or None (reported)."""
    for name in ("result_success", "result_failure", "result_internalfail"):
        value = getattr(db, name)
        if value not in ACTIONS:
            diags.fatal(db.file, db.line, f"{db.kind} {name}: unknown action '{excerpt(value)}'")
            return None
    for name in ("default_fields", "override_fields"):
        for word in getattr(db, name).split():
            key, _eq, value = word.partition("=")
            error = "empty name" if not key else variables.check(value)
            if error is not None:
                diags.fatal(db.file, db.line, f"{db.kind} {name}: {excerpt(word)}: {error}")
                return None
    if db.kind == "passdb":
        driver = create_passdb(db.driver, db.args, db.file, db.line, diags, **kwargs)
    else:
        driver = create_userdb(db.driver, db.args, db.file, db.line, diags, **kwargs)
    if driver is None:
        return None
    return ChainEntry(driver, db.result_success, db.result_failure, db.result_internalfail,
                      db.skip or "never", db.deny, db.default_fields, db.override_fields)


def template_fields(text: str, values: dict[str, str | None]) -> dict[str, str]:
    """`key=value ...` (checked by chain_entry) with the values expanded."""
    fields: dict[str, str] = {}
    for word in text.split():
        key, _eq, value = word.partition("=")
        fields[key] = variables.expand(value, values)
    return fields
