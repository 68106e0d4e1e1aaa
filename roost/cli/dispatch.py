"""Entry point: `roost SUBCOMMAND ...` and multi-call dispatch on argv[0].

Installed as `sendmail`, `postconf`, `doveadm`... (see `roost install-links`), the program
behaves as that command. Invariant: each command lives in its own module under roost.cli and
exposes `main(argv: list[str]) -> int`; this module only routes.
Security: argv[0] selects among a fixed table of commands, never an import path.
"""

from __future__ import annotations

import importlib
import os
import sys

# command name -> module under roost.cli providing main(argv) -> int
MULTICALL = {
    "postconf": "postconf",
    "doveconf": "doveconf",
    "postmap": "postmap",
    "postalias": "postalias",
    "newaliases": "newaliases",
    "sendmail": "sendmail",
    "mailq": "mailq",
    "postqueue": "postqueue",
    "postsuper": "postsuper",
    "postcat": "postcat",
    "doveadm": "doveadm",
}


def run_module(module: str, argv: list[str]) -> int:
    try:
        mod = importlib.import_module(f"roost.cli.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"roost.cli.{module}":
            raise
        prog = argv[0] if argv else module
        print(f"{prog}: fatal: this command is not part of this roost version yet", file=sys.stderr)
        return 1
    return int(mod.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    name = os.path.basename(argv[0]) if argv else "roost"
    if name in MULTICALL:
        return run_module(MULTICALL[name], [name, *argv[1:]])
    from roost.cli import roost_main

    return roost_main.main(argv[1:])
