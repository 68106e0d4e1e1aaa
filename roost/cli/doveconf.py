"""`doveconf`: show the dovecot.conf configuration the way Dovecot 2.3's doveconf(1) does.

Usage: doveconf [-adhNnPsx] [-c FILE] [-f name=value]... [setting_name|section_name...]
- `-n` non-default settings, `-N` also explicitly set defaults, `-a` every setting (Dovecot's
  built-in service blocks are not listed), `-h` values only, `-d` defaults, `-P` show hidden
  values (ssl_key...), `-s` with -a also hidden settings, `-x` expand `$variables` and
  show `<file` contents,
  `-f protocol=imap` (also service=, local=, remote=, lname=): setting names are looked up
  through the filters as doveconf does; `-f` with -n keeps doveconf's layout but not its
  quirks for sections (documented gap).
- The output format is doveconf's: settings and sections sorted as doveconf sorts its keys,
  typed values normalized (`90s` -> `90 secs`), filters last, less specific first.
- The file is `-c FILE`, else main.cf's dovecot_config_file in $MAIL_CONFIG (default
  /etc/roost), else $MAIL_CONFIG/dovecot.conf.

Invariants: configuration problems go to stderr as `doveconf: fatal: FILE, line N: ...`; a
fatal one exits 89 (doveconf's exit code) without printing settings.
Security: hidden settings (keys, passwords) print as `# hidden, use -P to show it` unless -P.
"""

from __future__ import annotations

import getopt
import os
import platform
import socket
import sys
from dataclasses import dataclass, field

from roost import __version__
from roost.config import dovecot_table
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import FILTER_TYPES, DovecotConfig, Section, parse_dovecot_conf
from roost.config.dovecot_check import check_dovecot_config
from roost.config.dovecot_listeners import BUILTIN_LISTENERS
from roost.config.dovecot_settings import (FILTER_RANK, DovecotSettings, FilterSpec, address_in,
                                           dovecot_settings, flatten_filters, scope_of)

EXIT_FATAL = 89  # Dovecot's FATAL_DEFAULT
DEFAULT_CONFIG_DIR = "/etc/roost"
EXPLICIT_SCOPES = ("service", "inet_listener", "unix_listener", "fifo_listener", "namespace",
                   "mailbox")
FILTER_ARGS = {"protocol": "protocol", "service": "protocol", "local": "local",
               "remote": "remote", "lname": "local_name"}
USAGE = ("Usage: doveconf [-adhNnPsx] [-c <config file>] [-f <filter>] "
         "[setting|section ...]")


@dataclass
class Options:
    mode: str = ""  # "" (names or everything), "n", "N" or "a"
    hide_names: bool = False  # -h
    defaults: bool = False  # -d
    show_hidden: bool = False  # -P: values of ssl_key and other secrets
    expand: bool = False  # -x
    show_hidden_settings: bool = False  # -s
    config_file: str = ""
    filters: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)


