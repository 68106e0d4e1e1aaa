"""The list of parameters roost acts on stays honest: each is really read by code."""

from __future__ import annotations

import re
from pathlib import Path

from roost.config.params import IMPLEMENTED, PARAMS, POSTFIX_PARAMETER_NAMES

ROOST = Path(__file__).resolve().parents[2] / "roost"
# The configuration machinery itself (defaults, expansion) does not count as acting on a name.
MACHINERY = {"params.py", "settings.py", "expand.py", "main_cf.py", "netinfo.py"}
# Acted on by the configuration machinery by design: they shape every other value.
SHAPES_OTHER_VALUES = {"config_directory", "compatibility_level", "mydomain",
                       "mynetworks_style",  # the computed default of mynetworks
                       "reject_tempfail_action"}  # the $default of unknown_*_tempfail_action


def names_read_by_code() -> set[str]:
    """Names passed to a Settings getter, or written as a string literal (tables of names
    that code walks, `build("mydestination")`), in code outside the config machinery."""
    getter = re.compile(r"""\.(?:get|bool|int|time|size|list|raw)\(\s*["']([A-Za-z0-9_]+)["']""")
    literal = re.compile(r"""["']([a-z0-9_]*[A-Za-z0-9_]+)["']""")
    found = set()
    for path in ROOST.rglob("*.py"):
        if path.name in MACHINERY and path.parent.name == "config":
            continue
        text = path.read_text()
        found.update(getter.findall(text))
        found.update(name for name in literal.findall(text) if "_" in name)
    return found


def test_every_implemented_parameter_is_a_postfix_parameter():
    assert IMPLEMENTED <= POSTFIX_PARAMETER_NAMES
    assert IMPLEMENTED - {"default_database_type"} <= set(PARAMS)


def test_every_implemented_parameter_is_read_by_code_that_acts_on_it():
    unread = IMPLEMENTED - SHAPES_OTHER_VALUES - names_read_by_code()
    assert not unread, f"listed as implemented but read nowhere: {sorted(unread)}"
