"""master.cf: Postfix's service table, parsed into frozen MasterService records.

Implements master(5) as Postfix 3.7 reads it: one service per logical line (a line starting
with whitespace continues the previous one; blank lines and lines whose first non-blank
character is `#` are skipped and do not end a logical line), the fields service, type
(inet, unix, unix-dgram, fifo, pass), private, unpriv, chroot, wakeup, maxproc, command, then
arguments. Arguments follow the daemons' getopt(3) rules: leading options (`-v`, `-o
name=value`, `-oname=value`, `-o { name = value }`, `-n name`...) up to `--` or the first
non-option; `{ ... }` groups one argument containing blanks (Postfix 3.0+). Also renders the
table like `postconf -M` / `postconf -Mf` (see `format_postconf_M`).

Invariants: never raises on bad input; every problem is a Diagnostic with file and the first
line of its logical line, worded like master(8). Entries whose fixed fields are unusable are
reported FATAL and left out; the rest come back in file order, duplicates included (postconf
shows them; `active_services` applies master(8)'s "the last entry wins").
Security: unix-domain service names must be one plain file name, so a service can never name
a socket outside the private/ and public/ directories.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from roost.config.diagnostics import Diagnostics, excerpt
from roost.config.listen import InetServiceName, service_port, split_inet_service

SERVICE_TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")
FIELD_NAMES = ("service", "transport type", "private", "unprivileged", "chroot", "wakeup_time",
               "max_proc", "command")
FIXED_FIELDS = len(FIELD_NAMES)
# master.cf separates fields with these; C isspace(3) decides continuation, comments, trimming.
FIELD_BLANKS = " \t\r\n"
C_SPACE = " \t\n\v\f\r"
# Options of Postfix daemons (getopt "+cdDi:lm:n:o:r:s:St:uvVz").
DAEMON_VALUE_OPTIONS = "imnorst"
DAEMON_FLAG_OPTIONS = "cdDlSuvVz"
INT_MAX = 2**31 - 1

# postconf -M layout: the column where each fixed field starts, the fold width and indent.
COLUMN_GOALS = (0, 11, 17, 25, 33, 41, 49, 57)
FOLD_LIMIT = 80
FOLD_INDENT = 4


@dataclass(frozen=True)
class MasterService:
    """One master.cf entry. Fixed fields are the raw text, `-` kept (see the effective_* helpers)."""

    name: str
    type: str
    private: str
    unpriv: str
    chroot: str
    wakeup: str
    maxproc: str
    command: str
    args: tuple[str, ...]  # daemon arguments except `-o` overrides, `{}` removed, in order
    overrides: tuple[tuple[str, str], ...]  # `-o name=value`, in order
    file: str
    line: int
    argv: tuple[str, ...] = ()  # all arguments as `postconf -M` shows them

    @property
    def service_name(self) -> str:
        """The read-only `$service_name` of this service (master(5))."""
        return self.name

    @property
    def process_name(self) -> str:
        """The read-only `$process_name`: the command's base name."""
        return os.path.basename(self.command)

    @property
    def key(self) -> str:
        """`name/type`, the form `postconf -M` and `postconf -P` select services by."""
        return f"{self.name}/{self.type}"


@dataclass(frozen=True)
class PostconfMOutput:
    stdout: str
    warnings: tuple[str, ...]  # e.g. `unmatched request: "foo"` (postconf writes them to stderr)
    fatal: str | None  # a malformed selector; postconf then prints nothing and exits 1


# ---------------------------------------------------------------- reading


def parse_master_cf(path: str, diags: Diagnostics) -> tuple[MasterService, ...]:
    """Parse the master.cf at `path`; a missing or unreadable file is FATAL."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        diags.fatal(path, None, f"open {path}: {exc.strerror or exc}")
        return ()
    return parse_master_cf_text(data.decode("utf-8", "surrogateescape"), path, diags)


def parse_master_cf_text(text: str, file: str, diags: Diagnostics) -> tuple[MasterService, ...]:
    """Parse master.cf text; `file` names it in diagnostics and in each MasterService."""
    services: list[MasterService] = []
    for line, logical in _logical_lines(text, file, diags):
        service = _parse_entry(logical, file, line, diags)
        if service is not None:
            services.append(service)
    _warn_duplicates(services, diags)
    return tuple(services)


def _logical_lines(text: str, file: str, diags: Diagnostics):
    """Yield (first line number, joined text) per logical line, like Postfix's readllines()."""
    start, parts = 0, []
    for number, physical in enumerate(text.split("\n"), start=1):
        stripped = physical.lstrip(C_SPACE)
        if not stripped or stripped.startswith("#"):
            continue
        if physical[0] in C_SPACE and parts:
            parts.append(physical)  # joined without separator, as Postfix does
            continue
        if parts:
            yield from _finish_logical(start, parts, file, diags)
        start, parts = number, [physical]
    if parts:
        yield from _finish_logical(start, parts, file, diags)


