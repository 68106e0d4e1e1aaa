"""`roost postconf` against Debian's real postconf on the main.cf fixtures in tests/data/maincf.

For each fixture and each of -n, -h NAMES, -x NAMES, -d NAMES (NAMES: every parameter in
PARAMS, one invocation per flag) stdout and the exit status must be identical and the warnings
equivalent (same messages; roost adds the line number and says each one once). Parameters that
differ on purpose are left out: mail_version (roost's version), dovecot_config_file (roost
only), -d config_directory (/etc/roost), and, where a value refers to $process_id, the value
holding the pid of the process that prints it.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest

from roost.cli import postconf as roost_postconf
from roost.config.params import PARAMS
from tests.conftest import DATA, REPO, require_tool

FIXTURE_ROOT = DATA / "maincf"
FIXTURES = sorted(p.name for p in FIXTURE_ROOT.iterdir() if (p / "main.cf").exists())
ROOST_OWN = {"dovecot_config_file", "mail_version"}
ALL_NAMES = [name for name in PARAMS if name not in ROOST_OWN]
FLAG_NAMES = {
    "-n": [],
    "-h": ALL_NAMES,
    "-x": ALL_NAMES,
    "-d": [name for name in ALL_NAMES if name != "config_directory"],
}
WARNING_PREFIX = re.compile(r"^postconf: warning: (/[^:]*?(, line \d+)?: )?")
PID_DEPENDENT = re.compile(rb"^(process_id|debugger_command|milter_macro_v) = .*\n?"
                           rb"(    .*\n?)*", re.M)


def real_postconf(directory: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
    # argv[0] "postconf", as an administrator types it: Postfix prefixes messages with it.
    return subprocess.run(["postconf", "-c", directory, *args], executable=require_tool("postconf"),
                          capture_output=True, env=env, timeout=60)


def roost_run(directory: str, *args: str) -> tuple[int, bytes, str]:
    out, err = io.StringIO(), io.StringIO()
    status = roost_postconf.run(["postconf", "-c", directory, *args], out, err)
    return status, out.getvalue().encode("utf-8", "surrogateescape"), err.getvalue()


def warning_set(stderr: str) -> set[str]:
    """Warnings without program name, file and line (Postfix omits some lines, repeats some)."""
    return {WARNING_PREFIX.sub("", line) for line in stderr.splitlines()
            if line.startswith("postconf: warning:")}


def names_for(fixture: str, flag: str) -> list[str]:
    names = FLAG_NAMES[flag]
    if flag == "-x" and "$process_id" in (FIXTURE_ROOT / fixture / "main.cf").read_text():
        names = [name for name in names if name != "debugger_command"]
    return names


# Postfix stops at start on these (a second's sleep each): -n and -d are enough to compare.
FATAL_AT_START = {"compat-level-malformed", "loop-fatal", "loop-self-fatal", "missing-equals",
                  "syntax-fatal"}
CASES = [(fixture, flag) for fixture in FIXTURES for flag in sorted(FLAG_NAMES)
         if fixture not in FATAL_AT_START or flag in ("-n", "-d")]


@pytest.mark.parametrize("fixture, flag", CASES)
def test_postconf_output_matches_postfix(fixture, flag):
    directory = str(FIXTURE_ROOT / fixture)
    names = names_for(fixture, flag)
    real = real_postconf(directory, flag, *names)
    status, stdout, stderr = roost_run(directory, flag, *names)
    assert status == real.returncode, (stderr, real.stderr.decode())
    assert stdout == real.stdout
    if status == 0:
        assert warning_set(stderr) == warning_set(real.stderr.decode("utf-8", "replace"))
    else:
        assert "postconf: fatal: " in stderr


@pytest.mark.parametrize("args", [(), ("-nx",), ("-nh",), ("-H",), ("-xh", "mydestination"),
                                  ("-n", "myhostname", "relayhost", "nonesuch"), ("-nf",),
                                  ("-xf",)],
                         ids=lambda args: " ".join(args) or "all")
@pytest.mark.parametrize("fixture", ["seed002", "seed004", "expand-nested", "user-defined",
                                     "compat-level-3.6", "continuation", "long-lists"])
def test_other_modes_match_postfix(fixture, args):
    directory = str(FIXTURE_ROOT / fixture)
    real = real_postconf(directory, *args)
    status, stdout, _ = roost_run(directory, *args)
    assert status == real.returncode
    assert without_roost_lines(stdout) == without_roost_lines(real.stdout)


def without_roost_lines(text: bytes) -> list[bytes]:
    """Listing every parameter, roost adds dovecot_config_file and shows its own version (and
    the pid of the printing process is never the same)."""
    own = (b"mail_version", b"dovecot_config_file")
    kept, dropping = [], False
    for line in PID_DEPENDENT.sub(b"", text).splitlines():
        # with -f a long value folds onto indented lines, which belong to the dropped one
        dropping = line.startswith(own) or (dropping and line[:1] in (b" ", b"\t"))
        if not dropping:
            kept.append(line)
    return kept


def test_config_directory_comes_from_mail_config_like_postfix(tmp_path):
    directory = tmp_path / "conf"
    directory.mkdir()
    (directory / "main.cf").write_text("myhostname = env.example\n")
    (directory / "master.cf").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "MAIL_CONFIG"}
    env["MAIL_CONFIG"] = str(directory)
    real = subprocess.run([require_tool("postconf"), "-n"], capture_output=True, env=env)
    ours = subprocess.run([sys.executable, "-m", "roost", "postconf", "-n"], capture_output=True,
                          env=env, cwd=REPO)
    assert ours.returncode == real.returncode == 0
    assert ours.stdout == real.stdout
    via_option = subprocess.run([sys.executable, "-m", "roost", "-c", str(directory), "postconf",
                                 "-n"], capture_output=True, env=env, cwd=REPO)
    assert via_option.stdout == real.stdout


def test_missing_main_cf_is_fatal_like_postfix(tmp_path):
    (tmp_path / "master.cf").write_text("")
    real = real_postconf(str(tmp_path), "-n")
    status, stdout, stderr = roost_run(str(tmp_path), "-n")
    assert status == real.returncode == 1
    assert stdout == real.stdout == b""
    assert "No such file or directory" in stderr
    real_d = real_postconf(str(tmp_path), "-d", "mydomain")
    assert roost_run(str(tmp_path), "-d", "mydomain")[:2] == (real_d.returncode, real_d.stdout)


def test_services_add_transport_parameters_like_postfix(tmp_path):
    (tmp_path / "main.cf").write_text(
        "relay_destination_concurrency_limit = 3\nslow_destination_rate_delay = 1s\n"
        "mailpipe_time_limit = 10s\nnosuch_destination_concurrency_limit = 4\n")
    (tmp_path / "master.cf").write_text(
        "relay unix - - n - - smtp\nslow unix - - n - - lmtp\n"
        "mailpipe unix - n n - - pipe flags=R user=nobody argv=/bin/cat\n"
        "smtp inet n - n - - smtpd\n  -o smtpd_client_restrictions=$mua_restrictions\n")
    for args in (("-n",), ("-d", "relay_destination_concurrency_limit", "mailpipe_time_limit",
                           "slow_recipient_limit"), ("-x", "relay_destination_concurrency_limit")):
        real = real_postconf(str(tmp_path), *args)
        status, stdout, stderr = roost_run(str(tmp_path), *args)
        assert (status, stdout) == (real.returncode, real.stdout), args
        assert warning_set(stderr) == warning_set(real.stderr.decode())


NETNS_SCRIPT = """
set -e
ip link set lo up
ip addr add 10.1.2.3/16 dev lo
ip addr add 10.1.9.9/16 dev lo
ip addr add 172.16.5.4/12 dev lo
ip addr add 192.168.7.7/24 dev lo
ip -6 addr add fd01::5/48 dev lo
for dir in "$@"; do
  echo "== real"
  "$POSTCONF" -c "$dir" -x mynetworks mynetworks_style 2>&1 || true
  echo "== roost"
  "$PYTHON" -m roost postconf -c "$dir" -x mynetworks mynetworks_style 2>&1 || true
