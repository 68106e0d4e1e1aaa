"""userdb interface: user lookups (uid, gid, home, mail and other fields) and driver factory.

Implements Dovecot 2.3's userdb contract (doc.dovecot.org "User databases"): a userdb answers
a user name with its fields (`uid`, `gid`, `home`, `mail`, extra fields), unknown user, or
internal failure. Field values may hold `%` variables (%u %n %d %s ...), expanded per lookup.
Drivers: passwd-file (roost.auth.drivers.passwd_file), passwd (roost.auth.drivers.system),
static (roost.auth.drivers.static), prefetch (roost.auth.drivers.prefetch).

Invariants: `Userdb.lookup` never raises; a template error is an internal failure with a log
text. `create_userdb` reports bad configuration into Diagnostics and returns None.
Security: uid/gid are returned as configured; refusing root or uids below first_valid_uid is
the caller's (the mail process's) decision, made before any setuid.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from roost.auth import variables
from roost.auth.passdb import AuthContext
from roost.config.diagnostics import Diagnostics


class UserdbStatus(enum.Enum):
    OK = "ok"
    UNKNOWN_USER = "unknown user"
    INTERNAL_FAILURE = "internal failure"


@dataclass(frozen=True)
class UserdbResult:
    status: UserdbStatus
    fields: dict[str, str] = field(default_factory=dict)
    log: tuple[tuple[str, str], ...] = ()


class Userdb(Protocol):
    driver: str

    def lookup(self, context: AuthContext) -> UserdbResult: ...


def expand_fields(fields: dict[str, str], context: AuthContext) -> dict[str, str]:
    """Every value with its `%` variables expanded; VariableError on a bad template."""
    values = context.values()
    expanded: dict[str, str] = {}
    for key, value in fields.items():
        expanded[key] = variables.expand(value, {**values, "home": expanded.get("home", "")})
    return expanded


def user_fields(driver: str, context: AuthContext, fields: dict[str, str]) -> UserdbResult:
    """An OK result with `fields` expanded, or an internal failure naming the bad template."""
    try:
        return UserdbResult(UserdbStatus.OK, expand_fields(fields, context))
    except variables.VariableError as error:
        return UserdbResult(UserdbStatus.INTERNAL_FAILURE,
                            log=(("error", f"{context.log_prefix(driver)}: {error}"),))


USERDB_DRIVERS: dict[str, tuple[str, str, bool]] = {  # roost.auth.drivers.DriverTable
    "passwd-file": ("passwd_file", "PasswdFileUserdb", True),
    "passwd": ("system", "PasswdUserdb", False),
    "static": ("static", "StaticUserdb", False),
    "prefetch": ("prefetch", "PrefetchUserdb", False),
}


def create_userdb(driver: str, args: str, file: str, line: int, diags: Diagnostics,
                  **kwargs) -> Userdb | None:
    """The userdb for a `userdb { driver = ... args = ... }` block, or None (reported)."""
    from roost.auth.drivers import create_driver

    return create_driver("userdb", USERDB_DRIVERS, driver, args, file, line, diags, **kwargs)
