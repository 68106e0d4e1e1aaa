"""roost.log: Postfix and Dovecot line formats, checked against the real tools.

Postfix's own maillog_file writer (`postlog` with maillog_file set) and a private Dovecot
with log_path set are the oracles for the line layout; syslog's `%e` day padding is checked
directly because the oracle only shows it on days 1-9.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

from roost.log import (LogSetup, LogSink, dovecot_file_line, dovecot_syslog_line, postfix_line,
                       sanitize, syslog_timestamp)
from tests.conftest import require_tool
from tests.master.helpers import wait_until


def local_time(month, day, hour, minute, second) -> float:
    return time.mktime((2025, month, day, hour, minute, second, 0, 0, -1))


def test_syslog_timestamp_pads_single_digit_day_with_space():
    assert syslog_timestamp(local_time(11, 3, 8, 4, 5)) == "Nov  3 08:04:05"
    assert syslog_timestamp(local_time(1, 23, 18, 40, 1)) == "Jan 23 18:40:01"


def test_postfix_line_layout_and_prefixes():
    when = local_time(11, 23, 18, 40, 1)
    assert (postfix_line(when, "mx", "postfix/smtpd", 1234, "info", "connect from localhost[127.0.0.1]")
            == "Nov 23 18:40:01 mx postfix/smtpd[1234]: connect from localhost[127.0.0.1]")
    for level in ("warning", "error", "fatal", "panic"):
        assert postfix_line(when, "mx", "postfix/master", 1, level, "x").endswith(f"]: {level}: x")


def test_dovecot_formats():
    when = local_time(11, 3, 18, 40, 1)
    assert dovecot_file_line(when, "imap-login", "info", "Login: user=<a>") == \
        "Nov 03 18:40:01 imap-login: Info: Login: user=<a>"
    assert dovecot_file_line(when, "auth", "warning", "w", "%Y-%m-%d %H:%M:%S ") == \
        "2025-11-03 18:40:01 auth: Warning: w"
    assert dovecot_syslog_line(when, "mx", "imap-login", "info", "Login") == \
        "Nov  3 18:40:01 mx dovecot: imap-login: Login"
    assert dovecot_syslog_line(when, "mx", "auth", "error", "bad") == \
        "Nov  3 18:40:01 mx dovecot: auth: Error: bad"


def test_untrusted_text_cannot_forge_lines():
    line = postfix_line(0, "mx", "postfix/smtpd", 1, "info", "helo=<x>\r\nNov  3 00:00:00 mx fake: y\0")
    assert "\n" not in line and "\r" not in line and "\0" not in line
    assert sanitize("a\tb\x7fc") == "a?b?c"
    assert len(postfix_line(0, "mx", "t", 1, "info", "é" * 10000).encode()) <= 4000


def test_many_processes_append_whole_lines(tmp_path):
    path = tmp_path / "maillog"
    script = (
        "import sys\n"
        "from roost.log import LogSink, LogSetup\n"
        f"log = LogSetup(LogSink(path={str(path)!r}), hostname='mx').postfix('smtpd')\n"
        "for i in range(300):\n"
        "    log.info(sys.argv[1] * 500 + ' %d' % i)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, letter]) for letter in "abcd"]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 1200
    pattern = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d mx postfix/smtpd\[\d+\]: ([abcd])\1{499} \d+$")
    assert all(pattern.match(line) for line in lines)


def test_log_setup_routes_dovecot_lines(tmp_path):
    main = LogSink(path=str(tmp_path / "maillog"))
    dovecot = LogSink(path=str(tmp_path / "dovecot.log"))
    LogSetup(main, hostname="mx").dovecot("imap-login").info("to the mail log")
    LogSetup(main, hostname="mx", dovecot_sink=dovecot).dovecot("pop3-login").warning("own file")
    LogSetup(main, hostname="mx").postfix("smtpd", "postfix/submission").info("sub")
    assert re.search(r" mx dovecot: imap-login: to the mail log$", (tmp_path / "maillog").read_text(), re.M)
    assert re.search(r"^\w{3} \d\d \d\d:\d\d:\d\d pop3-login: Warning: own file$",
                     (tmp_path / "dovecot.log").read_text(), re.M)
    assert " mx postfix/submission/smtpd[" in (tmp_path / "maillog").read_text()


def test_reopen_follows_rotation(tmp_path):
    path = tmp_path / "maillog"
    sink = LogSink(path=str(path))
    sink.write_line("one")
    os.rename(path, tmp_path / "maillog.1")
    sink.reopen()
    sink.write_line("two")
    sink.close()
    assert path.read_text() == "two\n"
    assert (tmp_path / "maillog.1").read_text() == "one\n"


def _without_stamp_and_pid(line: str) -> str:
    return re.sub(r"\[\d+\]", "[PID]", line[16:])


def test_postfix_line_matches_postlog(tmp_path):
    postlog = require_tool("postlog")
    maillog = tmp_path / "maillog"
    (tmp_path / "main.cf").write_text(
        f"maillog_file = {maillog}\nmaillog_file_prefixes = {tmp_path}\ncompatibility_level = 3.6\n")
    for level, text in (("info", "connect from localhost[127.0.0.1]"), ("warning", "hello warn")):
        before = time.time()
        subprocess.run([postlog, "-c", str(tmp_path), "-t", "postfix/test", "-p", level, text],
                       check=True, capture_output=True, timeout=20)
        theirs = maillog.read_text().splitlines()[-1]
        ours = postfix_line(before, os.uname().nodename, "postfix/test", 4242, level, text)
        assert _without_stamp_and_pid(theirs) == _without_stamp_and_pid(ours)
        stamps = {syslog_timestamp(before + delta) for delta in (0, 1, 2)}
        assert theirs[:15] in stamps


@pytest.fixture
def private_dovecot(tmp_path):
    """A Dovecot master (no protocols) in the foreground, logging to its own log_path."""
    dovecot = require_tool("dovecot")
    log_path = tmp_path / "dovecot.log"
    conf = tmp_path / "dovecot.conf"
    conf.write_text(f"""base_dir = {tmp_path}/run
state_dir = {tmp_path}/state
log_path = {log_path}
protocols =
ssl = no
default_internal_user = root
default_internal_group = root
default_login_user = root
service anvil {{
  chroot =
}}
""")
    (tmp_path / "state").mkdir()
    before = time.time()
    process = subprocess.Popen([dovecot, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        yield process, log_path, before
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_dovecot_file_lines_match_dovecot(private_dovecot):
    process, log_path, before = private_dovecot
    assert wait_until(lambda: log_path.exists() and "starting up" in log_path.read_text(), 10)
    process.terminate()  # Dovecot logs "Warning: Killed with signal 15 ..."
    assert process.wait(timeout=20) is not None
    after = time.time()
    lines = log_path.read_text().splitlines()
    for level, marker in (("info", ": Info: "), ("warning", ": Warning: ")):
        theirs = next(line for line in lines if marker in line)
        text = theirs.split(marker, 1)[1]
        candidates = {dovecot_file_line(moment, "master", level, text)
                      for moment in range(int(before) - 1, int(after) + 2)}
        assert theirs in candidates
