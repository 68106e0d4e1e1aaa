"""`doveadm pw`: generate or test a Dovecot password hash (doveadm-pw(1), Dovecot 2.3).

`doveadm pw [-l] [-p plaintext] [-r rounds] [-s scheme] [-t hash] [-u user] [-V]`. Output and
exit codes are the real tool's: the hash with its `{SCHEME}` prefix on stdout; with `-t` or
`-V` the hash followed by ` (verified)`; failures as `Fatal: ...` on stderr with exit 75; usage
errors exit 64. Without -p, a terminal is asked "Enter new password: " / "Retype new
password: " (again until both match) or "Enter password to verify: " with -t; when stdin is
not a terminal the lines are read from it without prompts, as doveadm does (at end of input
the password is empty).
Invariants: the default scheme is CRYPT; `-r` that is not a number counts as 0 (default).
Security: the password never appears in output or error messages; prompts do not echo.
"""

from __future__ import annotations

import getopt
import getpass
import sys

from roost.auth.schemes import SchemeError, generate, known_schemes, lookup_scheme, verify

EX_USAGE = 64
EX_FATAL = 75
DEFAULT_SCHEME = "CRYPT"
USAGE = "usage: doveadm pw [-l] [-p plaintext] [-r rounds] [-s scheme] [-t hash] [-u user] [-V]\n"


def fatal(message: str) -> int:
    sys.stderr.write(f"Fatal: {message}\n")
    return EX_FATAL


def read_password(prompt: str) -> str:
    if sys.stdin.isatty():
        try:
            return getpass.getpass(prompt)
        except EOFError:
            return ""
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def ask_new_password() -> str:
    while True:
        first = read_password("Enter new password: ")
        second = read_password("Retype new password: ")
        if first == second:
            return first
        sys.stderr.write("Error: Passwords don't match!\n")


def parse_rounds(text: str) -> int:
    return int(text) if text.isdigit() else 0


def main(argv: list[str]) -> int:
    try:
        options, rest = getopt.gnu_getopt(argv[1:], "lp:r:s:t:u:V")
    except getopt.GetoptError as error:
        sys.stderr.write(f"pw: {error}\n{USAGE}")
        return EX_USAGE
    if rest:
        sys.stderr.write(f"Error: Extraneous arguments found: {' '.join(rest)}\n{USAGE}")
        return EX_USAGE
    values = {name: value for name, value in options}
    if "-l" in values:
        print(" ".join(known_schemes()) + " ")
        return 0
    user = values.get("-u", "")
    test_hash = values.get("-t")
    password = values.get("-p")
    if test_hash is not None:
        return test_stored(test_hash, password, user)
    scheme = values.get("-s", DEFAULT_SCHEME).upper()
    try:
        lookup_scheme(scheme)
    except SchemeError:
        return fatal(f"Unknown scheme: {scheme}")
    if password is None:
        password = ask_new_password()
    try:
        hashed = generate(scheme, password, user, parse_rounds(values.get("-r", "0")))
    except SchemeError as error:
        return fatal(str(error))
    except ValueError as error:
        return fatal(f"{scheme}: {error}")
    if "-V" in values:
        return print_verified(hashed, password, user)
    print(hashed)
    return 0


def print_verified(stored: str, password: str, user: str) -> int:
    """Check `password` against `stored` and print `STORED (verified)`, as doveadm -V/-t do."""
    try:
        matched = verify(stored, password, DEFAULT_SCHEME, user)
    except SchemeError as error:
        return fatal(f"reverse decode check failed: {error}")
    if not matched:
        return fatal("reverse password verification check failed: Password mismatch")
    print(f"{stored} (verified)")
    return 0


def test_stored(stored: str, password: str | None, user: str) -> int:
    if not stored.startswith("{") or "}" not in stored:
        return fatal("Missing {scheme} prefix from hash")
    if password is None:
        password = read_password("Enter password to verify: ")
    return print_verified(stored, password, user)
