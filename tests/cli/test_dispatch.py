"""Multi-call dispatch (roost/cli/dispatch.py) and `roost COMMAND` routing (roost_main.py):
argv[0] picks a tool from a fixed table; anything else is the `roost` command."""

from __future__ import annotations

import os
import sys
import types

import pytest

from roost.cli import dispatch, roost_main
from tests.conftest import run_roost


@pytest.fixture
def fake_tool(monkeypatch):
    """Replace roost.cli.postconf with a module recording its argv and MAIL_CONFIG."""
    calls = []

    def main(argv):
        calls.append((list(argv), os.environ.get("MAIL_CONFIG")))
        return 3

    monkeypatch.setitem(sys.modules, "roost.cli.postconf", types.SimpleNamespace(main=main))
    monkeypatch.delenv("MAIL_CONFIG", raising=False)
    return calls


def test_argv0_basename_selects_the_tool(fake_tool):
    assert dispatch.main(["/usr/local/sbin/postconf", "-n", "x"]) == 3
    assert fake_tool == [(["postconf", "-n", "x"], None)]


def test_roost_subcommand_runs_the_same_tool_with_mail_config(fake_tool, tmp_path):
    assert dispatch.main(["roost", "-c", str(tmp_path), "postconf", "-d"]) == 3
    assert fake_tool == [(["postconf", "-d"], str(tmp_path))]


def test_other_names_are_the_roost_command(monkeypatch):
    seen = []
    monkeypatch.setattr(roost_main, "main", lambda argv: seen.append(argv) or 0)
    for argv0 in ("roost", "/venv/bin/roost", "python", "postconf.py", "Postconf"):
        assert dispatch.main([argv0, "status"]) == 0
    assert seen == [["status"]] * 5


def test_a_missing_tool_module_is_named_by_its_command(capsys, monkeypatch):
    monkeypatch.setitem(dispatch.MULTICALL, "frobnicate", "no_such_tool_module")
    assert dispatch.main(["/bin/frobnicate", "-x"]) == 1
    assert capsys.readouterr().err == (
        "frobnicate: fatal: this command is not part of this roost version yet\n")


def test_a_tool_whose_own_import_fails_is_not_reported_as_missing(monkeypatch):
    def failing_import(name):
        raise ModuleNotFoundError("No module named 'dependency'", name="dependency")

    monkeypatch.setattr(dispatch.importlib, "import_module", failing_import)
    with pytest.raises(ModuleNotFoundError):
        dispatch.run_module("postconf", ["postconf"])


def test_a_tool_returning_none_exits_zero(monkeypatch):
    monkeypatch.setitem(sys.modules, "roost.cli.postconf", types.SimpleNamespace(main=lambda argv: None))
    assert dispatch.run_module("postconf", ["postconf"]) == 0


def test_the_multicall_table_names_modules_not_paths():
    for name, module in dispatch.MULTICALL.items():
        assert module.isidentifier(), name
        assert "/" not in name and "." not in name


def test_roost_command_usage_lists_init_and_install_links():
    result = run_roost("--help")
    assert result.returncode == 0
    assert "init" in result.stdout and "install-links" in result.stdout
    unknown = run_roost("frobnicate")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_roost_commands_receive_the_config_directory(monkeypatch, tmp_path):
    seen = []
    fake = types.SimpleNamespace(run=lambda command, config_dir, args, verbose:
                                 seen.append((command, config_dir, args, verbose)) or 0)
    monkeypatch.setitem(sys.modules, "roost.cli.init", fake)
    monkeypatch.setenv("MAIL_CONFIG", str(tmp_path / "env"))
    assert roost_main.main(["init", "x", "--force"]) == 0
    assert roost_main.main(["-v", "-c", str(tmp_path / "opt"), "init"]) == 0
    assert seen == [("init", str(tmp_path / "env"), ["x", "--force"], 0),
                    ("init", str(tmp_path / "opt"), [], 1)]
