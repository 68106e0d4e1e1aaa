"""main.cf: Postfix's parameter file, read into `MainCf` and edited like `postconf -e` / `-#`.

Implements the file format of postconf(5) as Postfix 3.7 reads it:
- a logical line starts with non-whitespace text; a line starting with whitespace continues
  it (the newline is dropped, the continuation's own leading whitespace kept);
- blank lines and lines whose first non-whitespace character is `#` are skipped and do not end
  a logical line, so a comment may sit between a line and its continuation; a `#` after text
  is part of the value (`relayhost = #x` sets "#x");
- `name = value`: whitespace around the name, the `=` and the value is dropped; the value
  may itself contain `=`; the last assignment of a name wins ("overriding earlier entry");
- whitespace is C isspace(3) (space, tab, newline, VT, FF, CR), so CRLF files read the same.
Problems, with the first line of the logical line (Postfix names only some of them):
  text before any logical line that starts with whitespace   WARNING, ignored (as Postfix)
  a logical line without `=`, or with blanks in the name     FATAL (Postfix: fatal)
  `= value` with no name                                     FATAL (Postfix: fatal)
  a NUL byte                                                 WARNING, rest of that line ignored
Non-UTF-8 bytes are kept: the file is decoded with "surrogateescape", so every byte comes back
out unchanged when the text is written (postconf -n / -e), and values compare as Postfix's.

Editing (`edit_text`, `comment_out_text`) follows postconf(1) -e and -# as Postfix 3.7 does it:
every entry of the name is replaced (its continuation lines dropped, comments and blank lines
inside it kept) by `name = value` plus newline; new names are appended to the text as it is,
in the order given; `-#` puts `#` before the entry's first line and each continuation line;
every other byte of the file stays as it was.

Invariants: parse_* never raise on any input (text or bytes); they record Diagnostics.
Security: the value text is never interpreted here; excerpts in messages are bounded.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from roost.config.diagnostics import Diagnostics, excerpt

C_SPACE = " \t\n\v\f\r"


@dataclass(frozen=True)
class Assignment:
    """One `name = value` logical line."""

    name: str
    value: str  # raw, unexpanded; outer whitespace removed, continuation whitespace kept
    file: str
    line: int  # first physical line of the logical line
    end_line: int  # last physical line


@dataclass(frozen=True)
class MainCf:
    path: str
    assignments: tuple[Assignment, ...]  # every assignment, in file order (overridden ones too)
    exists: bool = True
    effective: dict[str, Assignment] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        winners: dict[str, Assignment] = {}
        for assignment in self.assignments:
            winners.pop(assignment.name, None)  # keep file order of the winning lines
            winners[assignment.name] = assignment
        object.__setattr__(self, "effective", winners)

    def get(self, name: str) -> Assignment | None:
        """The assignment that wins for `name` (the last one), or None."""
        return self.effective.get(name)

    def value(self, name: str) -> str | None:
        found = self.effective.get(name)
        return found.value if found else None

    def names(self) -> tuple[str, ...]:
        """Names set in the file, in the order of their winning assignments."""
        return tuple(self.effective)


# ---------------------------------------------------------------- reading


def parse_main_cf(path: str, diags: Diagnostics, *, missing_ok: bool = False) -> MainCf:
    """Read main.cf at `path`. A missing file is FATAL unless `missing_ok` (then empty)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if not missing_ok:
            diags.fatal(path, None, f"open {path}: No such file or directory")
        return MainCf(path, (), exists=False)
    except OSError as exc:
        diags.fatal(path, None, f"open {path}: {exc.strerror or exc}")
        return MainCf(path, (), exists=False)
    return parse_main_cf_text(data, path, diags)


def decode(data: bytes | str) -> str:
    return data if isinstance(data, str) else data.decode("utf-8", "surrogateescape")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def is_blank(line: str) -> bool:
    return line.strip(C_SPACE) == ""


def is_comment(line: str) -> bool:
    return line.lstrip(C_SPACE).startswith("#")


def is_continuation(line: str) -> bool:
    """A physical line that continues the logical line before it."""
    return line[:1] in C_SPACE and line[:1] != "" and not is_blank(line) and not is_comment(line)


