"""`doveadm user`: show a user's userdb fields (doveadm-user(1), Dovecot 2.3).

`doveadm user [-a path] [-x key=value]... [-f field] [-u] USER...`
- default: a `field<TAB>value` table: user, uid, gid, home, mail (the userdb's, else
  mail_location with the user's variables), then the userdb's other fields;
- `-f field`: only that field's value, one line per user (nothing when the user has none);
- `-u`: only the userdb lookup, as `userdb: USER` and `  %-10s: value` lines (no mail_location).
An unknown user prints `userdb lookup: user USER doesn't exist` and the exit code is 67.
Several users: doveadm prints a blank line between them through stdio while the table goes
through its own buffered stream, so the table comes first and the blank lines and
"doesn't exist" messages after it; roost reproduces that observed output byte for byte
(tests/cli/test_doveadm_auth.py compares it with Debian's doveadm 2.3.19).

Invariants: user masks with wildcards (`*`, `?`, which make doveadm iterate every user) and
`-e` are refused with exit 64 instead of doing something else; a userdb failure is reported
like an unknown user (AuthLookup.lookup_user does not tell them apart).
Security: read-only; values are printed as stored, one per line.
"""

from __future__ import annotations

import getopt
import sys

from roost.auth import variables
from roost.auth.lookup import AuthLookup, UserRecord
from roost.cli.doveadm_auth import (EX_NOUSER, EX_USAGE, AuthInfo, getopt_message,
                                    load_settings)

USAGE = ("doveadm user [-a <userdb socket path>] [-x <auth info>] [-f field] [-e <value>] "
         "[-u] <user mask> [<user mask> [...]]")


def usage(error: str = "") -> int:
    """doveadm's answer to bad arguments: the error alone, or the usage line alone."""
    sys.stderr.write(f"{error}\n" if error else USAGE + "\n")
    return EX_USAGE


def record_fields(record: UserRecord, mail_location: str, service: str,
                  userdb_only: bool) -> dict[str, str]:
    """The fields `doveadm user` shows, in its order."""
    fields: dict[str, str] = {"user": record.user}
    for key, value in (("uid", record.uid), ("gid", record.gid), ("home", record.home)):
        if value is not None:
            fields[key] = value
    mail = record.mail
    if mail is None and not userdb_only and mail_location:
        values = variables.user_values(record.user, home=record.home, uid=record.uid,
                                       gid=record.gid, service=service)
        try:
            mail = variables.expand(mail_location, values)
        except variables.VariableError:
            mail = mail_location
    if mail is not None:
        fields["mail"] = mail
    fields.update(record.extra)
    return fields


def main(argv: list[str]) -> int:
    try:
        options, users = getopt.getopt(argv[1:], "a:e:f:ux:")
    except getopt.GetoptError as error:
        return usage(getopt_message("user", error))
    info = AuthInfo()
    show_field = None
    userdb_only = False
    for name, value in options:
        if name == "-x":
            info.add(value)
        elif name == "-f":
            show_field = value
        elif name == "-u":
            userdb_only = True
        elif name == "-e":
            return usage("Error: -e is not supported by roost")
    if not users:
        return usage()
    if any(char in user for user in users for char in "*?"):
        return usage("Error: user masks with wildcards are not supported by roost")
    loaded = load_settings(info.service)
    if isinstance(loaded, int):
        return loaded
    settings, lookup = loaded
    mail_location = "" if userdb_only else settings.mail_location
    return show_users(lookup, info, users, show_field, userdb_only, mail_location)


def show_users(lookup: AuthLookup, info: AuthInfo, users: list[str], show_field: str | None,
               userdb_only: bool, mail_location: str) -> int:
    table = show_field is None and not userdb_only
    table_out = ["field\tvalue\n"] if table else []  # doveadm's buffered table stream
    stdio_out: list[str] = []  # what doveadm writes with stdio, flushed at exit
    exit_code = 0
    for index, login_name in enumerate(users):
        if index:
            stdio_out.append("\n")
        record = lookup.lookup_user(login_name, info.service)
        if record is None:
            exit_code = EX_NOUSER
            message = f"userdb lookup: user {login_name} doesn't exist\n"
            if show_field is not None:
                sys.stdout.write("".join(stdio_out))
                stdio_out = []
                sys.stdout.flush()
                sys.stderr.write("\n" + message)
            else:
                stdio_out.append(message if userdb_only else "\n" + message)
            continue
        fields = record_fields(record, mail_location, info.service, userdb_only)
        if show_field is not None:
            if show_field in fields:  # a missing field prints nothing, not even a newline
                stdio_out.append(fields[show_field] + "\n")
        elif userdb_only:
            stdio_out.append(f"userdb: {login_name}\n")
            stdio_out.extend(f"  {key:<10}: {value}\n" for key, value in fields.items())
        else:
            table_out.extend(f"{key}\t{value}\n" for key, value in fields.items())
    sys.stdout.write("".join(table_out) + "".join(stdio_out))
    return exit_code
