"""Differential test: passdb chain semantics against Dovecot 2.3 (`doveadm auth test`).

Each configuration chains three passwd-file passdbs with some result_success/result_failure/
skip/deny settings; every user name encodes what each file says about it (o = right password,
b = other password, a = absent), so one private Dovecot answers all 27 combinations. roost
reads the same dovecot.conf with its own parser and must agree on success and on the
`auth_verbose` log lines (`passwd-file(user): Password mismatch` / `unknown user`).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from roost.auth.lookup import AuthLookup
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.config.dovecot_settings import dovecot_settings
from roost.auth.passdb import default_verify
from tests.conftest import require_tool

PASSWORD = "pw"
STATES = "oba"
CONFIGS = {
    "defaults": ["", "", ""],
    "continue-mix": ["result_success = continue\n  result_failure = continue",
                     "result_success = continue-ok\n  result_failure = continue-fail",
                     ""],
    "return-variants": ["result_success = continue-ok",
                        "result_success = return-fail\n  result_failure = return",
                        "result_success = continue\n  result_failure = continue-ok"],
    "return-first": ["result_success = return\n  result_failure = return-ok",
                     "result_success = continue-fail", "result_success = continue"],
    "deny-and-skip": ["deny = yes",
                      "result_success = continue-ok",
                      "skip = unauthenticated\n  result_failure = continue-fail"],
    "last-continue": ["", "result_success = continue-fail\n  result_failure = continue",
                      "result_success = continue\n  result_failure = continue"],
    "skip-authenticated": ["result_success = continue-ok",
                           "skip = authenticated\n  result_failure = continue-fail",
                           "skip = authenticated"],
}


def write_config(root: Path, passdb_settings: list[str]) -> Path:
    users = ["u" + "".join(states) for states in itertools.product(STATES, repeat=3)]
    blocks = []
    for index, extra in enumerate(passdb_settings):
        lines = [f"{user}:{{PLAIN}}{PASSWORD if user[1 + index] == 'o' else 'other'}"
                 for user in users if user[1 + index] != "a"]
        (root / f"p{index}").write_text("\n".join(lines) + "\n")
        blocks.append(f"passdb {{\n  driver = passwd-file\n  args = {root}/p{index}\n"
                      f"  {extra}\n}}\n")
    conf = root / "dovecot.conf"
    conf.write_text(f"protocols =\nbase_dir = {root}/run\nstate_dir = {root}/state\n"
                    f"log_path = {root}/log\nssl = no\nauth_failure_delay = 0\n"
                    "auth_verbose = yes\n" + "".join(blocks))
    return conf


def stop_dovecot(root: Path) -> None:
    pid_file = root / "run" / "master.pid"
    try:
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 10
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def dovecot_answers(confs: dict[str, Path], users: list[str]
                    ) -> dict[str, tuple[dict[str, bool], str]]:
    """Per configuration: (user -> succeeded, the auth log) from private Dovecots.

    Dovecot delays each failed `auth test` by seconds whatever auth_failure_delay says, so
    every instance is asked about every user at once."""
    started: list[Path] = []
    try:
        for conf in confs.values():
            subprocess.run(["dovecot", "-c", str(conf)], check=True, timeout=30)
            started.append(conf.parent)
        for root in started:
            deadline = time.monotonic() + 10
            while not (root / "run" / "auth-client").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
        asking = {(name, user): subprocess.Popen(
            ["doveadm", "-c", str(conf), "auth", "test", user, PASSWORD],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, conf in confs.items() for user in users}
        answers: dict[str, dict[str, bool]] = {name: {} for name in confs}
        for (name, user), process in asking.items():
            stdout, stderr = process.communicate(timeout=60)
            answers[name][user] = "auth succeeded" in stdout
            assert answers[name][user] or "auth failed" in stdout, stderr
    finally:
        for root in started:
            stop_dovecot(root)
    return {name: (answers[name], (conf.parent / "log").read_text())
            for name, conf in confs.items()}


def test_chain_matches_dovecot():
    require_tool("dovecot")
    require_tool("doveadm")
    roots = {name: Path(tempfile.mkdtemp(prefix="rl", dir="/tmp")) for name in CONFIGS}
    try:
        for root in roots.values():
            os.chmod(root, 0o755)  # short paths: unix socket names are limited
        confs = {name: write_config(roots[name], CONFIGS[name]) for name in CONFIGS}
        users = ["u" + "".join(states) for states in itertools.product(STATES, repeat=3)]
        results = dovecot_answers(confs, users)
        differences = []
        for name, conf in confs.items():
            answers, log = results[name]
            diags = Diagnostics()
            lookup = AuthLookup.from_settings(
                dovecot_settings(parse_dovecot_conf(str(conf), diags)), diags,
                verify=default_verify)
            assert not diags.has_fatal(), diags.items
            dovecot_lines: dict[str, list[str]] = {}
            for found in re.finditer(r"auth: Info: (passwd-file\((u[oba]{3})\): .*)", log):
                dovecot_lines.setdefault(found.group(2), []).append(found.group(1))
            # Dovecot names no user in this line: compare how many there are
            deny_line = "User found from deny passdb"
            denied = 0
            for user in users:
                result = lookup.authenticate(user, PASSWORD, "doveadm")
                ours = [text for level, text in result.log if level == "info" and text != deny_line]
                denied += (("info", deny_line) in result.log)
                if result.ok != answers[user] or ours != dovecot_lines.get(user, []):
                    differences.append((name, user, answers[user], result.ok,
                                        dovecot_lines.get(user, []), ours))
            if denied != log.count(f"auth: Info: {deny_line}"):
                differences.append((name, "deny lines", log.count(deny_line), denied))
        assert differences == [], "\n".join(map(repr, differences))
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