def _finish_logical(start: int, parts: list[str], file: str, diags: Diagnostics):
    logical = "".join(parts)
    if logical[0] in C_SPACE:
        diags.warning(file, start, "logical line must not start with whitespace: "
                                   f'"{excerpt(logical, 30)}" (ignored)')
        return
    yield start, logical


def _parse_entry(logical: str, file: str, line: int, diags: Diagnostics) -> MasterService | None:
    if "\0" in logical:
        diags.fatal(file, line, f'NUL character in master.cf entry "{excerpt(logical)}"')
        return None
    tokens = split_braced(logical)
    if len(tokens) < FIXED_FIELDS:
        diags.fatal(file, line, f'missing "{FIELD_NAMES[len(tokens)]}" field')
        return None
    fields = tokens[:FIXED_FIELDS]
    if not _fixed_fields_valid(fields, file, line, diags):
        return None
    args, overrides = _daemon_arguments(tokens[FIXED_FIELDS:], file, line, diags)
    name, kind, private, unpriv, chroot, wakeup, maxproc, command = fields
    return MasterService(name, kind, private, unpriv, chroot, wakeup, maxproc, command,
                         tuple(args), tuple(overrides), file, line,
                         tuple(_postconf_arguments(tokens[FIXED_FIELDS:])))


def _fixed_fields_valid(fields: list[str], file: str, line: int, diags: Diagnostics) -> bool:
    name, kind, private, unpriv, chroot, wakeup, maxproc, command = fields
    problems: list[str] = []

    def bad(field: str, value: str) -> None:
        problems.append(f'field "{field}": bad value: "{excerpt(value)}"')

    for field, value in (("service", name), ("command", command)):
        if any(ch in value for ch in "{}" + FIELD_BLANKS):
            bad(field, value)
    if kind not in SERVICE_TYPES:
        problems.append(f"bad transport type: {excerpt(kind)}")
    for field, value in (("private", private), ("unprivileged", unpriv), ("chroot", chroot)):
        if value not in ("y", "n", "-"):
            bad(field, value)
    if wakeup != "-" and not _is_count(wakeup[:-1] if wakeup.endswith("?") else wakeup):
        bad("wakeup_time", wakeup)
    if maxproc != "-" and not _is_count(maxproc):
        bad("max_proc", maxproc)
    if kind == "inet":
        if private in ("y", "-"):
            problems.append("inet service cannot be private")
        parsed = split_inet_service(name)
        if isinstance(parsed, str):
            problems.append(f'{parsed} in "{excerpt(name)}"')
    elif kind in SERVICE_TYPES and (not name or "/" in name or name in (".", "..")):
        problems.append(f'bad service name "{excerpt(name)}": a {kind} service name must '
                        "be a plain file name")
    for problem in problems:
        diags.fatal(file, line, problem)
    return not problems


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit() and int(text) <= INT_MAX


def split_braced(text: str) -> list[str]:
    """Split on blanks, keeping `{...}` groups (nesting counted) inside one token."""
    tokens: list[str] = []
    index, end = 0, len(text)
    while index < end:
        while index < end and text[index] in FIELD_BLANKS:
            index += 1
        if index >= end:
            break
        start, level = index, 0
        while index < end:
            ch = text[index]
            if ch == "{":
                level += 1
            elif ch == "}" and level > 0:
                level -= 1
            elif level == 0 and ch in FIELD_BLANKS:
                break
            index += 1
        tokens.append(text[start:index])
    return tokens


def extract_braced(token: str) -> tuple[str, str | None]:
    """The text inside a token's leading `{}` group, blanks trimmed, and an error or None."""
    level = 0
    for index, ch in enumerate(token):
        if ch == "{":
            level += 1
        elif ch == "}":
            level -= 1
            if level == 0:
                inner = token[1:index].strip(C_SPACE)
                if index + 1 < len(token):
                    return inner, f"syntax error after '}}' in \"{excerpt(token)}\""
                return inner, None
    return token[1:].strip(C_SPACE), f"missing '}}' in \"{excerpt(token)}\""


def split_nameval(text: str) -> tuple[str, str] | str:
    """`name = value` (blanks allowed around `=`) as a pair, or an error text."""
    body = text.lstrip(C_SPACE)
    if not body or body[0] == "=":
        return "missing attribute name"
    name_end = 0
    while name_end < len(body) and body[name_end] not in C_SPACE and body[name_end] != "=":
        name_end += 1
    rest = body[name_end:].lstrip(C_SPACE)
    if not rest.startswith("="):
        return "missing '=' after attribute name"
    return body[:name_end], rest[1:].strip(C_SPACE)


