"""Diagnostics: Postfix-style file/line rendering and fatal aggregation."""

import pytest

from roost.config.diagnostics import ConfigError, Diagnostics, excerpt


def test_renders_file_and_line_like_postfix():
    diags = Diagnostics()
    diags.warning("/etc/roost/main.cf", 3, "unused parameter: foo=1")
    diags.fatal("/etc/roost/master.cf", None, "cannot open file")
    assert [str(d) for d in diags.items] == [
        "warning: /etc/roost/main.cf, line 3: unused parameter: foo=1",
        "fatal: /etc/roost/master.cf: cannot open file",
    ]


def test_raise_if_fatal_carries_every_fatal_and_no_warning():
    diags = Diagnostics()
    diags.warning("a", 1, "w")
    diags.raise_if_fatal()  # warnings alone never stop the server
    diags.fatal("a", 2, "x")
    diags.fatal("b", 5, "y")
    with pytest.raises(ConfigError) as err:
        diags.raise_if_fatal()
    assert [d.line for d in err.value.diagnostics] == [2, 5]
    assert "b, line 5: y" in str(err.value)


def test_excerpt_is_bounded_and_printable():
    shown = excerpt("\x00\x1b[31m" + "x" * 500)
    assert len(shown) < 120 and "\x00" not in shown and "\x1b" not in shown
    assert shown.endswith("...")
