"""`doveadm`: Dovecot's administration tool, routed to one module per sub-command.

Implements the command-line shape of doveadm(1) (Dovecot 2.3): global options before the
command (`-c CONFIG`, `-O`, `-D`, `-v`, `-o key=value`, `-f formatter`), then the command
words. Each command lives in its own module exposing `main(argv) -> int` with argv[0] the
command name (`["pw", "-s", "SHA512-CRYPT"]`), so `auth test`, `auth lookup` and `user` land
as separate modules (listed in COMMANDS; a missing module is reported, not a traceback).
Exit codes are doveadm's: 64 (EX_USAGE) for an unknown command, 89 for an unknown global
option, 75 for fatal errors. `-c FILE` is handed on as $DOVEADM_CONFIG.
Security: the command words select among a fixed table, never an import path.
"""

from __future__ import annotations

import importlib
import os
import sys

EX_USAGE = 64
EX_BAD_GLOBAL_OPTION = 89  # what doveadm 2.3 exits with on an unknown global option

# command words -> module under roost.cli
COMMANDS: dict[tuple[str, ...], str] = {
    ("pw",): "doveadm_pw",
    ("auth", "test"): "doveadm_auth",
    ("auth", "lookup"): "doveadm_auth",
    ("auth", "login"): "doveadm_auth",
    ("user",): "doveadm_user",
}

USAGE = """usage: doveadm [-Dv] [-f <formatter>] <command> [<args>]

  auth         lookup|login|test
  pw           [-l] [-p plaintext] [-r rounds] [-s scheme] [-t hash] [-u user] [-V]
  user         [-a <userdb socket path>] [-x <auth info>] [-f field] [-e <value>] [-u] <user mask>
"""

# global options that take a value (doveadm's getopt string "+c:Df:hi:o:OvS:")
OPTIONS_WITH_VALUE = {"-c", "-f", "-i", "-o", "-S"}
FLAG_OPTIONS = {"-D", "-O", "-v", "-h"}


def split_global_options(args: list[str]) -> tuple[dict[str, list[str]], list[str]] | str:
    """(global options, command words and arguments), or the offending option as a str."""
    options: dict[str, list[str]] = {}
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "-":
        option = args[index]
        if option == "--":
            index += 1
            break
        name, value = option[:2], option[2:]
        if name in OPTIONS_WITH_VALUE:
            if not value:
                index += 1
                if index >= len(args):
                    return option
                value = args[index]
            options.setdefault(name, []).append(value)
        elif name in FLAG_OPTIONS and not value:
            options.setdefault(name, []).append("")
        else:
            return option
        index += 1
    return options, args[index:]


def find_command(words: list[str]) -> tuple[tuple[str, ...], str] | None:
    for length in (2, 1):
        key = tuple(words[:length])
        if key in COMMANDS:
            return key, COMMANDS[key]
    return None


def main(argv: list[str]) -> int:
    parsed = split_global_options(argv[1:])
    if isinstance(parsed, str):
        problem = ("option requires an argument" if parsed in OPTIONS_WITH_VALUE
                   else "invalid option")
        sys.stderr.write(f"doveadm: {problem} -- '{parsed[1:2]}'\n")
        return EX_BAD_GLOBAL_OPTION
    options, rest = parsed
    if "-c" in options:
        os.environ["DOVEADM_CONFIG"] = options["-c"][-1]
    found = find_command(rest)
    if found is None:
        sys.stderr.write(USAGE)
        return EX_USAGE
    words, module_name = found
    try:
        module = importlib.import_module(f"roost.cli.{module_name}")
    except ModuleNotFoundError as error:
        if error.name != f"roost.cli.{module_name}":
            raise
        command = " ".join(words)
        sys.stderr.write(f"doveadm: fatal: '{command}' is not part of this roost version yet\n")
        return EX_USAGE
    return int(module.main([" ".join(words), *rest[len(words):]]) or 0)
