"""`newaliases`: rebuild every table listed in `alias_database` (newaliases(1), sendmail -bi).

Equivalent to `postalias` without arguments: each `type:file` of alias_database (default
hash:/etc/aliases) is compiled into roost's FILE.roostdb. Options: `-c DIR` (configuration
directory); sendmail-style `-oA...`, `-v` and `-N...` are accepted and ignored.
Exit status: 0 when every table was built, 1 otherwise.
Security: only the files named by alias_database are read and written.
"""

from __future__ import annotations

from roost.cli.postmap import run_tool


def main(argv: list[str]) -> int:
    forwarded = [argv[0] if argv else "newaliases"]
    arguments = list(argv[1:])
    while arguments:
        option = arguments.pop(0)
        if option == "-c" and arguments:
            forwarded += ["-c", arguments.pop(0)]
        elif option.startswith("-c") and len(option) > 2:
            forwarded += ["-c", option[2:]]
    return run_tool("postalias", forwarded, use_alias_database=True)
