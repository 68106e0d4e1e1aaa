"""`roost postconf`: Postfix's postconf(1) for roost's main.cf and master.cf.

Modes, as Postfix 3.7 behaves (observed from Debian's postconf and documented in postconf(1)):
  postconf [-c dir] [-d | -n] [-h | -H] [-x] [-f] [name ...]   show parameters (-f folds)
  postconf [-c dir] -e 'name = value' ...                 edit main.cf in place
  postconf [-c dir] -# name ...                            comment out parameters
  postconf [-c dir] -M[f] [service[/type] ...]             show master.cf entries
Output is `name = value` (value whitespace squeezed to single spaces, `name =` when empty),
sorted by name when no names are given. `-n` shows main.cf parameters that are in use (known
to Postfix or roost, made by a master.cf service, or referred to as `$name` from main.cf or a
master.cf `-o` value), plus `config_directory` when it came from -c or MAIL_CONFIG; the other
main.cf names are reported as "unused parameter". Every main.cf value of a built-in parameter
is expanded at start, so a loop or bad syntax there is fatal in every mode but -d, -e and -#.
Warnings go to stderr as `postconf: warning: ...` (roost adds the line number); a fatal error
prints `postconf: fatal: ...`, nothing on stdout, and exits 1.
Known differences: `mail_version` is roost's version, `-d config_directory` is /etc/roost,
roost-only parameters (dovecot_config_file) are listed, several new names given to one `-e`
are appended in the order given (Postfix's order varies from run to run), and table-specific
parameters of ldap:/mysql:/pgsql:/sqlite:/memcache: names are not recognised.

Security: -e/-# write only DIR/main.cf, through a temporary file renamed over it.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

from roost.config.diagnostics import Diagnostics, Severity
from roost.config.expand import scan_references
from roost.config.main_cf import (Assignment, MainCf, comment_out_text, decode, edit_text,
                                  encode, parse_edit_request, parse_main_cf)
from roost.config.params import (LEGACY_REFERENCES, RAW_PARAMETERS, ROOST_DEFAULT_CONFIG_DIRECTORY, builtin_default,
                                 builtin_names, is_builtin, service_parameters)
from roost.config.settings import Settings, SettingsError

PROG = "postconf"
SUPPORTED_FLAGS = "dfhHMnx#e"
ALL_FLAGS = "aAbdeEfFhHlmMnpPtvxX#"
VALUE_FLAGS = "cCoT"
USAGE = ("usage: postconf [-c config_dir] [-d (parameter defaults)] [-e (edit configuration)] "
         "[-f (fold lines)] [-h (no names)] [-H (no values)] [-M (master.cf)] "
         "[-n (non-default parameters)] [-x (expand parameter values)] [-# (comment-out)] "
         "[name...]")
WHITESPACE = re.compile(r"[ \t\n\v\f\r]+")


class Fatal(Exception):
    """Stop with `postconf: fatal: MESSAGE` and exit status 1."""


def squeeze(value: str) -> str:
    return " ".join(part for part in WHITESPACE.split(value) if part)


FOLD_LIMIT = 80
FOLD_INDENT = "    "


def fold(line: str) -> str:
    """`postconf -f`: break a long line between words; continuation lines are indented.
    Widths count bytes, as Postfix does (a UTF-8 character may be three columns here)."""
    words = line.split(" ")
    lines = [words[0]]
    width = _byte_length(words[0])
    for word in words[1:]:
        size = _byte_length(word)
        if width + 1 + size <= FOLD_LIMIT:
            lines[-1] += " " + word
            width += 1 + size
        else:
            lines.append(FOLD_INDENT + word)
            width = len(FOLD_INDENT) + size
    return "\n".join(lines)


def _byte_length(text: str) -> int:
    return len(encode(text))


def format_line(name: str, value: str, no_name: bool, no_value: bool, folded: bool = False) -> str:
    if no_value:
        return name
    shown = squeeze(value)
    line = shown if no_name else (f"{name} = {shown}" if shown else f"{name} =")
    return fold(line) if folded and line else line


def parse_options(args: list[str]) -> tuple[set[str], str | None, list[str]]:
    """getopt(3)-style: flags may be combined (-nx); -c takes a value; operands follow."""
    flags: set[str] = set()
    config_dir = None
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "-":
        if args[index] == "--":
            index += 1
            break
        option = args[index][1:]
        index += 1
        for position, letter in enumerate(option):
            if letter in VALUE_FLAGS:
                value = option[position + 1:]
                if not value:
                    if index >= len(args):
                        raise Fatal(USAGE)
                    value = args[index]
                    index += 1
                if letter != "c":
                    raise Fatal(f"option -{letter} is not supported by roost postconf")
                config_dir = value
                break
            if letter not in ALL_FLAGS:
                raise Fatal(USAGE)
            if letter not in SUPPORTED_FLAGS:
                raise Fatal(f"option -{letter} is not supported by roost postconf")
            flags.add(letter)
    return flags, config_dir, args[index:]


class Postconf:
    """One postconf run: the configuration it reads and the lines it prints."""

    def __init__(self, config_dir: str, explicit_dir: bool):
        self.config_dir = config_dir
        self.explicit_dir = explicit_dir
        # Postfix joins the names as text: "-c dir/" gives "dir//main.cf" in its messages.
        self.main_path = f"{config_dir}/main.cf"
        self.master_path = f"{config_dir}/master.cf"
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(f"{PROG}: warning: {message}")

    # ---------------------------------------------------------------- reading

    def load(self, defaults_only: bool) -> None:
        """Read master.cf and, unless only defaults are wanted (-d), main.cf."""
        diags = Diagnostics()
        if defaults_only:
            self.main_cf = MainCf(self.main_path, (), exists=False)
        else:
            self.main_cf = parse_main_cf(self.main_path, diags)
        self.services = self._load_services()
        self._report(diags)
        self.main = dict(self.main_cf.effective)
        if self.explicit_dir:
            # -c DIR / MAIL_CONFIG set config_directory before main.cf is read.
            first = next((a for a in self.main_cf.assignments if a.name == "config_directory"),
                         None)
            if first is not None:
                self.warn(f"{first.file}, line {first.line}: overriding earlier entry: "
                          f"config_directory={self.config_dir}")
            else:
                self.main["config_directory"] = Assignment("config_directory", self.config_dir,
                                                           self.main_path, 0, 0)
        self.service_params = service_parameters((s.name, s.command) for s in self.services)
        self._find_user_defined()
        self.settings = Settings(self.main, self.config_dir, services=self.services)

    def _load_services(self):
        if not os.path.exists(self.master_path):
            self.warn(f"open {self.master_path}: No such file or directory")
            return ()
        try:
            from roost.config.master_cf import parse_master_cf
        except ImportError:
            return ()
        return parse_master_cf(self.master_path, Diagnostics())

    def _report(self, diags: Diagnostics) -> None:
        for item in diags.items:
            if item.severity is Severity.WARNING:
                self.warnings.append(f"{PROG}: {item}")
        if diags.has_fatal():
            others = [f"{PROG}: {item}" for item in diags.fatals[:-1]]
            self.warnings.extend(others)
            last = diags.fatals[-1]
            raise Fatal(f"{last.where()}: {last.message}")

    def _find_user_defined(self) -> None:
        """Names used as $name in main.cf values or master.cf -o values, and syntax warnings."""
        referenced: set[str] = set(LEGACY_REFERENCES)
        for assignment in self.main_cf.assignments:
            if assignment.name in RAW_PARAMETERS:
                continue
            names, problems = scan_references(assignment.value)
            referenced.update(names)
            for problem in problems:
                self.warn(f"{assignment.file}, line {assignment.line}: {problem}")
        for service in self.services:
            for _, value in service.overrides:
                referenced.update(scan_references(value)[0])
        self.known_builtin = builtin_names() | set(self.service_params)
        self.user_defined = {name for name in self.main if name in referenced
                             and name not in self.known_builtin}
        for assignment in self.main.values():
            if assignment.line and not self.is_known(assignment.name):
                self.warn(f"{assignment.file}, line {assignment.line}: unused parameter: "
                          f"{assignment.name}={assignment.value}")
        for service in self.services:
            for name, value in service.overrides:
                if not self.is_known(name) and name not in referenced:
                    self.warn(f"{service.file}, line {service.line}: unused parameter: "
                              f"{name}={value}")

    def is_known(self, name: str) -> bool:
        return name in self.known_builtin or name in self.user_defined

    def check_values(self) -> None:
        """Expand every built-in main.cf value and work out the default mynetworks, as
        postconf does at start (fatal on error)."""
        if "mynetworks" not in self.main:
            try:
                self.settings.checked("mynetworks", on_undefined=self._undefined)
            except SettingsError as error:
                raise Fatal(str(error)) from None
        for name, assignment in self.main.items():
            if not is_builtin(name) or name in RAW_PARAMETERS:
                continue
            try:
                self.settings.checked(name, on_undefined=self._undefined)
            except SettingsError as error:
                raise Fatal(f"{assignment.file}, line {assignment.line}: "
                            f"cannot expand {name}: {error}") from None
        for service in self.services:
            for name, value in service.overrides:
                try:
                    self.settings.checked_text(value, on_undefined=self._undefined)
                except SettingsError as error:
                    raise Fatal(f"{service.file}, line {service.line}: "
                                f"cannot expand {name}: {error}") from None

    # ---------------------------------------------------------------- showing

    def show(self, flags: set[str], names: list[str]) -> list[str]:
        defaults_only = "d" in flags
        settings = Settings({}, ROOST_DEFAULT_CONFIG_DIRECTORY, services=self.services) \
            if defaults_only else self.settings
        if defaults_only:
            available = self.known_builtin
        elif "n" in flags:
            available = {name for name in self.main if self.is_known(name)}
        else:
            available = self.known_builtin | self.user_defined
        if names:
            selected = []
            for name in names:
                if name in available:
                    selected.append(name)
                elif "n" not in flags or not self.is_known(name):
                    self.warn(f"{name}: unknown parameter")
        else:
            selected = sorted(available)
        lines = []
        for name in selected:
            value = self._value(settings, name, defaults_only, "x" in flags)
            lines.append(format_line(name, value, "h" in flags, "H" in flags, "f" in flags))
        return lines

    def _value(self, settings: Settings, name: str, defaults_only: bool, expand: bool) -> str:
        if expand:
            where = self.main.get(name)
            try:
                return settings.checked(name, on_undefined=self._undefined)
            except SettingsError as error:
                prefix = f"{where.file}, line {where.line}: " if where and where.line else ""
                raise Fatal(f"{prefix}cannot expand {name}: {error}") from None
        if defaults_only:
            default = builtin_default(name)
            if default is None:
                default = self.service_params.get(name, "")
            return settings.raw(name) if default == "@computed" else default
        return settings.raw(name)

    def _undefined(self, name: str) -> None:
        if name in LEGACY_REFERENCES:
            return
        self.warn(f"{self.main_path}: undefined parameter: {name}")

    # ---------------------------------------------------------------- editing

    def edit(self, requests: list[str], comment_out: bool) -> None:
        if comment_out:
            if not requests:
                raise Fatal("-# requires name argument")
            names = [request.strip() for request in requests]
        else:
            if not requests:
                raise Fatal("-e requires name=value argument")
            edits: dict[str, str] = {}
            for request in requests:
                parsed = parse_edit_request(request)
                if parsed is None:
                    raise Fatal(f"missing '=' after attribute name: \"{request}\"")
                name, value = parsed
                if name in edits:
                    self.warn(f"ignoring earlier request: '{name} = {edits[name]}'")
                    del edits[name]
                edits[name] = value
        try:
            with open(self.main_path, "rb") as handle:
                text = decode(handle.read())
            mode = os.stat(self.main_path).st_mode & 0o7777
        except OSError as exc:
            raise Fatal(f"open {self.main_path} for reading: {exc.strerror or exc}") from None
        if comment_out:
            new_text, problems = comment_out_text(text, names)
        else:
            new_text, problems = edit_text(text, list(edits.items()))
        for problem in problems:
            self.warn(f"{self.main_path}: {problem}")
        self._replace(encode(new_text), mode)

    def _replace(self, data: bytes, mode: int) -> None:
        directory = os.path.dirname(os.path.abspath(self.main_path))
        handle, temporary = tempfile.mkstemp(prefix="main.cf.", dir=directory)
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, self.main_path)
        except OSError as exc:
            try:
                os.unlink(temporary)
            except OSError:
                pass
            raise Fatal(f"write {self.main_path}: {exc.strerror or exc}") from None

    # ---------------------------------------------------------------- master.cf

    def show_master(self, flags: set[str], selectors: list[str]) -> list[str]:
        from roost.config.master_cf import render_postconf_M

        output = render_postconf_M(self.services, selectors, "f" in flags)
        if output.fatal:
            raise Fatal(output.fatal)
        for warning in output.warnings:
            self.warn(warning)
        return [output.stdout] if output.stdout else []


def run(argv: list[str], out=None, err=None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    runner: Postconf | None = None
    try:
        flags, option_dir, operands = parse_options(argv[1:])
        env_dir = os.environ.get("MAIL_CONFIG")
        config_dir = option_dir or env_dir or ROOST_DEFAULT_CONFIG_DIRECTORY
        runner = Postconf(config_dir, explicit_dir=bool(option_dir or env_dir))
        if "d" in flags and "n" in flags:
            raise Fatal("specify one of -d -n")
        if "e" in flags or "#" in flags:
            runner.edit(operands, comment_out="#" in flags)
            lines: list[str] = []
        else:
            runner.load(defaults_only="d" in flags)
            if "d" not in flags:
                runner.check_values()
            if "M" in flags:
                lines = runner.show_master(flags, operands)
            else:
                lines = [line + "\n" for line in runner.show(flags, operands)]
    except Fatal as fatal:
        for warning in runner.warnings if runner else ():
            print(warning, file=err)
        print(f"{PROG}: fatal: {fatal}", file=err)
        return 1
    write_text(out, "".join(lines))
    for warning in runner.warnings:
        print(warning, file=err)
    return 0


def write_text(stream, text: str) -> None:
    """Write `text` with the bytes it was read with (non-UTF-8 kept via surrogateescape)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()
        buffer.write(encode(text))
        buffer.flush()
    else:
        stream.write(text)


def main(argv: list[str]) -> int:
    return run(argv)
