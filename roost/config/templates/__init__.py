"""Templates of the configuration files `roost init` writes (main.cf, master.cf, dovecot.conf,
aliases), and their renderer.

A template is the file as an administrator will read it, with `@@{name}` placeholders; `@`
and `$` are otherwise left alone, because `$name` is main.cf's own expansion syntax and `%d`
Dovecot's. Rendering fails loudly (KeyError, ValueError) on a placeholder without a value (a bug in roost, never
user input).
Invariants: the rendered text contains no `@@{`; values are inserted verbatim, so callers
validate them (no newlines, no syntax characters) before rendering.
Security: templates are package data; nothing here reads user files.
"""

from __future__ import annotations

import string
from importlib import resources


class _Template(string.Template):
    delimiter = "@@"


def template_text(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def render(name: str, values: dict[str, str]) -> str:
    """The template file `name` with every `@@{key}` replaced by values[key]."""
    return _Template(template_text(name)).substitute(values)