def _daemon_arguments(tokens: list[str], file: str, line: int, diags: Diagnostics
                      ) -> tuple[list[str], list[tuple[str, str]]]:
    """Split arguments the way master(8) then the daemon's getopt(3) see them."""
    words = []
    for token in tokens:
        if token.startswith("{"):
            token, error = extract_braced(token)
            if error:
                diags.fatal(file, line, error)
        words.append(token)
    args: list[str] = []
    overrides: list[tuple[str, str]] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            args.append(word)
            index += 1
            break
        if not word.startswith("-") or word == "-":
            break
        for position in range(1, len(word)):
            letter = word[position]
            if letter in DAEMON_VALUE_OPTIONS:
                if position + 1 < len(word):
                    value: str | None = word[position + 1:]
                    if letter == "o" and value.startswith("{"):
                        # postconf -M hides this, but daemons keep the braces in the name.
                        diags.warning(file, line, f'"{excerpt(word)}": Postfix does not remove '
                                                  '{} attached to -o; write "-o { name = value }"')
                elif index + 1 < len(words):
                    index += 1
                    value = words[index]
                else:
                    value = None
                    diags.fatal(file, line, f"option requires an argument -- '{letter}'")
                if value is not None and letter == "o":
                    _add_override(value, overrides, file, line, diags)
                elif value is not None:
                    args.extend((f"-{letter}", value))
                break
            if letter not in DAEMON_FLAG_OPTIONS:
                diags.warning(file, line, f"unknown daemon option -- '{excerpt(letter)}'")
            args.append(f"-{letter}")
        index += 1
    args.extend(words[index:])
    return args, overrides


def _add_override(value: str, overrides: list[tuple[str, str]], file: str, line: int,
                  diags: Diagnostics) -> None:
    pair = split_nameval(value)
    if isinstance(pair, str):
        diags.fatal(file, line, f'invalid "-o {excerpt(value)}" option value: {pair}')
    else:
        overrides.append(pair)


def _postconf_arguments(tokens: list[str]) -> list[str]:
    """Arguments normalized as postconf(1) shows them: `-o` split from its value, `{}` removed,
    a braced `-o` value rewritten as name=value. Mirrors postconf, quirks included."""
    argv = list(tokens)
    index = 0
    while index < len(argv):
        arg = argv[index]
        if not arg.startswith("-") or arg == "--":
            break
        split_at = arg.find("o", 2)
        if split_at >= 0:  # "-vo..." becomes "-v" "-o..."
            argv[index:index + 1] = [arg[:split_at], "-" + arg[split_at:]]
            arg = argv[index]
        if arg[1:2] not in ("o", ""):  # postconf also treats a lone "-" as taking a value
            index += 1
            continue
        if len(arg) > 2:
            argv[index:index + 1] = [arg[:2], arg[2:]]
            index += 1
        elif index + 1 < len(argv):
            index += 1
        else:
            break
        if argv[index].startswith("{"):
            argv[index] = extract_braced(argv[index])[0]
            if argv[index - 1][1:2] == "o":
                pair = split_nameval(argv[index])
                if not isinstance(pair, str):
                    argv[index] = f"{pair[0]}={pair[1]}"
        index += 1
    for rest in range(index, len(argv)):
        if argv[rest].startswith("{"):
            argv[rest] = extract_braced(argv[rest])[0]
    return argv


# ---------------------------------------------------------------- duplicates and defaults


def service_identity(service: MasterService) -> str:
    """What master(8) keys a service by: the canonical endpoint (inet) or socket path."""
    if service.type == "inet":
        parsed = split_inet_service(service.name)
        if not isinstance(parsed, InetServiceName):
            return f"inet:{service.name}"
        port = service_port(parsed.port)
        port_text = str(port) if port is not None else parsed.port
        try:
            host = str(ipaddress.ip_address(parsed.host))
        except ValueError:
            host = parsed.host.lower()
        return f"inet:[{host}]:{port_text}" if host else f"inet:{port_text}"
    directory = "private" if effective_private(service) else "public"
    return f"{service.type}:{directory}/{service.name}"


def _warn_duplicates(services: list[MasterService], diags: Diagnostics) -> None:
    latest: dict[str, MasterService] = {}
    for service in services:
        identity = service_identity(service)
        earlier = latest.get(identity)
        latest[identity] = service
        if earlier is None:
            continue
        canonical = identity.split(":", 1)[1]
        diags.warning(service.file, service.line,
                      f'duplicate master.cf entry for service "{excerpt(service.name)}" ({excerpt(canonical)}), '
                      f"also at line {earlier.line} -- using the last entry")


