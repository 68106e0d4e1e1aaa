"""`roost -c DIR check`: report every configuration problem, with file and line.

Loads the whole configuration (main.cf, master.cf, dovecot.conf and what they include) the
way the master would, prints every diagnostic (`warning: FILE, line N: ...`,
`fatal: FILE, line N: ...`) to stderr in file order, and exits 1 when any is fatal, so a
broken configuration is caught before `start` or `reload`.
Security: reads configuration only; opens no sockets.
"""

from __future__ import annotations

import sys

from roost.config.load import load_config


def run(command: str, config_dir: str, args: list[str], verbose: int) -> int:
    if args:
        print(f"roost check: unexpected arguments: {' '.join(args)}", file=sys.stderr)
        return 2
    config = load_config(config_dir)
    for diagnostic in config.diagnostics.items:
        print(f"roost: {diagnostic}", file=sys.stderr)
    if config.diagnostics.has_fatal():
        count = len(config.diagnostics.fatals)
        print(f"roost: fatal: {config_dir}: {count} configuration error{'s' * (count != 1)};"
              " the mail system will not start", file=sys.stderr)
        return 1
    if verbose:
        for listener in config.listeners:
            print(f"roost: listener {listener.describe()}", file=sys.stderr)
    return 0
