"""Unit tests of the master's parts: pid file, binding, pool planning, handler registry."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from roost.config.diagnostics import Diagnostics
from roost.config.master_cf import parse_master_cf
from roost.log import LogSetup, LogSink
from roost.master import services
from roost.master.bind import BindError, bind_listener, endpoint_key
from roost.master.pidfile import AlreadyRunning, PidFile, running_pid
from roost.master.plan import plan_services, pool_size, service_logger
from roost.net import unavailable
from tests.conftest import require_tool
from tests.master.helpers import FakeConfig, FakeSettings, make_listener

HOLDER = """
import sys
from roost.master.pidfile import PidFile
lock = PidFile.acquire(sys.argv[1])
lock.write(12345)
print("locked", flush=True)
sys.stdin.readline()
"""


def test_pid_file_lock_decides_running(tmp_path):
    path = str(tmp_path / "pid" / "master.pid")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert open(path).read() == "     12345\n"  # Postfix's right-aligned layout
        assert running_pid(path) == 12345
        with pytest.raises(AlreadyRunning) as refused:
            PidFile.acquire(path)
        assert refused.value.pid == 12345
    finally:
        holder.communicate("\n", timeout=10)
    assert running_pid(path) is None  # the file is still there, but nobody holds it: stale
    taken = PidFile.acquire(path)
    taken.write(os.getpid())
    assert int(open(path).read()) == os.getpid()
    taken.release()
    assert not os.path.exists(path)


def test_stale_pid_file_of_another_process_is_replaced(tmp_path):
    path = tmp_path / "master.pid"
    path.write_text(f"{os.getppid():10d}\n")  # a live process, but not a master holding the lock
    assert running_pid(str(path)) is None
    taken = PidFile.acquire(str(path))
    taken.write(os.getpid())
    assert int(path.read_text()) == os.getpid()
    taken.release()


def test_bind_inet_and_address_in_use():
    first = bind_listener(make_listener(port=0))
    try:
        port = first.getsockname()[1]
        with pytest.raises(BindError) as error:
            bind_listener(make_listener(port=port))
        assert str(error.value) == f"bind 127.0.0.1 port {port}: Address already in use"
    finally:
        first.close()
    assert endpoint_key(make_listener(port=25)) == ("inet", "127.0.0.1", 25)


def test_bind_unix_mode_stale_and_live(tmp_path):
    path = str(tmp_path / "private" / "auth")
    listener = make_listener("auth/auth", "auth", family="unix", path=path, mode=0o660)
    sock = bind_listener(listener)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    with pytest.raises(BindError) as error:
        bind_listener(listener)  # a live server accepts there
    assert str(error.value) == f"bind {path}: Address already in use"
    sock.close()  # the path stays behind, as after a crash
    again = bind_listener(make_listener("auth/auth", "auth", family="unix", path=path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # Dovecot's default mode
    again.close()
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(BindError):
        bind_listener(make_listener("auth/x", "auth", family="unix", path=str(regular)))


def test_pool_size_is_bounded_by_maxproc_and_cpus():
    assert pool_size(0, cpus=2) == 2  # 0: no limit
    assert pool_size(1, cpus=2) == 1
    assert pool_size(100, cpus=2) == 2
    assert pool_size(3, cpus=8) == 3


def test_plan_groups_listeners_by_service():
    submission = FakeSettings(syslog_name="postfix/submission")
    listeners = (make_listener("smtp", host="127.0.0.1", port=25),
                 make_listener("smtp", host="::1", port=25),
                 make_listener("submission", port=587, maxproc=1, settings=submission),
                 make_listener("imap-login/imaps", "imap", port=993, tls_wrapper=True))
    specs = plan_services(FakeConfig("/x", FakeSettings(), listeners=listeners), cpus=2)
    assert [(s.name, len(s.listeners), s.pool_size, s.dovecot) for s in specs] == [
        ("smtp", 2, 2, False), ("submission", 1, 1, False), ("imap-login/imaps", 1, 2, True)]
    setup = LogSetup(LogSink(fd=2), hostname="mx")
    assert service_logger(specs[1], setup).tag == "postfix/submission/smtpd"
    assert service_logger(specs[2], setup).service == "imap-login"


def test_registry_resolution(monkeypatch, tmp_path):
    monkeypatch.setattr(services, "HANDLER_MODULES", {
        "later": "roost.net.no_such_protocol_yet", "broken": "tests_broken_handler"})
    (tmp_path / "tests_broken_handler.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    later = services.resolve_handler("later")
    assert (later.available, later.reason) == (False, services.NOT_LANDED)
    assert later.factory is unavailable.make_service
    broken = services.resolve_handler("broken")
    assert not broken.available and "RuntimeError: boom" in broken.reason
    assert services.resolve_handler("postscreen").reason == "not supported by roost"

    def factory(context):
        return None

    services.register_handler("later", factory)
    try:
        assert services.resolve_handler("later").factory is factory
    finally:
        services.unregister_handler("later")


def test_debian_master_cf_internal_and_unsupported_services():
    require_tool("postconf")  # the Debian package ships the master.cf read here
    diags = Diagnostics()
    parsed = parse_master_cf("/etc/postfix/master.cf", diags)
    sorted_out = services.classify_non_listeners(parsed)
    internal = {s.name for s in sorted_out.internal}
    unsupported = {s.name: reason for s, reason in sorted_out.unsupported}
    assert {"pickup", "cleanup", "qmgr", "rewrite", "bounce", "defer", "relay", "retry",
            "local", "virtual", "lmtp", "postlog"} <= internal
    assert "smtp" in internal  # the smtp(8) client; the inet smtp service is a listener
    assert set(unsupported) == {"maildrop", "uucp", "ifmail", "bsmtp", "scalemail-backend", "mailman"}
    assert all("pipe(8)" in reason for reason in unsupported.values())


def _dovecot(tmp_path, text):
    from roost.config.dovecot_conf import parse_dovecot_text

    return parse_dovecot_text(text, str(tmp_path / "dovecot.conf"), Diagnostics(), check=False)


def test_log_destinations(tmp_path):
    from roost.master.logsetup import dovecot_pem_source, open_logs

    data = tmp_path / "data"
    background = open_logs(FakeConfig("/x", FakeSettings(data_directory=str(data))), foreground=False)
    background.postfix("master").info("to data_directory")
    assert "postfix/master[" in (data / "maillog").read_text()
    foreground = open_logs(FakeConfig("/x", FakeSettings(data_directory=str(data))), foreground=True)
    assert foreground.postfix_sink.fd == 2
    chosen = open_logs(FakeConfig("/x", FakeSettings(maillog_file=str(tmp_path / "mail.log"))), True)
    assert chosen.postfix_sink.path == str(tmp_path / "mail.log")

    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    dovecot = _dovecot(tmp_path, f"log_path = {tmp_path}/dovecot.log\n"
                                 f"log_timestamp = \"%Y-%m-%d %H:%M:%S \"\n"
                                 f"ssl_cert = <{tmp_path}/cert.pem\n")
    config = FakeConfig("/x", FakeSettings(data_directory=str(data)), dovecot=dovecot)
    setup = open_logs(config, foreground=False)
    setup.dovecot("imap-login").info("Login: user=<a>")
    line = (tmp_path / "dovecot.log").read_text()
    assert line.endswith(" imap-login: Info: Login: user=<a>\n") and line[4] == "-"
    assert dovecot_pem_source(config, "ssl_cert") == f"<{tmp_path}/cert.pem"  # the file, not a copy
    assert dovecot_pem_source(config, "ssl_key") is None
    syslog_style = open_logs(FakeConfig("/x", FakeSettings(data_directory=str(data)),
                                        dovecot=_dovecot(tmp_path, "log_path = syslog\n")), False)
    assert syslog_style.dovecot("auth").syslog_style