def physical_lines(text: str) -> list[str]:
    """Lines without their newline; a final line without newline is still a line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def logical_lines(text: str, file: str, diags: Diagnostics) -> Iterator[tuple[int, int, str]]:
    """(first line, last line, text) of each logical line; comments and blanks skipped."""
    start = end = 0
    parts: list[str] = []
    for number, line in enumerate(physical_lines(text), 1):
        if "\0" in line:
            diags.warning(file, number, "NUL byte in line: the rest of the line is ignored")
            line = line[:line.index("\0")]
        if is_blank(line) or is_comment(line):
            continue
        if line[0] in C_SPACE and parts:
            parts.append(line)
            end = number
            continue
        # A line starting with whitespace with nothing to continue begins a logical line of
        # its own; the caller reports and skips it (and its continuations), as Postfix does.
        if parts:
            yield start, end, "".join(parts)
        parts = [line]
        start = end = number
    if parts:
        yield start, end, "".join(parts)


def parse_main_cf_text(data: bytes | str, path: str, diags: Diagnostics) -> MainCf:
    """Parse main.cf content; `path` names it in diagnostics and assignments."""
    text = decode(data)
    assignments: list[Assignment] = []
    seen: dict[str, Assignment] = {}
    for start, end, logical in logical_lines(text, path, diags):
        if logical[0] in C_SPACE:
            diags.warning(path, start, "logical line must not start with whitespace: "
                          f'"{excerpt(logical, 30)}"')
            continue
        parsed = split_assignment(logical)
        if isinstance(parsed, str):
            diags.fatal(path, start, f'{parsed}: "{excerpt(logical)}"')
            continue
        name, value = parsed
        earlier = seen.get(name)
        if earlier is not None:
            diags.warning(path, start, f"overriding earlier entry: {name}={excerpt(earlier.value)}")
        assignment = Assignment(name, value, path, start, end)
        seen[name] = assignment
        assignments.append(assignment)
    return MainCf(path, tuple(assignments))


def split_assignment(logical: str) -> tuple[str, str] | str:
    """(name, value) of `name = value`, or the problem as a message."""
    name, equals, value = logical.partition("=")
    name = name.strip(C_SPACE)
    if not equals or any(c in C_SPACE for c in name):
        return "missing '=' after parameter name"
    if not name:
        return "missing parameter name"
    return name, value.strip(C_SPACE)


# ---------------------------------------------------------------- editing (postconf -e, -#)


def _entries(lines: Sequence[str]) -> Iterator[tuple[str, int, list[int]]]:
    """(name, first line index, continuation line indexes) of each named entry."""
    index = 0
    while index < len(lines):
        line = lines[index]
        if is_blank(line) or is_comment(line) or line[0] in C_SPACE:
            index += 1
            continue
        name = line.split("=", 1)[0].strip(C_SPACE) if "=" in line else None
        continuation: list[int] = []
        follow = index + 1
        while follow < len(lines) and (is_continuation(lines[follow]) or is_blank(lines[follow])
                                       or is_comment(lines[follow])):
            if is_continuation(lines[follow]):
                continuation.append(follow)
            follow += 1
        # Trailing blank/comment lines belong to nobody; stop the entry at its last continuation.
        if name is not None:
            yield name, index, continuation
        index = (continuation[-1] if continuation else index) + 1


def _raw_lines(text: str) -> list[str]:
    """Physical lines with their newline (the last one may have none)."""
    lines = text.split("\n")
    raw = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        raw.append(lines[-1])
    return raw


def edit_text(text: str, edits: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    """Apply `postconf -e` edits; returns the new text and warnings (multiple entries).
    Like Postfix, a rewritten line always ends in a newline and new lines are appended to the
    text as it is (after a last line without newline too)."""
    wanted = dict(edits)
    raw = _raw_lines(text)
    lines = [line.rstrip("\n") for line in raw]
    drop: set[int] = set()
    found: dict[str, int] = {}
    for name, first, continuation in _entries(lines):
        if name in wanted:
            found[name] = found.get(name, 0) + 1
            raw[first] = f"{name} = {wanted[name]}\n"
            drop.update(continuation)
    warnings = [f'multiple entries for "{name}"' for name, count in found.items() if count > 1]
    kept = [line for index, line in enumerate(raw) if index not in drop]
    appended = [f"{name} = {value}\n" for name, value in wanted.items() if name not in found]
    return "".join(kept + appended), warnings


def comment_out_text(text: str, names: Sequence[str]) -> tuple[str, list[str]]:
    """Apply `postconf -#`: comment out every entry of each name; returns text and warnings."""
    wanted = set(names)
    raw = _raw_lines(text)
    lines = [line.rstrip("\n") for line in raw]
    found: dict[str, int] = {}
    for name, first, continuation in _entries(lines):
        if name in wanted:
            found[name] = found.get(name, 0) + 1
            for index in (first, *continuation):
                raw[index] = "#" + raw[index]
    warnings = [f'multiple entries for "{name}"' for name, count in found.items() if count > 1]
    return "".join(raw), warnings


def parse_edit_request(request: str) -> tuple[str, str] | None:
    """`name = value` or `name=value` of a `postconf -e` argument, or None without `=`."""
    name, equals, value = request.partition("=")
    if not equals:
        return None
    return name.strip(C_SPACE), value.strip(C_SPACE)
