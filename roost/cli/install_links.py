"""`roost install-links BINDIR [--force]`: put Postfix's and Dovecot's command names on PATH.

Creates one symbolic link per multi-call name (sendmail, mailq, newaliases, postqueue,
postsuper, postcat, postmap, postalias, postconf, doveadm, doveconf; the table is
`roost.cli.dispatch.MULTICALL`) in BINDIR, each pointing at the `roost` console script that
sits next to this Python interpreter. Run through a link, roost behaves as that command
(dispatch on argv[0]). When roost is not installed as a console script (run from a source
tree with `python -m roost`), a small executable wrapper BINDIR/roost is written first and
the links point at it.

Invariants: every conflict is checked before anything is changed, so a refused run changes
nothing; a link is replaced by rename, never removed first; links and files that already
belong to roost (a link to a `roost` program, or our wrapper) are replaced silently, anything
else only with --force, and a directory never.
Security: writes only inside BINDIR, only the fixed names above; never follows a link to
write through it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from roost.cli.dispatch import MULTICALL

LINK_NAMES = tuple(MULTICALL)
WRAPPER_NAME = "roost"
WRAPPER_MARKER = "# roost multi-call wrapper (written by roost install-links)"


def console_script() -> str | None:
    """The installed `roost` console script of this interpreter's environment, if any."""
    candidate = Path(sys.executable).parent / "roost"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


def wrapper_text() -> str:
    import roost

    package_parent = Path(roost.__file__).resolve().parent.parent
    return (f"#!{sys.executable}\n{WRAPPER_MARKER}\n"
            "import sys\n"
            f"sys.path.insert(0, {str(package_parent)!r})\n"
            "from roost.cli.dispatch import main\n"
            "sys.exit(main())\n")


def belongs_to_roost(path: Path) -> bool:
    """A link to a program named roost, or the wrapper this command writes."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        return target.name == "roost" or _is_wrapper(target)
    return _is_wrapper(path)


def _is_wrapper(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return WRAPPER_MARKER.encode() in head


def _replace_with_symlink(target: str, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.roost-tmp")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    os.symlink(target, temporary)
    os.replace(temporary, path)


def _write_wrapper(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.roost-tmp")
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o755)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(wrapper_text())
    os.chmod(temporary, 0o755)  # the umask may have narrowed the mode os.open used
    os.replace(temporary, path)


def conflicts(bindir: Path, names: list[str], force: bool) -> list[str]:
    """Why each name cannot be installed (empty when all can)."""
    problems = []
    for name in names:
        path = bindir / name
        if path.is_dir() and not path.is_symlink():
            problems.append(f"{path} is a directory")
        elif (path.exists() or path.is_symlink()) and not force and not belongs_to_roost(path):
            problems.append(f"{path} exists and is not a roost link (use --force to replace it)")
    return problems


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roost install-links",
        description="Create sendmail, postconf, doveadm... links to roost in BINDIR.")
    parser.add_argument("bindir", metavar="BINDIR", help="directory on PATH, e.g. /usr/local/sbin")
    parser.add_argument("--force", action="store_true",
                        help="replace existing files that do not belong to roost")
    return parser


def run(command: str, config_dir: str, args: list[str], verbose: int) -> int:
    try:
        options = build_parser().parse_args(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    bindir = Path(os.path.abspath(options.bindir))
    if not bindir.is_dir():
        print(f"roost install-links: fatal: {bindir} is not a directory", file=sys.stderr)
        return 1
    target = console_script()
    names = list(LINK_NAMES) if target else [WRAPPER_NAME, *LINK_NAMES]
    problems = conflicts(bindir, names, options.force)
    if problems:
        for problem in problems:
            print(f"roost install-links: fatal: {problem}", file=sys.stderr)
        print("roost install-links: nothing was changed", file=sys.stderr)
        return 1
    try:
        if target is None:
            _write_wrapper(bindir / WRAPPER_NAME)
            target = str(bindir / WRAPPER_NAME)
            print(f"{bindir / WRAPPER_NAME}: wrapper running roost with {sys.executable}")
        for name in LINK_NAMES:
            _replace_with_symlink(target, bindir / name)
            print(f"{bindir / name} -> {target}")
    except OSError as error:
        print(f"roost install-links: fatal: {error}", file=sys.stderr)
        return 1
    return 0