def active_services(services: Iterable[MasterService]) -> tuple[MasterService, ...]:
    """The services master(8) runs: of duplicate entries the last wins, in the first's place."""
    chosen: dict[str, MasterService] = {}
    for service in services:
        chosen[service_identity(service)] = service  # dict keeps the first key's position
    return tuple(chosen.values())


def effective_private(service: MasterService) -> bool:
    return service.private != "n"  # "-" means y


def effective_unpriv(service: MasterService) -> bool:
    return service.unpriv != "n"  # "-" means y


def effective_chroot(service: MasterService, compatibility_level: str = "0") -> bool:
    """chroot "-" means y below compatibility_level 1, n from it on (Postfix 3.0+)."""
    if service.chroot != "-":
        return service.chroot == "y"
    major = compatibility_level.split(".", 1)[0]
    return not (major.isdigit() and int(major) >= 1)


def effective_wakeup(service: MasterService) -> tuple[int, bool]:
    """(seconds, conditional): 0 means never; `N?` wakes only a service that was used."""
    text = service.wakeup
    if text == "-":
        return 0, False
    conditional = text.endswith("?")
    seconds = int(text[:-1] if conditional else text)
    return seconds, conditional and seconds > 0


def effective_maxproc(service: MasterService, default_process_limit: int) -> int:
    """Process limit: `-` is $default_process_limit; 0 means no limit."""
    return default_process_limit if service.maxproc == "-" else int(service.maxproc)


# ---------------------------------------------------------------- postconf -M


def render_postconf_M(services: Sequence[MasterService], selectors: Sequence[str] = (),
                      fold: bool = False) -> PostconfMOutput:
    """What `postconf -M[f] [service[/type]...]` prints, its warnings, or its fatal error."""
    patterns = []
    for selector in selectors:
        pattern = _selector_pattern(selector)
        if pattern is None:
            return PostconfMOutput("", (), "-M option requires service_name[/type]")
        patterns.append(pattern)
    lines: list[str] = []
    matches = [0] * len(patterns)
    for service in services:
        if not patterns:
            lines.append(format_master_entry(service, fold))
        for number, (name, kind) in enumerate(patterns):
            if name in ("*", service.name) and kind in ("*", service.type):
                matches[number] += 1
                lines.append(format_master_entry(service, fold))
    warnings = tuple(f'unmatched request: "{selector}"'
                     for selector, count in zip(selectors, matches) if count == 0)
    return PostconfMOutput("".join(lines), warnings, None)


def format_postconf_M(services: Sequence[MasterService], selectors: Sequence[str] = (),
                      fold: bool = False) -> str:
    """The standard output of `postconf -M[f] [selectors]` (empty for a malformed selector)."""
    return render_postconf_M(services, selectors, fold).stdout


def _selector_pattern(selector: str) -> tuple[str, str] | None:
    if selector.startswith("/"):
        return None
    parts = [part for part in selector.split("/") if part]
    if not 1 <= len(parts) <= 2 or any("*" in p and p != "*" for p in parts):
        return None
    return parts[0], parts[1] if len(parts) == 2 else "*"


def format_master_entry(service: MasterService, fold: bool = False) -> str:
    """One entry as `postconf -M` prints it (with its newline); `fold` is `-f`."""
    out: list[str] = []
    width = 0

    def add(text: str) -> None:
        nonlocal width
        out.append(text)
        width += _byte_length(text)  # postconf counts bytes, not characters

    fixed = (service.name, service.type, service.private, service.unpriv, service.chroot,
             service.wakeup, service.maxproc, service.command)
    for goal, text in zip(COLUMN_GOALS, fixed):
        if width > 0:
            add(" ")
            while width < goal:
                add(" ")
        add(text)

    argv = service.argv
    in_options = True
    index = 0
    while index < len(argv):
        arg = argv[index]
        value = None
        braces = False
        item_width = _byte_length(arg)
        if in_options:
            if not arg.startswith("-") or arg == "--":
                in_options = False  # the first non-option is never braced
            elif arg[1:2] in ("o", "") and index + 1 < len(argv):
                value = argv[index + 1]
                width = FOLD_LIMIT  # an option with a value starts a new line under -f
                braces = _has_blank(value)
                item_width += _byte_length(value) + 3 + (2 if braces else 0)
        else:
            braces = _has_blank(arg)
        if width > FOLD_INDENT:
            if not fold or width + 1 + item_width < FOLD_LIMIT:
                add(" ")
            else:
                out.append("\n" + " " * FOLD_INDENT)
                width = FOLD_INDENT
        add("{" + arg + "}" if braces and not in_options else arg)
        if value is not None:
            add(" ")
            add("{" + value + "}" if braces else value)
            index += 1
            width = FOLD_LIMIT  # and whatever follows it, too
        index += 1
    return "".join(out) + "\n"


def _has_blank(text: str) -> bool:
    return any(ch in FIELD_BLANKS for ch in text)


def _byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))