done
"""


def test_mynetworks_default_matches_postfix_in_a_private_network_namespace(tmp_path):
    """Interfaces with several addresses in one subnet, classes A/B/C, IPv6: same networks."""
    cases = {"subnet": "", "host": "mynetworks_style = host\n", "class": "mynetworks_style = class\n",
             "ipv4": "inet_protocols = ipv4\n", "ipv6": "inet_protocols = ipv6\n",
             "listed": "inet_interfaces = 10.1.9.9, [fd01::5]\n",
             "notlocal": "inet_interfaces = 10.1.2.4\n"}
    dirs = []
    for name, text in cases.items():
        directory = tmp_path / name
        directory.mkdir()
        (directory / "main.cf").write_text(text)
        (directory / "master.cf").write_text("")
        dirs.append(str(directory))
    result = subprocess.run(
        [require_tool("unshare"), "-rn", "sh", "-c", NETNS_SCRIPT, "sh", *dirs],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env=dict(os.environ, POSTCONF=require_tool("postconf"), PYTHON=sys.executable))
    assert result.returncode == 0, result.stderr
    blocks = result.stdout.split("== real\n")[1:]
    assert len(blocks) == len(cases), result.stdout
    for block in blocks:
        real, ours = block.split("== roost\n")
        if "fatal" in real:
            assert "postconf: fatal:" in ours, block
        else:
            assert ours == real, block
