"""The `roost` command: `roost [-c DIR] COMMAND [ARGS]`.

Commands: start, start-fg, stop, reload, status, check, flush, init, install-links, and every
Postfix/Dovecot tool name (`roost postconf -n`, `roost doveadm pw ...`).
The configuration directory is `-c DIR`, else $MAIL_CONFIG (as in Postfix), else /etc/roost;
it is handed to sub-tools through MAIL_CONFIG so `roost -c DIR postconf -n` reads DIR.
Security: nothing here reads configuration; each command validates its own input.
"""

from __future__ import annotations

import argparse
import os
import sys

from roost.cli.dispatch import MULTICALL, run_module

DEFAULT_CONFIG_DIR = "/etc/roost"

# roost command -> (module under roost.cli, help)
COMMANDS = {
    "start": ("control", "start the mail system in the background; returns once every listener is bound"),
    "start-fg": ("control", "run the mail system in the foreground, logging to stderr"),
    "stop": ("control", "stop the running mail system gracefully"),
    "reload": ("control", "re-read configuration and tables without dropping connections"),
    "status": ("control", "say whether the mail system is running"),
    "flush": ("control", "attempt to deliver all queued mail now"),
    "check": ("check", "report every configuration problem with file and line"),
    "init": ("init", "write a complete configuration directory and its state directories"),
    "install-links": ("install_links", "create sendmail, postconf, doveadm... links to roost"),
}


def config_dir(option: str | None) -> str:
    return option or os.environ.get("MAIL_CONFIG") or DEFAULT_CONFIG_DIR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="roost", description="roost mail server")
    parser.add_argument("-c", dest="config_dir", metavar="DIR",
                        help=f"configuration directory (default $MAIL_CONFIG or {DEFAULT_CONFIG_DIR})")
    parser.add_argument("-v", dest="verbose", action="count", default=0, help="more logging")
    names = [*COMMANDS, *MULTICALL]
    parser.add_argument("command", choices=names, metavar="COMMAND",
                        help="one of: " + ", ".join(names))
    parser.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.command in MULTICALL:
        if args.config_dir:
            os.environ["MAIL_CONFIG"] = args.config_dir
        return run_module(MULTICALL[args.command], [args.command, *args.args])
    module, _help = COMMANDS[args.command]
    directory = config_dir(args.config_dir)
    # Each roost command module exposes run(command, config_dir, args, verbose) -> int.
    from importlib import import_module

    mod = import_module(f"roost.cli.{module}")
    return int(mod.run(args.command, directory, args.args, args.verbose) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
