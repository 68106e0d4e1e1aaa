"""`postalias`: build, query, list and edit alias databases (postalias(1), aliases(5)).

The same engine as postmap (roost.cli.postmap) with aliases(5) input syntax (`name: value`,
the value stored as a normalized address list), `key:<TAB>value` output for -q - and -s,
and the `@: @` / YP_* entries postalias adds. Like Postfix, a table argument is required
(`newaliases` is the command that defaults to alias_database).
Exit status as Postfix: 0 on success or when a key was found, 1 otherwise.
Security: tables are only written next to their source; values are never executed here.
"""

from __future__ import annotations

from roost.cli.postmap import run_tool


def main(argv: list[str]) -> int:
    return run_tool("postalias", argv)
