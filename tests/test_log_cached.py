"""roost.log keeps the pid and the last second's timestamp text instead of asking the system
per line: a forked child still writes its own pid, and the cached stamp is exactly what
time.localtime gives for every second."""

from __future__ import annotations

import os
import time

from roost.log import LogSink, PostfixLogger, current_pid, syslog_timestamp


def _direct(when: float) -> str:
    t = time.localtime(int(when))
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    return f"{months[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def test_cached_timestamp_follows_every_second():
    start = time.mktime((2025, 12, 31, 23, 59, 58, 0, 0, -1))
    for step in range(0, 40):
        when = start + step * 0.25  # each second asked several times, across a year boundary
        assert syslog_timestamp(when) == _direct(when)
    assert syslog_timestamp(start) == _direct(start)  # going back in time too


def test_forked_child_logs_its_own_pid(tmp_path):
    path = tmp_path / "maillog"
    sink = LogSink(str(path))
    logger = PostfixLogger(sink, "postfix/smtpd", "mx")
    logger.info("parent")
    assert current_pid() == os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            logger.info("child")
        finally:
            os._exit(0 if current_pid() == os.getpid() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = path.read_text().splitlines()
    assert lines[0].endswith(f"postfix/smtpd[{os.getpid()}]: parent")
    assert lines[1].endswith(f"postfix/smtpd[{pid}]: child")
    sink.close()