def main(argv: list[str]) -> int:
    prog = os.path.basename(argv[0]) if argv else "doveconf"
    try:
        options = parse_options(argv[1:])
    except (getopt.GetoptError, ValueError) as exc:
        print(f"{prog}: Fatal: {exc}", file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return EXIT_FATAL
    path = options.config_file or default_config_file()
    diags = Diagnostics()
    config = parse_dovecot_conf(path, diags, expand=options.expand, check=False)
    check_dovecot_config(config, diags, server=False)
    for item in diags.items:
        print(f"{prog}: {item}", file=sys.stderr)
    if diags.has_fatal():
        return EXIT_FATAL
    text = "".join(line + "\n" for line in render(config, options, path))
    if hasattr(sys.stdout, "buffer"):  # bytes of the file go out as they came in
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
    else:
        sys.stdout.write(text)
    sys.stdout.flush()
    return 0


def parse_options(args: list[str]) -> Options:
    options = Options()
    opts, names = getopt.getopt(args, "ac:df:hm:nNPsSx")
    for flag, value in opts:
        if flag in ("-a", "-n", "-N"):
            options.mode = flag[1]
        elif flag == "-c":
            options.config_file = value
        elif flag == "-d":
            options.defaults = True
        elif flag == "-f":
            name, sep, wanted = value.partition("=")
            if not sep or name not in FILTER_ARGS:
                raise ValueError(f"Unknown filter argument: {value}")
            options.filters[FILTER_ARGS[name]] = wanted
        elif flag == "-h":
            options.hide_names = True
        elif flag == "-P":
            options.show_hidden = True
        elif flag == "-x":
            options.expand = True
        elif flag == "-s":
            options.show_hidden_settings = True
        else:
            raise ValueError(f"option {flag} is not supported by roost")
    options.names = names
    return options


def default_config_file() -> str:
    config_dir = os.environ.get("MAIL_CONFIG") or DEFAULT_CONFIG_DIR
    try:  # main.cf's dovecot_config_file, when the main.cf reader is available
        from roost.config.main_cf import parse_main_cf
        from roost.config.settings import Settings

        main_cf = os.path.join(config_dir, "main.cf")
        if os.path.exists(main_cf):
            diags = Diagnostics()
            settings = Settings.from_main_cf(parse_main_cf(main_cf, diags), config_dir, diags)
            path = settings.get("dovecot_config_file")
            if path:
                return path
    except (ImportError, AttributeError, KeyError):
        pass
    return os.path.join(config_dir, "dovecot.conf")


# --- rendering -------------------------------------------------------------------------------

def render(config: DovecotConfig, options: Options, path: str) -> list[str]:
    if options.names:
        return render_names(config, options)
    lines: list[str] = []
    if options.mode:
        lines += header(path, options.mode == "a")
    if options.mode == "a":
        lines += render_all(config, options)
    else:
        lines += render_changed(config, options)
    return lines


def header(path: str, all_settings: bool) -> list[str]:
    uname = platform.uname()
    lines = [f"# roost {__version__} (Dovecot 2.3 configuration): {path}",
             f"# OS: {uname.system} {uname.release} {uname.machine} ",
             f"# Hostname: {socket.gethostname()}"]
    if all_settings:
        lines.append("# NOTE: Send doveconf -n output instead when asking for help.")
    return lines


def quote_value(value: str) -> str:
    if "#" in value or value[:1] in (" ", "\t") or value[-1:] in (" ", "\t"):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
        return f'"{escaped}"'
    return value


def shown_value(scope: str, key: str, text: str, from_file: bool, options: Options,
                quote: bool = True) -> str:
    """The value as doveconf prints it; setting-name lookups print it unquoted."""
    spec = dovecot_table.spec(scope, key)
    if spec is not None:
        if spec.kind == "str_hidden" and text and not options.show_hidden:
            return dovecot_table.HIDDEN_TEXT
        if not from_file or options.expand:
            text = dovecot_table.normalize(scope, key, text)
    return quote_value(text) if quote else text


def section_title(section_type: str, name: str) -> str:
    if not name:
        return section_type
    return f'{section_type} "{name}"' if " " in name else f"{section_type} {name}"


def sort_key_of_section(section: Section) -> str:
    if section.type in ("passdb", "userdb") and not section.name:
        return section.type + "/"
    escaped = (section.name.replace("\\", "\\\\").replace("/", "\\|").replace(" ", "\\_")
               .replace("=", "\\e"))
    return f"{section.type}/{escaped}/"


def section_items(section: Section, options: Options, in_filter: bool,
                  with_defaults: bool = False) -> list[tuple[str, list[str]]]:
    """(sort key, lines) for the settings and non-filter subsections of `section`."""
    scope = scope_of(section.type)
    items: list[tuple[str, list[str]]] = []
    values = {key: (s.value if options.expand else s.raw, s.path is not None)
              for key, s in section.settings.items()}
    if with_defaults and scope in dovecot_table.SCOPES and scope != "global":
        for name in dovecot_table.names(scope):
            spec = dovecot_table.spec(scope, name)
            if options.show_hidden_settings or not spec.hidden:
                values.setdefault(name, (spec.default, False))
    if section.type == "namespace" and options.mode != "a":
        for always in ("location", "prefix"):
            values.setdefault(always, ("", False))
    if section.type in ("passdb", "userdb") and (in_filter or options.mode == "N"):
        values.setdefault("name", ("", False))  # doveconf shows it for filter-local dbs
    for key, (text, from_file) in values.items():
        if not wanted(scope, key, text, from_file, options, in_filter, with_defaults):
            continue
        items.append((key, [f"{key} = {shown_value(scope, key, text, from_file, options)}"]))
    for child in section.children:
        if child.type in FILTER_TYPES:
            continue
        inner = section_items(child, options, in_filter, with_defaults)
        if inner:
            items.append((sort_key_of_section(child), wrap(section_title(child.type, child.name),
                                                           inner)))
    items.sort(key=lambda item: item[0])
    return items


def wanted(scope: str, key: str, text: str, from_file: bool, options: Options,
           in_filter: bool, with_defaults: bool) -> bool:
    if with_defaults or in_filter or options.mode == "N" or scope in EXPLICIT_SCOPES:
        return True
    spec = dovecot_table.spec(scope, key)
    if spec is None or (from_file and not options.expand):
        return True
    return (dovecot_table.normalize(scope, key, text)
            != dovecot_table.normalize(scope, key, spec.default))


def wrap(title: str, items: list[tuple[str, list[str]]]) -> list[str]:
    return [f"{title} {{", *("  " + line for _key, lines in items for line in lines), "}"]


def filter_compatible(spec: FilterSpec, filters: dict[str, str]) -> bool:
    for condition in ("protocol", "local", "remote", "local_name"):
        wanted_value = filters.get(condition)
        have = getattr(spec, condition)
        if wanted_value is None or have is None:
            continue
        if condition == "protocol":
            negated = have.startswith("!")
            if (have.lstrip("!") == wanted_value) == negated:
                return False
        elif condition in ("local", "remote"):
            if not address_in(wanted_value, have):
                return False
        elif have != wanted_value:
            return False
    return True


def render_filters(config: DovecotConfig, options: Options) -> list[str]:
    lines: list[str] = []
    for spec in flatten_filters(config.root):
        if options.filters and not filter_compatible(spec, options.filters):
            continue
        items = section_items(spec.section, options, in_filter=True)
        if not items:
            continue
        conditions = sorted(((FILTER_RANK[f], f, getattr(spec, f)) for f in FILTER_RANK
                             if getattr(spec, f) is not None))
        body = [line for _key, item_lines in items for line in item_lines]
        for _rank, kind, name in reversed(conditions):
            body = wrap(f"{kind} {name}", [("", body)])
        lines += body
    return lines


def global_section(config: DovecotConfig, options: Options) -> Section:
    if not options.filters:
        return config.root
    view = filtered_view(config, options)
    root = config.root
    return Section(root.type, root.name, view.values, root.children, root.file, root.line)


def filtered_view(config: DovecotConfig, options: Options) -> DovecotSettings:
    filters = options.filters
    return dovecot_settings(config, protocol=filters.get("protocol", ""),
                            local=filters.get("local"), remote=filters.get("remote"),
                            local_name=filters.get("local_name"))


def render_changed(config: DovecotConfig, options: Options) -> list[str]:
    root = global_section(config, options)
    items = section_items(root, options, in_filter=False)
    return [line for _key, lines in items for line in lines] + render_filters(config, options)


def render_all(config: DovecotConfig, options: Options) -> list[str]:
    root = global_section(config, options)
    items = section_items(root, options, in_filter=False, with_defaults=True)
    present = {key for key, _lines in items}
    for name in dovecot_table.names("global"):
        spec = dovecot_table.spec("global", name)
        if name not in present and (options.show_hidden_settings or not spec.hidden):
            shown = shown_value("global", name, spec.default, False, options)
            items.append((name, [f"{name} = {shown}"]))
    items.sort(key=lambda item: item[0])
    return [line for _key, lines in items for line in lines] + render_filters(config, options)


def render_names(config: DovecotConfig, options: Options) -> list[str]:
    view = filtered_view(config, options)
    lines: list[str] = []
    for name in options.names:
        if "/" not in name and dovecot_table.spec("global", name) is None:
            lines += render_section_named(config, name, options)
            continue
        found = lookup_path(config, view, name, options)
        if found is None:
            print(f"doveconf: Warning: unknown setting: {name}", file=sys.stderr)
            continue
        scope, key, text, from_file, explicit = found
        if options.mode in ("n", "N") and not explicit:
            continue
        if options.mode == "n" and not wanted(scope, key, text, from_file, options, False, False):
            continue
        shown_options = Options(expand=options.expand, show_hidden=True)  # as doveconf does
        value = shown_value(scope, key, text, from_file, shown_options, quote=False)
        lines.append(value if options.hide_names else f"{name} = {value}")
    return lines


def render_section_named(config: DovecotConfig, name: str, options: Options) -> list[str]:
    lines: list[str] = []
    for section in config.root.children:
        if section.type == name:
            items = section_items(section, options, in_filter=False,
                                  with_defaults=options.mode not in ("n", "N"))
            if items:
                lines += wrap(section_title(section.type, section.name), items)
    if not lines and not any(s.type == name for s in config.root.children):
        print(f"doveconf: Warning: unknown setting: {name}", file=sys.stderr)
    return lines


def lookup_path(config: DovecotConfig, view: DovecotSettings, name: str, options: Options):
    """(scope, key, text, from_file, explicit) for `name` or `service/imap/executable`."""
    if options.defaults:
        parts = name.split("/")
        scope = "global" if len(parts) == 1 else parts[-3] if len(parts) >= 3 else parts[0]
        spec = dovecot_table.spec(scope_of(scope), parts[-1])
        return None if spec is None else (spec.scope, parts[-1], spec.default, False, False)
    if "/" not in name:
        setting = view.setting(name)
        if setting is None:
            return "global", name, view.raw(name), False, False
        text = setting.value if options.expand else setting.raw
        return "global", name, text, setting.path is not None, True
    parts = name.split("/")
    key, path = parts[-1], parts[:-1]
    section: Section | None = config.root
    scope, index = "global", 0
    while index < len(path):
        kind = path[index]
        if kind in ("plugin", "dict"):
            section_name, index = "", index + 1
        elif index + 1 < len(path):
            section_name, index = path[index + 1], index + 2
        else:
            return None
        section = pick_section(section, kind, section_name)
        if section is None:
            return builtin_listener_value(parts)
        scope = scope_of(kind)
    setting = section.settings.get(key) if section else None
    if setting is not None:
        text = setting.value if options.expand else setting.raw
        return scope, key, text, setting.path is not None, True
    builtin = builtin_listener_value(parts)
    if builtin is not None:
        return builtin
    spec = dovecot_table.spec(scope, key)
    return None if spec is None else (scope, key, spec.default, False, False)


def pick_section(parent: Section | None, kind: str, name: str) -> Section | None:
    if parent is None:
        return None
    if kind in ("passdb", "userdb") and name.isdigit():
        found = parent.sections(kind)
        return found[int(name)] if int(name) < len(found) else None
    return parent.section(kind, name)


def builtin_listener_value(parts: list[str]):
    """service/imap-login/inet_listener/imaps/port etc. from Dovecot's built-in services."""
    if len(parts) != 5 or parts[0] != "service":
        return None
    _service, service, listener_type, listener, key = parts
    for kind, name, port, ssl, mode in BUILTIN_LISTENERS.get(service, ()):
        if f"{kind}_listener" == listener_type and name == listener:
            value = {"port": str(port), "ssl": "yes" if ssl else "no",
                     "mode": f"0{mode:o}"}.get(key)
            if value is not None:
                return listener_type, key, value, False, False
    return None
