"""`roost install-links BINDIR`: the Postfix/Dovecot command names as links to roost, run
through those links (multi-call dispatch on argv[0])."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from roost.cli import install_links
from roost.cli.dispatch import MULTICALL
from tests.conftest import require_tool, run_roost

LINK_NAMES = ["sendmail", "mailq", "newaliases", "postqueue", "postsuper", "postcat", "postmap",
              "postalias", "postconf", "doveadm", "doveconf"]


def install(bindir, *args: str) -> subprocess.CompletedProcess:
    return run_roost("install-links", str(bindir), *args)


def module_exists(command: str) -> bool:
    return importlib.util.find_spec(f"roost.cli.{MULTICALL[command]}") is not None


def run_link(path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))


def test_links_every_tool_name_to_the_roost_console_script(tmp_path):
    result = install(tmp_path)
    assert result.returncode == 0, result.stderr
    target = install_links.console_script()
    assert target == os.path.join(os.path.dirname(sys.executable), "roost")
    assert sorted(os.listdir(tmp_path)) == sorted(LINK_NAMES)
    for name in LINK_NAMES:
        assert os.readlink(tmp_path / name) == target, name
        assert f"{tmp_path / name} -> {target}" in result.stdout


def test_the_link_table_is_the_dispatch_table():
    assert sorted(install_links.LINK_NAMES) == sorted(LINK_NAMES) == sorted(MULTICALL)


def assert_postconf_link_works(link, env: dict | None = None) -> None:
    """`postconf -d mail_name` through the link answers as the real postconf (or, before
    roost has a postconf, dispatch names the missing command)."""
    result = subprocess.run([str(link), "-d", "mail_name"], capture_output=True, text=True,
                            timeout=60, cwd="/", env=env, stdin=subprocess.DEVNULL)
    if module_exists("postconf"):
        real = subprocess.run([require_tool("postconf"), "-d", "mail_name"], capture_output=True,
                              text=True, timeout=60)
        assert (result.returncode, result.stdout) == (0, real.stdout)
    else:
        assert result.returncode == 1
        assert result.stderr == "postconf: fatal: this command is not part of this roost version yet\n"


def test_postconf_through_its_link(tmp_path):
    assert install(tmp_path).returncode == 0
    assert_postconf_link_works(tmp_path / "postconf")


def test_every_link_reaches_its_own_command(tmp_path):
    """A link runs roost as that command: a missing module is named by the link's name, a
    present one answers its own usage error (never roost's usage)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    assert install(bindir).returncode == 0
    # No configuration anywhere: a tool that exists fails on that, having been reached.
    env = {"MAIL_CONFIG": str(tmp_path / "no-such-config")}
    for name in LINK_NAMES:
        result = run_link(bindir / name, env=env)
        missing = f"{name}: fatal: this command is not part of this roost version yet\n"
        if module_exists(name):
            assert result.stderr != missing, name
            assert "usage: roost" not in result.stderr + result.stdout, name
        else:
            assert (result.returncode, result.stderr) == (1, missing), name


def test_doveconf_through_its_link_reads_mail_config(tmp_path):
    bindir, config = tmp_path / "bin", tmp_path / "etc"
    bindir.mkdir()
    assert install(bindir).returncode == 0
    assert run_roost("init", str(config), "--port-base", "5000").returncode == 0
    result = run_link(bindir / "doveconf", "-c", str(config / "dovecot.conf"), "-h", "listen")
    if module_exists("doveconf"):
        assert (result.returncode, result.stdout) == (0, "127.0.0.1\n"), result.stderr
    else:
        assert "doveconf: fatal: this command is not part of this roost version yet" in result.stderr


def test_running_again_is_harmless(tmp_path):
    assert install(tmp_path).returncode == 0
    before = {name: os.readlink(tmp_path / name) for name in LINK_NAMES}
    again = install(tmp_path)
    assert again.returncode == 0, again.stderr
    assert {name: os.readlink(tmp_path / name) for name in LINK_NAMES} == before


def test_a_link_to_another_roost_is_replaced(tmp_path):
    other = tmp_path / "old-venv/bin/roost"
    other.parent.mkdir(parents=True)
    other.write_text("#!/bin/sh\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(other, bindir / "postconf")
    assert install(bindir).returncode == 0
    assert os.readlink(bindir / "postconf") == install_links.console_script()


def test_refuses_to_replace_a_foreign_file_and_changes_nothing(tmp_path):
    (tmp_path / "sendmail").write_text("#!/bin/sh\necho real sendmail\n")
    os.symlink("/usr/sbin/postfix", tmp_path / "postsuper")
    result = install(tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'sendmail'} exists and is not a roost link" in result.stderr
    assert f"{tmp_path / 'postsuper'} exists and is not a roost link" in result.stderr
    assert "nothing was changed" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["postsuper", "sendmail"]
    assert (tmp_path / "sendmail").read_text() == "#!/bin/sh\necho real sendmail\n"

    forced = install(tmp_path, "--force")
    assert forced.returncode == 0, forced.stderr
    assert os.readlink(tmp_path / "sendmail") == install_links.console_script()
    assert os.readlink(tmp_path / "postsuper") == install_links.console_script()


def test_never_replaces_a_directory(tmp_path):
    (tmp_path / "mailq").mkdir()
    result = install(tmp_path, "--force")
    assert result.returncode == 1 and f"{tmp_path / 'mailq'} is a directory" in result.stderr
    assert os.listdir(tmp_path) == ["mailq"]


def test_missing_bindir_is_an_error(tmp_path):
    result = install(tmp_path / "nope")
    assert result.returncode == 1 and "is not a directory" in result.stderr


def test_without_a_console_script_a_wrapper_is_installed(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(install_links, "console_script", lambda: None)
    assert install_links.run("install-links", "/etc/roost", [str(tmp_path)], 0) == 0
    wrapper = tmp_path / "roost"
    assert os.access(wrapper, os.X_OK) and not wrapper.is_symlink()
    for name in LINK_NAMES:
        assert os.readlink(tmp_path / name) == str(wrapper)
    assert install_links.belongs_to_roost(wrapper)
    # The wrapper runs this source tree's roost even from elsewhere and without PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    assert_postconf_link_works(tmp_path / "postconf", env)
    roost_help = subprocess.run([str(wrapper), "--help"], capture_output=True, text=True,
                                cwd="/", env=env, timeout=60)
    assert roost_help.returncode == 0 and "install-links" in roost_help.stdout
    # A second run recognises its own wrapper and links.
    assert install_links.run("install-links", "/etc/roost", [str(tmp_path)], 0) == 0


@pytest.mark.parametrize("args", [[], ["--bogus", "x"]])
def test_usage_errors(args):
    result = run_roost("install-links", *args)
    assert result.returncode == 2 and "usage: roost install-links" in result.stderr
