"""`roost postconf -e` and `-#` against Debian's postconf doing the same edit on a copy of the
same main.cf: the resulting files must be byte-identical (and the warnings equivalent)."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest

from roost.cli import postconf as roost_postconf
from tests.conftest import DATA, require_tool

BASE = """# Postfix main.cf, edited in place
myhostname = mail.example.com
mydomain = example.com
# the destinations
mydestination = $myhostname,
    localhost.$mydomain,
# a comment inside the entry
\tlocalhost

relayhost = [old.example.com]
myhostname = again.example.com
  continued
smtpd_banner = $myhostname ESMTP # hash is value
"""

CASES = {
    "replace-single": (BASE, ["-e", "relayhost = [new.example.com]:587"]),
    "replace-multiline": (BASE, ["-e", "mydestination=$myhostname, localhost"]),
    "replace-every-entry": (BASE, ["-e", "myhostname =  host.example.net  "]),
    "append-new": (BASE, ["-e", "message_size_limit = 52428800"]),
    "empty-value": (BASE, ["-e", " relayhost=  "]),
    "same-name-twice": (BASE, ["-e", "relayhost = first", "relayhost = second"]),
    "replace-and-append": (BASE, ["-e", "mydomain = example.org", "inet_interfaces=all"]),
    "value-with-equals": (BASE, ["-e", "smtpd_banner = a=b $mail_name"]),
    "no-final-newline": ("myhostname = a.example\nrelayhost = r", ["-e", "relayhost = s"]),
    "append-after-no-newline": ("myhostname = a.example\nrelayhost = r", ["-e", "mydomain = d"]),
    "leading-whitespace-kept": ("  junk = 1\nx = 1\n", ["-e", "x = 2"]),
    "crlf-file": ("myhostname = a\r\nrelayhost = b\r\n", ["-e", "relayhost = c"]),
    "comment-out-one": (BASE, ["-#", "relayhost"]),
    "comment-out-multiline": (BASE, ["-#", "mydestination"]),
    "comment-out-every-entry": (BASE, ["-#", "myhostname", "nonesuch"]),
    "comment-out-no-final-newline": ("x = 1\nx=2", ["-#", "x"]),
    "seed004": ((DATA / "maincf" / "seed004" / "main.cf").read_text(),
                ["-e", "inet_interfaces = all"]),
    "seed004-debugger": ((DATA / "maincf" / "seed004" / "main.cf").read_text(),
                         ["-#", "debugger_command"]),
    "seed002": ((DATA / "maincf" / "seed002" / "main.cf").read_text(),
                ["-e", "smtpd_tls_security_level = encrypt"]),
}


def prepare(directory, text: str) -> None:
    directory.mkdir()
    (directory / "main.cf").write_bytes(text.encode())
    (directory / "master.cf").write_text("")


def warnings(stderr: str) -> set[str]:
    return {line.split("warning: ", 1)[1].rsplit(": ", 1)[-1]
            for line in stderr.splitlines() if "warning: " in line}


@pytest.mark.parametrize("case", sorted(CASES))
def test_edit_gives_the_same_file_as_postfix(tmp_path, case):
    text, args = CASES[case]
    theirs, ours = tmp_path / "postfix", tmp_path / "roost"
    prepare(theirs, text)
    prepare(ours, text)
    real = subprocess.run(["postconf", "-c", str(theirs), *args], capture_output=True,
                          executable=require_tool("postconf"), timeout=60)
    err = io.StringIO()
    status = roost_postconf.run(["postconf", "-c", str(ours), *args], io.StringIO(), err)
    assert status == real.returncode
    assert (ours / "main.cf").read_bytes() == (theirs / "main.cf").read_bytes()
    assert warnings(err.getvalue()) == warnings(real.stderr.decode())


@pytest.mark.parametrize("args", [["-e"], ["-e", "x=1", "no-equals-here"]],
                         ids=["no-request", "missing-equals"])
def test_bad_edit_requests_fail_like_postfix_and_change_nothing(tmp_path, args):
    theirs, ours = tmp_path / "postfix", tmp_path / "roost"
    prepare(theirs, BASE)
    prepare(ours, BASE)
    real = subprocess.run(["postconf", "-c", str(theirs), *args], capture_output=True,
                          executable=require_tool("postconf"), timeout=60)
    err = io.StringIO()
    assert roost_postconf.run(["postconf", "-c", str(ours), *args], io.StringIO(), err) == \
        real.returncode == 1
    assert (ours / "main.cf").read_text() == (theirs / "main.cf").read_text() == BASE
    assert "postconf: fatal:" in err.getvalue()


def test_edit_of_a_missing_main_cf_is_fatal(tmp_path):
    err = io.StringIO()
    assert roost_postconf.run(["postconf", "-c", str(tmp_path), "-e", "x=1"], io.StringIO(),
                              err) == 1
    assert "open " in err.getvalue() and not (tmp_path / "main.cf").exists()


def test_edit_keeps_file_mode_and_non_utf8_bytes(tmp_path):
    directory = tmp_path / "conf"
    directory.mkdir()
    main_cf = directory / "main.cf"
    main_cf.write_bytes(b"# caf\xe9 latin-1 comment\nrelayhost = a\n")
    main_cf.chmod(0o640)
    assert roost_postconf.run(["postconf", "-c", str(directory), "-e", "relayhost=b"],
                              io.StringIO(), io.StringIO()) == 0
    assert main_cf.read_bytes() == b"# caf\xe9 latin-1 comment\nrelayhost = b\n"
    assert main_cf.stat().st_mode & 0o777 == 0o640
    assert not [p for p in directory.iterdir() if p.name != "main.cf"]


def test_edited_file_reads_back_with_the_new_values(tmp_path):
    directory = tmp_path / "conf"
    shutil.copytree(DATA / "maincf" / "seed003", directory)
    roost_postconf.run(["postconf", "-c", str(directory), "-e", "relay_domains = $mydestination",
                        "message_size_limit=1000"], io.StringIO(), io.StringIO())
    out = io.StringIO()
    roost_postconf.run(["postconf", "-c", str(directory), "-h", "relay_domains",
                        "message_size_limit"], out, io.StringIO())
    assert out.getvalue() == "$mydestination\n1000\n"
