"""`doveadm auth test|lookup|login`: try a login and look users up (doveadm-auth(1), 2.3).

- `auth test [-a path] [-x key=value]... USER [PASSWORD]`: checks the password against the
  passdbs; prints `passdb: USER auth succeeded|failed`, then `extra fields:` with `user=`
  (the name after auth_default_realm/auth_username_format), the passdb's extra fields and
  `original_user=` when the name changed. Exit 0, or 77 (EX_NOPERM) on failure.
- `auth login [-a path] [-x key=value]... USER [PASSWORD]`: the same, then on success the
  userdb reply as `userdb extra fields:`, the user name and `key=value` lines (passdb
  `userdb_*` fields first, then the userdb's, then auth_mech, and auth_user when the login
  name was changed); a user the userdbs do not know fails the login (exit 77).
- `auth lookup [-a path] [-x key=value] [-f field] USER...`: the passdb fields without a
  password check, as `passdb: USER` and `  %-10s: value` lines (or only the field's value
  with -f; a blank line between users); an unknown user prints `passdb lookup: user USER
  doesn't exist` (on stderr with -f), exit 67.
A missing password is asked on a terminal ("Password: ") or read as one line from stdin.
`-x` takes doveadm's auth info keys (service, rip, lip, ...); service defaults to `doveadm`.
The configuration is $DOVEADM_CONFIG (`doveadm -c FILE`), else found as doveconf finds it.
Output, order and exit codes match Debian's doveadm 2.3.19 (tests/cli/test_doveadm_auth.py).

Invariants: roost checks the passwords itself instead of asking an auth socket, so `-a` is
accepted and ignored and failures are answered at once (Dovecot's auth process delays them).
Security: the password is never printed, and prompts do not echo.
"""

from __future__ import annotations

import getopt
import os
import sys
from dataclasses import dataclass, field

from roost.auth.lookup import AuthLookup, AuthResult
from roost.auth.passdb import AuthContext, PassdbResult, PassdbStatus
from roost.config.diagnostics import Diagnostics

EX_USAGE = 64
EX_NOUSER = 67
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 89
DEFAULT_SERVICE = "doveadm"
USAGES = {
    "auth test": "doveadm auth test [-a <auth socket path>] [-x <auth info>] "
                 "[-M <master user>] <user> [<password>]",
    "auth login": "doveadm auth login [-a <auth-login socket path>] [-m <auth-master socket "
                  "path>] [-x <auth info>] [-M <master user>] <user> [<password>]",
    "auth lookup": "doveadm auth lookup [-a <userdb socket path>] [-x <auth info>] "
                   "[-f field] <user> [<user> [...]]",
}


@dataclass
class AuthInfo:
    """doveadm's `-x` auth info: the request's service and addresses."""
    service: str = DEFAULT_SERVICE
    fields: dict[str, str] = field(default_factory=dict)

    def add(self, text: str) -> None:
        key, eq, value = text.partition("=")
        if not eq:
            return  # doveadm ignores an -x without '='
        if key == "service":
            self.service = value
        else:
            self.fields[key] = value

    @property
    def remote_ip(self) -> str:
        return self.fields.get("rip", "")

    @property
    def local_ip(self) -> str:
        return self.fields.get("lip", "")


def config_path() -> str:
    from roost.cli.doveconf import default_config_file

    return os.environ.get("DOVEADM_CONFIG") or default_config_file()


def load_settings(service: str):
    """(DovecotSettings, AuthLookup) of the dovecot.conf in use, or an exit code after
    printing its fatal errors (warnings about unsupported settings are not doveadm's to show)."""
    from roost.config.dovecot_conf import parse_dovecot_conf
    from roost.config.dovecot_settings import dovecot_settings

    diags = Diagnostics()
    settings = dovecot_settings(parse_dovecot_conf(config_path(), diags), protocol=service)
    lookup = AuthLookup.from_settings(settings, diags)
    fatal = [item for item in diags.items if item.severity.value == "fatal"]
    for item in fatal:
        sys.stderr.write(f"doveadm: {item}\n")
    return EX_CONFIG if fatal else (settings, lookup)


def load_lookup(service: str) -> AuthLookup | int:
    loaded = load_settings(service)
    return loaded if isinstance(loaded, int) else loaded[1]


def usage(command: str, error: str = "") -> int:
    """doveadm's answer to bad arguments: the error alone, or the usage line alone."""
    sys.stderr.write(f"{error}\n" if error else USAGES[command] + "\n")
    return EX_USAGE


def getopt_message(command: str, error: getopt.GetoptError) -> str:
    """glibc getopt's complaint, named after the last command word as doveadm's is."""
    problem = ("option requires an argument" if "requires argument" in error.msg
               else "invalid option")
    return f"{command.split()[-1]}: {problem} -- '{error.opt[:1]}'"


def read_password() -> str:
    from roost.cli.doveadm_pw import read_password as read_line

    return read_line("Password: ")


