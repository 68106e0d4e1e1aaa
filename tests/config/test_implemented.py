"""The list of parameters roost acts on stays honest: each is really read by code."""

from __future__ import annotations

import re
from pathlib import Path

from roost.config.params import IMPLEMENTED, PARAMS, POSTFIX_PARAMETER_NAMES

ROOST = Path(__file__).resolve().parents[2] / "roost"
# The configuration machinery itself (defaults, expansion) does not count as acting on a name.
MACHINERY = {"params.py", "settings.py", "expand.py", "main_cf.py", "netinfo.py"}
# Acted on by the configuration machinery by design: they shape every other value.
SHAPES_OTHER_VALUES = {"config_directory", "compatibility_level", "mydomain"}


def names_read_by_code() -> set[str]:
    getter = re.compile(r"""\.(?:get|bool|int|time|size|list|raw)\(\s*["']([A-Za-z0-9_]+)["']""")
    found = set()
    for path in ROOST.rglob("*.py"):
        if path.name in MACHINERY and path.parent.name == "config":
            continue
        found.update(getter.findall(path.read_text()))
    return found


def test_every_implemented_parameter_is_a_postfix_parameter():
    assert IMPLEMENTED <= POSTFIX_PARAMETER_NAMES
    assert IMPLEMENTED - {"default_database_type"} <= set(PARAMS)


def test_every_implemented_parameter_is_read_by_code_that_acts_on_it():
    unread = IMPLEMENTED - SHAPES_OTHER_VALUES - names_read_by_code()
    assert not unread, f"listed as implemented but read nowhere: {sorted(unread)}"
