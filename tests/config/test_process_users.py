"""default_internal_user/group and default_login_user are held against mail_owner."""

from __future__ import annotations

import grp
import os
import pwd

from roost.config.load import load_config
from tests.conftest import run_roost

ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(pwd.getpwuid(os.getuid()).pw_gid).gr_name


def make(tmp_path, lines: str):
    directory = tmp_path / "etc"
    done = run_roost("init", str(directory), "--port-base", "7000", "--user", "a@example.test:pw")
    assert done.returncode == 0, done.stderr
    conf = directory / "dovecot.conf"
    kept = [line for line in conf.read_text().splitlines()
            if not line.startswith(("default_internal_user", "default_internal_group", "default_login_user"))]
    conf.write_text("\n".join(kept) + "\n" + lines)
    with open(directory / "main.cf", "a") as main_cf:
        main_cf.write(f"mail_owner = {ME}\n")
    return load_config(str(directory))


def warnings(config) -> list[str]:
    return [d.message for d in config.diagnostics.items if "default_" in d.message]


def test_init_writes_what_runs_and_nothing_is_reported(tmp_path):
    directory = tmp_path / "etc"
    assert run_roost("init", str(directory), "--port-base", "7000").returncode == 0
    text = (directory / "dovecot.conf").read_text()
    assert f"default_internal_user = {ME}\n" in text and f"default_login_user = {ME}\n" in text
    done = run_roost("-c", str(directory), "check")
    assert done.returncode == 0 and "default_" not in done.stderr, done.stderr


def test_mail_owner_and_its_group_are_acted_on_silently(tmp_path):
    config = make(tmp_path, f"default_internal_user = {ME}\ndefault_internal_group = {MY_GROUP}\n"
                            f"default_login_user = {ME}\n")
    assert warnings(config) == []


def test_other_accounts_are_reported_with_what_runs_instead(tmp_path):
    config = make(tmp_path, "default_internal_user = dovecot\ndefault_internal_group = nogroup\n"
                            "default_login_user = dovenull\n")
    assert warnings(config) == [
        f"default_internal_user = dovecot: roost runs auth inside its workers, as mail_owner {ME}",
        f"default_internal_group = nogroup: roost runs auth inside its workers, as mail_owner "
        f"{ME}'s group {MY_GROUP}",
        f"default_login_user = dovenull: roost runs the IMAP and POP3 logins inside its workers, "
        f"as mail_owner {ME}",
    ]