def main(argv: list[str]) -> int:
    command = argv[0]
    if command not in USAGES:
        return usage("auth test")
    letters = "a:f:x:" if command == "auth lookup" else "a:m:x:M:"
    try:
        options, rest = getopt.getopt(argv[1:], letters)
    except getopt.GetoptError as error:
        return usage(command, getopt_message(command, error))
    info = AuthInfo()
    show_field = None
    for name, value in options:
        if name == "-x":
            info.add(value)
        elif name == "-f":
            show_field = value
        elif name == "-M":
            return usage(command, "Error: -M (master user logins) is not supported by roost")
    if not rest or (command != "auth lookup" and len(rest) > 2):
        return usage(command, "" if not rest
                     else f"Error: Extraneous arguments found: {' '.join(rest[2:])}")
    lookup = load_lookup(info.service)
    if isinstance(lookup, int):
        return lookup
    if command == "auth lookup":
        return auth_lookup(lookup, info, rest, show_field)
    password = rest[1] if len(rest) > 1 else read_password()
    return auth_test(lookup, info, rest[0], password, login=command == "auth login")


def reply_user(lookup: AuthLookup, login: str, result: AuthResult,
               service: str) -> tuple[str, str | None]:
    """(`user=` value, `original_user=` value or None) of an auth reply, as Dovecot sends them."""
    final, _refusal = lookup.check_login_name(login, service)
    if final is None:
        return login, login  # a refused name comes back unchanged, original_user included
    user = result.user if result.ok else final
    return user, (login if user != login else None)


def auth_test(lookup: AuthLookup, info: AuthInfo, login_name: str, password: str, *,
              login: bool = False) -> int:
    result = lookup.authenticate(login_name, password, info.service, info.remote_ip,
                                 info.local_ip)
    user, original = reply_user(lookup, login_name, result, info.service)
    lines = [f"passdb: {login_name} auth {'succeeded' if result.ok else 'failed'}",
             "extra fields:", f"  user={user}"]
    if result.ok:
        lines.extend(f"  {key}={value}" for key, value in result.extra.items() if key != "user")
    if original is not None:
        lines.append(f"  original_user={original}")
    record = None
    if result.ok and login:
        record = lookup.lookup_user(result.user, info.service, prefetched=result.userdb_fields)
        if record is not None:
            reply = dict(result.userdb_fields)
            for key, value in (("uid", record.uid), ("gid", record.gid), ("home", record.home),
                               ("mail", record.mail)):
                if value is not None:
                    reply[key] = value
            reply.update(record.extra)
            reply["auth_mech"] = "PLAIN"
            if original is not None:  # like original_user: only when the name was changed
                reply["auth_user"] = original
            lines.append("userdb extra fields:")
            lines.append(f"  {record.user}")
            lines.extend(f"  {key}={value}" for key, value in reply.items())
    sys.stdout.write("".join(line + "\n" for line in lines))
    if result.ok and login and record is None:
        sys.stdout.flush()
        sys.stderr.write("Error: userdb lookup failed: Internal error occurred. "
                         "Refer to server log for more information.\n")
        return EX_NOPERM
    return 0 if result.ok else EX_NOPERM


def passdb_lookup(lookup: AuthLookup, info: AuthInfo, login_name: str) -> AuthResult | None:
    """The passdb chain without a password check; None when the login name is refused."""
    user = lookup.login_name(login_name, info.service)
    if user is None:
        return None
    context = AuthContext(user, info.service, info.remote_ip, info.local_ip)

    def ask(db, ctx: AuthContext) -> PassdbResult:
        if hasattr(db, "lookup_fields"):
            return db.lookup_fields(ctx)
        return PassdbResult(PassdbStatus.INTERNAL_FAILURE)

    return lookup.run_passdbs(context, ask)


def auth_lookup(lookup: AuthLookup, info: AuthInfo, logins: list[str],
                show_field: str | None) -> int:
    exit_code = 0
    out: list[str] = []
    for index, login_name in enumerate(logins):
        if index:
            out.append("\n")
        result = passdb_lookup(lookup, info, login_name)
        if result is not None and result.reason == "internal failure":
            sys.stdout.write("".join(out))
            out = []
            sys.stderr.write(f"Error: passdb lookup failed for {login_name}\n")
            exit_code = EX_TEMPFAIL
            continue
        if result is None or not result.ok:
            message = f"passdb lookup: user {login_name} doesn't exist\n"
            if show_field is None:
                out.append(message)
            else:  # with -f doveadm writes it to stderr, unbuffered, before stdout's lines
                sys.stderr.write(message)
            exit_code = EX_NOUSER
            continue
        fields = {"user": result.user, **{k: v for k, v in result.extra.items() if k != "user"}}
        if show_field is not None:
            if show_field in fields:  # a missing field prints nothing, not even a newline
                out.append(fields[show_field] + "\n")
        else:
            out.append(f"passdb: {login_name}\n")
            out.extend(f"  {key:<10}: {value}\n" for key, value in fields.items())
    sys.stdout.write("".join(out))
    return exit_code
