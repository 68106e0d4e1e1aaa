"""The `static` userdb and passdb: the same fields for every user, from a template.

Implements Dovecot 2.3's static userdb (doc.dovecot.org "Static user database"): args are
space-separated `key=value` fields (`uid=vmail gid=vmail home=/var/vmail/%d/%n`), values
expanded per user; `uid`/`gid` may be names, resolved with getpwnam/getgrnam here so the
result always carries numbers. Without `allow_all_users=yes` Dovecot first asks the passdb
whether the user exists; `needs_passdb_check` tells the lookup chain to do so. And the static
passdb (doc.dovecot.org "Static password database"): `password=P` (a `{SCHEME}` hash or plain
text, with variables) or `nopassword=y`; the other args are extra fields (`user=...`,
`allow_nets=...`), so every user name is accepted with that password.

Invariants: construction reports bad templates and unknown user/group names as fatal
diagnostics; lookups never raise.
Security: a template user name is inserted verbatim; the home path of a user name holding
`/` or `..` is refused (unknown user) so no login can point a mailbox outside the base.
"""

from __future__ import annotations

import grp
import pwd

from roost.auth import variables
from roost.auth.passdb import (AuthContext, PassdbResult, PassdbStatus, VerifyFn,
                               check_password, internal_failure, unknown_user)
from roost.auth.userdb import UserdbResult, UserdbStatus, user_fields
from roost.config.diagnostics import Diagnostics, excerpt


def resolve_id(value: str, kind: str) -> str | None:
    """A numeric uid/gid for a number or a name; None when the name does not exist."""
    if value.isdigit() or "%" in value:
        return value
    try:
        return str(pwd.getpwnam(value).pw_uid if kind == "uid" else grp.getgrnam(value).gr_gid)
    except (KeyError, ValueError):
        return None


def unsafe_path_user(user: str) -> bool:
    return "/" in user or user in ("", ".", "..") or "\0" in user


class StaticUserdb:
    driver = "static"

    def __init__(self, fields: dict[str, str], allow_all_users: bool):
        self.fields = fields
        self.allow_all_users = allow_all_users

    @property
    def needs_passdb_check(self) -> bool:
        return not self.allow_all_users

    @classmethod
    def from_args(cls, args: str, file: str, line: int,
                  diags: Diagnostics) -> "StaticUserdb | None":
        fields: dict[str, str] = {}
        allow_all_users = False
        ok = True
        for word in args.split():
            key, eq, value = word.partition("=")
            if not eq or not key:
                diags.fatal(file, line, f"userdb static: '{excerpt(word)}' is not key=value")
                ok = False
                continue
            if key == "allow_all_users":
                allow_all_users = value.lower() in ("yes", "y", "1")
                continue
            error = variables.check(value)
            if error is not None:
                diags.fatal(file, line, f"userdb static: {key}={excerpt(value)}: {error}")
                ok = False
                continue
            if key in ("uid", "gid"):
                resolved = resolve_id(value, key)
                if resolved is None:
                    what = "user" if key == "uid" else "group"
                    diags.fatal(file, line, f"userdb static: {key}: unknown {what} "
                                            f"'{excerpt(value)}'")
                    ok = False
                    continue
                value = resolved
            fields[key] = value
        return cls(fields, allow_all_users) if ok else None

    def lookup(self, context: AuthContext) -> UserdbResult:
        if unsafe_path_user(context.user):
            return UserdbResult(UserdbStatus.UNKNOWN_USER)
        return user_fields(self.driver, context, self.fields)


def parse_fields(kind: str, args: str, file: str, line: int,
                 diags: Diagnostics) -> dict[str, str] | None:
    """`key=value` words with checked templates (a bare word is `word=`), or None (reported)."""
    fields: dict[str, str] = {}
    ok = True
    for word in args.split():
        key, _eq, value = word.partition("=")
        error = variables.check(value)
        if not key or error is not None:
            diags.fatal(file, line, f"{kind} static: {excerpt(word)}: {error or 'empty name'}")
            ok = False
            continue
        fields[key] = value
    return fields if ok else None


class StaticPassdb:
    driver = "static"

    def __init__(self, fields: dict[str, str]):
        self.fields = fields

    @classmethod
    def from_args(cls, args: str, file: str, line: int,
                  diags: Diagnostics) -> "StaticPassdb | None":
        fields = parse_fields("passdb", args, file, line, diags)
        if fields is None:
            return None
        if "password" not in fields and "nopassword" not in fields:
            diags.fatal(file, line, "passdb static: args need password=... or nopassword=y")
            return None
        return cls(fields)

    def _expanded(self, context: AuthContext) -> dict[str, str]:
        values = context.values(password=context.password)
        return {key: variables.expand(value, values) for key, value in self.fields.items()}

    def verify(self, context: AuthContext, verify: VerifyFn) -> PassdbResult:
        if unsafe_path_user(context.user):
            return unknown_user(self.driver, context)
        try:
            fields = self._expanded(context)
        except variables.VariableError as error:
            return internal_failure(self.driver, context, str(error))
        stored = fields.pop("password", None)
        if "nopassword" in fields:
            fields["nopassword"] = ""
        return check_password(self.driver, context, stored, fields, "PLAIN", verify)

    def lookup_fields(self, context: AuthContext) -> PassdbResult:
        if unsafe_path_user(context.user):
            return unknown_user(self.driver, context)
        try:
            fields = self._expanded(context)
        except variables.VariableError as error:
            return internal_failure(self.driver, context, str(error))
        fields.pop("password", None)
        fields.pop("nopassword", None)
        passdb_fields = {k: v for k, v in fields.items() if not k.startswith("userdb_")}
        userdb_fields = {k[7:]: v for k, v in fields.items() if k.startswith("userdb_")}
        return PassdbResult(PassdbStatus.OK, passdb_fields, userdb_fields)
