"""dovecot.conf parser (Dovecot 2.3 syntax) into a tree of sections and settings.

Implements the configuration file syntax of Dovecot 2.3 (doc.dovecot.org "Configuration File
Syntax", checked against Debian's doveconf 2.3.19.1):
- `key = value`: the value runs to the end of the line, trimmed; `"..."`/`'...'` around the
  whole value quote it (backslash escapes inside); `#` starts a comment outside quotes (a `#`
  glued to a word is still a comment, with Dovecot's "Ambiguous '#'" warning).
- a trailing `\\` joins the next line with one space; a blank or comment line in between, or
  the end of the file, drops the unfinished line (as Dovecot does).
- `type [name] {` opens a section, `}` on its own line closes it; sections of the same type
  and name are merged (`namespace inbox` in two files is one namespace), except unnamed
  passdb/userdb blocks, which are a list. Sections may span `!include`d files.
- `!include PATH` / `!include_try PATH`: glob patterns, relative to the including file's
  directory, read in sorted order; `!include_try` ignores missing files.
- `key = <FILE`: the value is FILE's content (relative to the file containing the line).
- `$name` words: `$key` inside `key = ...` is key's previous value (`mail_plugins =
  $mail_plugins quota`); with expansion (how the running server sees its configuration,
  `doveconf -x`), every `$setting` word becomes that setting's value.

Each Setting keeps both forms: `value` (files read, variables expanded) and `raw` (what
`doveconf -n` prints: `<FILE` kept, only self references expanded).

Invariants: never raises on bad input; every problem becomes a Diagnostic with file and line
and parsing carries on. Nesting is handled with an explicit stack (no recursion), section depth
and include depth are bounded.
Security: only files named by the (trusted) configuration are read, each at most
MAX_FILE_BYTES; messages quote input through `excerpt`.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from roost.config import dovecot_table
from roost.config.diagnostics import Diagnostics, excerpt

FILTER_TYPES = ("protocol", "local", "remote", "local_name")
LIST_TYPES = ("passdb", "userdb")  # unnamed blocks of these types are not merged
WHITESPACE = " \t"
MAX_SECTION_DEPTH = 32
MAX_INCLUDE_DEPTH = 32
MAX_FILE_BYTES = 16 * 1024 * 1024
PATH_LIMIT = 1024  # file names in messages are shown whole up to this length


@dataclass(frozen=True)
class Setting:
    value: str  # effective value: `<file` content read, `$variables` expanded
    file: str
    line: int
    raw: str = ""  # as written, in doveconf -n form
    path: str | None = None  # resolved FILE of a `key = <FILE` value


@dataclass(frozen=True)
class Section:
    type: str  # "" for the top level
    name: str
    settings: dict[str, Setting]
    children: tuple["Section", ...]
    file: str
    line: int

    def get(self, key: str, default: str | None = None) -> str | None:
        found = self.settings.get(key)
        return default if found is None else found.value

    def sections(self, type_: str) -> tuple["Section", ...]:
        return tuple(child for child in self.children if child.type == type_)

    def section(self, type_: str, name: str = "") -> "Section | None":
        return next((c for c in self.children if c.type == type_ and c.name == name), None)


@dataclass(frozen=True)
class DovecotConfig:
    path: str
    root: Section
    files: tuple[str, ...]  # every configuration and `<file` read, for change detection
    expanded: bool  # values carry file contents and expanded variables


@dataclass
class _Node:
    type: str
    name: str
    file: str
    line: int
    parent: "_Node | None" = None
    settings: dict[str, Setting] = field(default_factory=dict)
    children: list["_Node"] = field(default_factory=list)

    def is_scope(self) -> bool:
        """Top level and filters hold global settings; other sections hold their own."""
        return self.type == "" or self.type in FILTER_TYPES


def parse_dovecot_conf(path: str, diags: Diagnostics, *, expand: bool = True,
                       check: bool = True) -> DovecotConfig:
    """Parse `path` (and its includes). `expand` reads `<file` values and expands every
    `$variable` as the server does; without it values stay as `doveconf -n` shows them.
    `check` also reports unknown/unsupported names and Dovecot's consistency rules
    (roost.config.dovecot_settings.check_dovecot_config)."""
    return parse_dovecot_text(None, path, diags, expand=expand, check=check)


def parse_dovecot_text(text: str | bytes | None, path: str, diags: Diagnostics, *,
                       expand: bool = True, check: bool = True) -> DovecotConfig:
    """Parse configuration text as if read from `path` (includes resolve beside it);
    `None` reads `path` itself."""
    parser = _Parser(diags, expand)
    parser.parse_main(path, text)
    config = DovecotConfig(path, parser.freeze(), tuple(parser.files), expand)
    if check:
        from roost.config.dovecot_check import check_dovecot_config  # it imports us

        check_dovecot_config(config, diags)
    return config


def shown_path(path: str) -> str:
    return excerpt(path, PATH_LIMIT)


def decode(data: bytes) -> str:
    # Dovecot handles bytes; surrogateescape keeps invalid UTF-8 round-trippable.
    return data.decode("utf-8", "surrogateescape")


def read_limited(path: str) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise OSError(f"larger than {MAX_FILE_BYTES} bytes")
    return data


def strip_comment(line: str) -> tuple[str, bool]:
    """Cut a `#` comment outside quotes; also say whether it was glued to a word."""
    if "#" not in line:
        return line, False
    index, length = 0, len(line)
    while index < length:
        char = line[index]
        if char in "\"'":
            end = index + 1
            while end < length and line[end] != char:
                end += 2 if line[end] == "\\" and end + 1 < length else 1
            if end >= length:
                return line, False  # unterminated quote: the rest is kept as is
            index = end + 1
            continue
        if char == "#":
            return line[:index], index > 0 and line[index - 1] not in WHITESPACE
        index += 1
    return line, False


def unescape(text: str) -> str:
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\":
            index += 1
            if index < len(text):
                out.append(text[index])
        else:
            out.append(text[index])
        index += 1
    return "".join(out)


def logical_lines(text: str, file: str, diags: Diagnostics):
    """Yield (line number, logical line) after comments and continuations, as Dovecot reads."""
    pending: list[str] | None = None
    for number, physical in enumerate(text.split("\n"), 1):
        if "\0" in physical:
            physical = physical[:physical.index("\0")]
            diags.warning(file, number, "NUL byte in line, the rest of the line is ignored")
        line = physical.lstrip(WHITESPACE)
        if not line.rstrip(WHITESPACE + "\r") or line.startswith("#"):
            pending = None
            continue
        line, ambiguous = strip_comment(line)
        if ambiguous:
            diags.warning(file, number, "Ambiguous '#' character in line, treating it as "
                          "comment. Add a space before it to remove this warning.")
        line = line.rstrip(WHITESPACE + "\r")
        if line.endswith("\\"):
            piece = line[:-1].rstrip(WHITESPACE)
            pending = (pending or []) + ([piece] if piece else [])
            continue
        if pending:
            line = " ".join([*pending, line])
            pending = None
        if line:
            yield number, line


def split_line(line: str) -> tuple[str, str]:
    """(key, rest): the key ends at whitespace or `=`; the rest is left-trimmed."""
    end = 0
    while end < len(line) and line[end] not in WHITESPACE + "=":
        end += 1
    return line[:end], line[end:].lstrip(WHITESPACE)


def section_header(rest: str) -> tuple[str | None, str | None]:
    """(name, None) for `[name] {`, or (None, error)."""
    brace = rest.find("{")
    if brace < 0:
        return None, "Expecting '{'"
    if rest[brace + 1:].strip(WHITESPACE):
        return None, "Garbage after '{'"
    before = rest[:brace]
    name = before.strip(WHITESPACE)
    if name and before[-1:] not in tuple(WHITESPACE):
        return None, "Expecting '{'"
    if name.startswith('"'):
        close = name.find('"', 1)
        if close != len(name) - 1:
            return None, "Expecting '{'"
        return unescape(name[1:-1]), None
    if any(c in WHITESPACE for c in name):
        return None, "Expecting '{'"
    return name, None


class _Parser:
    def __init__(self, diags: Diagnostics, expand: bool):
        self.diags = diags
        self.expand = expand
        self.root = _Node("", "", "", 0)
        self.stack: list[tuple[_Node, str, int]] = []  # open sections with where they opened
        self.overflow = 0  # braces opened beyond MAX_SECTION_DEPTH, skipped
        self.including: list[str] = []  # real paths of the files being read, outermost first
        self.files: list[str] = []
        self.filter_keys: dict[str, tuple[str, int]] = {}

    @property
    def current(self) -> _Node:
        return self.stack[-1][0] if self.stack else self.root

    # --- files -------------------------------------------------------------------------------

    def parse_main(self, path: str, text: str | bytes | None = None) -> None:
        self.root.file, self.root.line = path, 0
        if text is None:
            try:
                data = read_limited(path)
            except OSError as exc:
                self.diags.fatal(path, None, f"open({path}) failed: {exc.strerror or exc}")
                return
            text = data
        if isinstance(text, bytes):
            text = decode(text)
        self.parse_file(path, text)
        for node, file, line in reversed(self.stack):
            self.diags.fatal(file, line, f"Missing '}}' (section {describe(node)} started here "
                             "is never closed)")
        if self.overflow:
            self.diags.fatal(path, None, f"Missing '}}' for {self.overflow} sections nested "
                             "too deep")

    def parse_file(self, path: str, text: str) -> None:
        self.files.append(path)
        self.including.append(os.path.realpath(path))
        for number, line in logical_lines(text, path, self.diags):
            self.parse_line(path, number, line)
        self.including.pop()

    def include(self, file: str, line: int, pattern: str, optional: bool) -> None:
        if not pattern:
            self.diags.warning(file, line, "!include without a file name, ignored")
            return
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.dirname(file), pattern)
        try:
            matches = sorted(glob.glob(pattern))
        except (OSError, ValueError) as exc:
            matches = []
            self.diags.warning(file, line, f"glob({shown_path(pattern)}) failed: {exc}")
        if not matches:
            if not optional:
                self.diags.fatal(file, line, f"No matches (!include {shown_path(pattern)})")
            return
        for match in matches:
            self.include_one(file, line, match, optional)

    def include_one(self, file: str, line: int, path: str, optional: bool) -> None:
        if os.path.realpath(path) in self.including:
            self.diags.fatal(file, line, f"Recursive include file: {shown_path(path)}")
            return
        if len(self.including) >= MAX_INCLUDE_DEPTH:
            self.diags.fatal(file, line, f"Includes nested deeper than {MAX_INCLUDE_DEPTH}")
            return
        if os.path.isdir(path):
            self.diags.warning(file, line, f"Include {shown_path(path)} is a directory, ignored")
            return
        try:
            data = read_limited(path)
        except OSError as exc:
            message = f"Couldn't open include file {shown_path(path)}: {exc.strerror or exc}"
            if not optional:
                self.diags.fatal(file, line, message)
            elif not isinstance(exc, FileNotFoundError):
                self.diags.warning(file, line, message + " (ignored by !include_try)")
            return
        self.parse_file(path, decode(data))

    # --- lines -------------------------------------------------------------------------------

    def parse_line(self, file: str, number: int, line: str) -> None:
        key, rest = split_line(line)
        if self.overflow:
            if key == "}" and not rest:
                self.overflow -= 1
            elif section_header(rest)[0] is not None and not rest.startswith("="):
                self.overflow += 1
            return
        if key in ("!include", "!include_try"):
            self.include(file, number, rest, key == "!include_try")
        elif rest.startswith("="):
            if not key:
                self.diags.fatal(file, number, "Missing key name ('=' at the beginning of line)")
                return
            self.assign(file, number, key, rest[1:].lstrip(WHITESPACE))
        elif key == "}" and not rest:
            if not self.stack:
                self.diags.fatal(file, number, "Unexpected '}'")
            else:
                self.stack.pop()
        elif key.startswith("!"):
            self.diags.fatal(file, number, f"Unknown directive: {excerpt(key)} "
                             "(expected !include or !include_try)")
        else:
            name, error = section_header(rest)
            if name is not None:
                self.open_section(file, number, key, name)
                return
            self.diags.fatal(file, number, f"{error}: {excerpt(line)}")
            unclosed = rest.count("{") - rest.count("}")
            if error == "Garbage after '{'" and unclosed > 0:
                # keep the braces balanced so the lines that follow stay where they belong
                self.open_section(file, number, key, rest[:rest.find("{")].strip(WHITESPACE))
                self.overflow += unclosed - 1

    def open_section(self, file: str, line: int, type_: str, name: str) -> None:
        if len(self.stack) >= MAX_SECTION_DEPTH:
            self.diags.fatal(file, line, f"Sections nested deeper than {MAX_SECTION_DEPTH}")
            self.overflow = 1
            return
        parent = self.current
        if type_ == "plugin":
            name = ""  # Dovecot ignores a plugin section's name
        if type_ in ("local", "remote", "local_name") and (parent.type, parent.name) == (
                type_, name):
            node = parent  # `local X { local X { } }` is one filter for Dovecot
        elif type_ in LIST_TYPES and not name:
            node = _Node(type_, name, file, line, parent)
            parent.children.append(node)
        else:
            node = self.child(parent, type_, name, file, line)
        self.stack.append((node, file, line))

    # --- values ------------------------------------------------------------------------------

    def assign(self, file: str, line: int, key: str, value: str) -> None:
        node = self.current
        if value.startswith("<"):
            self.assign_file(file, line, node, key, value[1:].lstrip(WHITESPACE))
            return
        if value[:1] in ("\"", "'"):
            # quoted: no variables; without its closing quote the value is kept as written
            text = unescape(value[1:-1]) if value[-1] == value[0] else value
            self.store(node, key, Setting(text, file, line, text))
            return
        raw = self.expand_words(file, line, node, key, value, runtime=False)
        expanded = self.expand_words(file, line, node, key, value, runtime=True) \
            if self.expand and "$" in value else raw
        self.store(node, key, Setting(expanded, file, line, raw))

    def assign_file(self, file: str, line: int, node: _Node, key: str, target: str) -> None:
        path = os.path.normpath(os.path.join(os.path.dirname(file), target))
        content = "<" + target
        if self.expand:
            try:
                content = decode(read_limited(path))
                self.files.append(path)
            except OSError as exc:
                self.diags.fatal(file, line, f"{key}: Can't open file {shown_path(path)}: "
                                 f"{exc.strerror or exc}")
        self.store(node, key, Setting(content, file, line, "<" + target, path))

    def store(self, node: _Node, key: str, setting: Setting) -> None:
        if key == "listen" and node.type in FILTER_TYPES:
            self.obsolete_filter_listen(node, setting)
            return
        self.check_type(node, key, setting)
        if node.type in FILTER_TYPES:
            self.filter_keys.setdefault(key, (setting.file, setting.line))
        elif node is self.root and key in self.filter_keys:
            where = self.filter_keys[key]
            self.diags.warning(setting.file, setting.line,
                               f"Global setting {key} won't change the setting inside an "
                               f"earlier filter at {where[0]} line {where[1]} (if this is "
                               f"intentional, avoid this warning by moving the global setting "
                               f"before {where[0]} line {where[1]})")
        node.settings[key] = setting

    def check_type(self, node: _Node, key: str, setting: Setting) -> None:
        """Like Dovecot, every assignment must hold a valid value, even one overridden later."""
        spec = dovecot_table.spec("global" if node.is_scope() else node.type, key)
        if spec is None or (setting.path is not None and not self.expand):
            return
        _value, error = dovecot_table.parse_value(spec.scope, key, spec.kind, setting.value)
        if error is not None:
            self.diags.fatal(setting.file, setting.line, error)

    def obsolete_filter_listen(self, node: _Node, setting: Setting) -> None:
        """Dovecot 2.x turns `protocol imap { listen = X }` into the imap listener's address
        (and ignores it in other filters)."""
        self.diags.warning(setting.file, setting.line, "Obsolete setting: protocol { listen } "
                           "has been replaced by service { inet_listener { address } }")
        # Dovecot maps "!pop3" to imap and "!imap" to pop3 here
        protocol = {"imap": "imap", "!pop3": "imap", "pop3": "pop3", "!imap": "pop3"}.get(
            node.name) if node.type == "protocol" and node.parent is self.root else None
        if protocol is None:
            return
        where = (setting.file, setting.line)
        service = self.child(self.root, "service", f"{protocol}-login", *where)
        listener = self.child(service, "inet_listener", protocol, *where)
        listener.settings["address"] = setting

    @staticmethod
    def child(parent: _Node, type_: str, name: str, file: str, line: int) -> _Node:
        """The child section `type_ name` of `parent`, created at file:line if new."""
        node = next((c for c in parent.children if c.type == type_ and c.name == name), None)
        if node is None:
            node = _Node(type_, name, file, line, parent)
            parent.children.append(node)
        return node

    def expand_words(self, file: str, line: int, node: _Node, key: str, value: str,
                     runtime: bool) -> str:
        if "$" not in value:
            return value
        # Dovecot splits a value holding `$` at spaces (blanks after a space are skipped)
        # and joins the words with one space.
        words = [word.lstrip(WHITESPACE) for word in value.split(" ")]
        words = [word for word in words if word]
        for index, word in enumerate(words):
            if not word.startswith("$"):
                continue
            name = word[1:]
            if name != key and not runtime:
                continue
            found = self.lookup(node, name, key, runtime)
            if found is not None:
                words[index] = found
            elif not runtime or name != key:  # a self reference was reported by the raw pass
                self.diags.fatal(file, line, f"Unknown variable: {excerpt(word)}")
        return " ".join(words)

    def lookup(self, node: _Node, name: str, key: str, runtime: bool) -> str | None:
        """The current value of setting `name` as seen from `node`, or None if unknown."""
        if name == key and not node.is_scope():
            return None  # Dovecot has no previous value for a section's own settings
        scope: _Node | None = node
        while scope is not None and not scope.is_scope():
            scope = scope.parent
        while scope is not None:
            found = scope.settings.get(name)
            if found is not None:
                return found.value if runtime else found.raw
            scope = scope.parent
        spec = dovecot_table.spec("global", name)
        if spec is not None:
            return spec.default
        return "" if name == key else None

    def freeze(self) -> Section:
        """Frozen Sections, built children-first without recursion (nesting is bounded, but
        an explicit stack keeps this independent of the recursion limit)."""
        frozen: dict[int, Section] = {}
        order: list[_Node] = []
        todo = [self.root]
        while todo:
            node = todo.pop()
            order.append(node)
            todo.extend(node.children)
        for node in reversed(order):
            children = tuple(frozen.pop(id(child)) for child in node.children)
            frozen[id(node)] = Section(node.type, node.name, dict(node.settings), children,
                                       node.file, node.line)
        return frozen[id(self.root)]


def describe(node: _Node | Section) -> str:
    if not node.name:
        return node.type
    name = f'"{node.name}"' if any(c in node.name for c in WHITESPACE) else node.name
    return f"{node.type} {name}"
