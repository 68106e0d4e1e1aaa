"""`doveadm` routing: global options, unknown commands, sub-commands not built yet."""

from __future__ import annotations

import subprocess

import pytest

from roost.cli import doveadm
from tests.conftest import require_tool, run_roost


def test_global_options_before_the_command_are_accepted():
    got = run_roost("doveadm", "-O", "-o", "x=y", "pw", "-s", "PLAIN", "-p", "pw")
    assert (got.returncode, got.stdout) == (0, "{PLAIN}pw\n")


@pytest.mark.interop
@pytest.mark.parametrize("args", [["nosuchcommand"], [], ["-Z", "pw"], ["-c"]])
def test_usage_exit_code_matches_doveadm(args):
    real = subprocess.run([require_tool("doveadm"), *args], capture_output=True, text=True,
                          timeout=60)
    got = run_roost("doveadm", *args)
    assert got.returncode == real.returncode
    assert got.stderr.startswith("usage: doveadm") == real.stderr.startswith("usage: doveadm")


def test_split_global_options():
    assert doveadm.split_global_options(["-c", "/x.conf", "-D", "pw", "-s", "X"]) == (
        {"-c": ["/x.conf"], "-D": [""]}, ["pw", "-s", "X"])
    assert doveadm.split_global_options(["-c"]) == "-c"
    assert doveadm.split_global_options(["-Z"]) == "-Z"
    assert doveadm.find_command(["auth", "test", "u"]) == (("auth", "test"), "doveadm_auth")
    assert doveadm.find_command(["auth"]) is None
