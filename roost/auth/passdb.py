"""passdb interface: the request, the verdict, and the driver factory.

Implements Dovecot 2.3's passdb contract (doc.dovecot.org "Password databases"): a passdb
answers one login attempt with success, password mismatch, unknown user or internal failure,
plus extra fields (`user=`, `nopassword`, `userdb_*` for the following userdb lookup). Drivers:
passwd-file (roost.auth.drivers.passwd_file), shadow and passwd (roost.auth.drivers.system),
pam (roost.auth.drivers.pam), static (roost.auth.drivers.static). Log texts are Dovecot's (`passwd-file(alice,127.0.0.1): Password
mismatch`), returned in the result so callers and tests see them.

Invariants: `Passdb.verify` never raises: a driver error (unreadable file, unknown scheme,
PAM failure) is PassdbStatus.INTERNAL_FAILURE with a log text. `create_passdb` reports bad
configuration into Diagnostics and returns None instead of raising.
Security: the password is never part of a log text or a repr (AuthContext hides it).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from roost.auth import variables
from roost.config.diagnostics import Diagnostics

VerifyFn = Callable[[str, str, str, str], bool]  # (stored, password, default_scheme, user)


def default_verify(stored: str, password: str, default_scheme: str, user: str) -> bool:
    """roost.auth.schemes.verify, imported when first needed (it is CPU-heavy to load)."""
    from roost.auth.schemes import verify  # noqa: PLC0415 - lazy on purpose

    return verify(stored, password, default_scheme, user)


@dataclass(frozen=True)
class AuthContext:
    """One login attempt as the passdb/userdb see it; `user` is after auth_username_format."""
    user: str
    service: str = ""
    remote_ip: str = ""
    local_ip: str = ""
    secured: bool = False
    password: str = field(default="", repr=False)

    def values(self, **others: str | None) -> dict[str, str | None]:
        """Variable values for templates (%u %n %d %s %r %l %c ...)."""
        return variables.user_values(
            self.user, service=self.service, rip=self.remote_ip, lip=self.local_ip,
            real_rip=self.remote_ip, real_lip=self.local_ip,
            secured="secured" if self.secured else "", **others)

    def log_prefix(self, driver: str) -> str:
        """`passwd-file(alice,127.0.0.1)` as Dovecot's auth process writes it."""
        where = f",{self.remote_ip}" if self.remote_ip else ""
        return f"{driver}({self.user}{where})"


class PassdbStatus(enum.Enum):
    OK = "ok"
    MISMATCH = "password mismatch"
    UNKNOWN_USER = "unknown user"
    INTERNAL_FAILURE = "internal failure"


@dataclass(frozen=True)
class PassdbResult:
    status: PassdbStatus
    extra: dict[str, str] = field(default_factory=dict)
    userdb_fields: dict[str, str] = field(default_factory=dict)
    log: tuple[tuple[str, str], ...] = ()  # (level, text) lines for the auth logger


class Passdb(Protocol):
    driver: str

    def verify(self, context: AuthContext, verify: VerifyFn) -> PassdbResult: ...


def split_extra_fields(fields: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(passdb fields, userdb fields): `userdb_` prefixed ones go to the userdb, unprefixed."""
    passdb: dict[str, str] = {}
    userdb: dict[str, str] = {}
    for key, value in fields.items():
        if key.startswith("userdb_"):
            userdb[key[len("userdb_"):]] = value
        else:
            passdb[key] = value
    return passdb, userdb


def check_password(driver: str, context: AuthContext, stored: str | None,
                   fields: dict[str, str], default_scheme: str, verify: VerifyFn) -> PassdbResult:
    """The verdict for a found user with `stored` password (None or "" = no password)."""
    passdb_fields, userdb_fields = split_extra_fields(fields)
    prefix = context.log_prefix(driver)
    if "nopassword" in passdb_fields:
        return PassdbResult(PassdbStatus.OK, passdb_fields, userdb_fields)
    if not stored:
        return PassdbResult(PassdbStatus.MISMATCH, passdb_fields, userdb_fields,
                            (("info", f"{prefix}: Password mismatch"),))
    try:
        matched = verify(stored, context.password, default_scheme, context.user)
    except Exception as error:  # noqa: BLE001 - a scheme failure must not kill the login path
        return PassdbResult(PassdbStatus.INTERNAL_FAILURE, passdb_fields, userdb_fields,
                            (("error", f"{prefix}: Password verification failed: "
                                       f"{type(error).__name__}: {error}"),))
    if not matched:
        return PassdbResult(PassdbStatus.MISMATCH, passdb_fields, userdb_fields,
                            (("info", f"{prefix}: Password mismatch"),))
    return PassdbResult(PassdbStatus.OK, passdb_fields, userdb_fields)


def unknown_user(driver: str, context: AuthContext) -> PassdbResult:
    return PassdbResult(PassdbStatus.UNKNOWN_USER,
                        log=(("info", f"{context.log_prefix(driver)}: unknown user"),))


def internal_failure(driver: str, context: AuthContext, message: str) -> PassdbResult:
    return PassdbResult(PassdbStatus.INTERNAL_FAILURE,
                        log=(("error", f"{context.log_prefix(driver)}: {message}"),))


def parse_args(args: str) -> tuple[dict[str, str], str]:
    """Leading `key=value` options of a driver's `args`, and the rest (a path, for files)."""
    options: dict[str, str] = {}
    words = args.split()
    while words and "=" in words[0] and not words[0].startswith("/"):
        key, _eq, value = words.pop(0).partition("=")
        options[key] = value
    return options, " ".join(words)


PASSDB_DRIVERS: dict[str, tuple[str, str, bool]] = {  # roost.auth.drivers.DriverTable
    "passwd-file": ("passwd_file", "PasswdFilePassdb", True),
    "shadow": ("system", "ShadowPassdb", False),
    "passwd": ("system", "PasswdPassdb", False),
    "pam": ("pam", "PamPassdb", False),
    "static": ("static", "StaticPassdb", False),
}


def create_passdb(driver: str, args: str, file: str, line: int, diags: Diagnostics,
                  **kwargs) -> Passdb | None:
    """The passdb for a `passdb { driver = ... args = ... }` block, or None (reported)."""
    from roost.auth.drivers import create_driver

    return create_driver("passdb", PASSDB_DRIVERS, driver, args, file, line, diags, **kwargs)

