"""The mail system's life through the CLI: `roost -c DIR start | status | reload | stop`.

Each test works on a configuration made by `roost init DIR --port-base N` and stops what it
started; the fixture's finaliser kills by pid every process still running for its DIR.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess

import pytest

from tests.conftest import free_port_base, roost_cmd, run_roost
from tests.master.helpers import LineClient, alive, children_of, kill_quietly, wait_until


class Instance:
    def __init__(self, config_dir, port_base: int):
        self.dir = str(config_dir)
        self.base = port_base
        self.smtp_port = port_base + 25

    def roost(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return run_roost("-c", self.dir, *args, timeout=timeout)

    def start(self) -> subprocess.CompletedProcess:
        result = self.roost("start")
        assert result.returncode == 0, result.stderr
        return result

    def master_pid(self) -> int:
        result = self.roost("status")
        match = re.search(r"is running: PID: (\d+)", result.stderr)
        assert result.returncode == 0 and match, result.stderr
        return int(match.group(1))

    def edit(self, name: str, old: str, new: str) -> None:
        path = os.path.join(self.dir, name)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        assert old in text
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text.replace(old, new))

    def set_maxproc(self, service: str, maxproc: str) -> None:
        """Set master.cf's maxproc column (the 7th field) of `service`."""
        path = os.path.join(self.dir, "master.cf")
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines(keepends=True)
        for number, line in enumerate(lines):
            fields = line.split()
            if fields[:2] == [service, "inet"]:
                fields[6] = maxproc
                lines[number] = " ".join(fields) + "\n"
                break
        else:
            raise AssertionError(f"no inet service {service} in master.cf")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(lines))

    def maillog(self) -> str:
        path = os.path.join(self.dir, "data", "maillog")
        return open(path, encoding="utf-8").read() if os.path.exists(path) else ""

    def processes(self) -> list[int]:
        """Every live process started for this configuration (the CLI, master and workers
        all carry `-c DIR` in their command line: workers are forked, never exec'd)."""
        found = []
        marker = self.dir.encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read()
            except OSError:
                continue
            if marker in cmdline.split(b"\0") and alive(int(entry)):
                found.append(int(entry))
        return found

    def cleanup(self) -> None:
        for pid in self.processes():
            kill_quietly(pid, signal.SIGKILL)


@pytest.fixture
def instance(tmp_path):
    base = free_port_base()
    config_dir = tmp_path / "etc"
    result = run_roost("init", str(config_dir), "--port-base", str(base))
    assert result.returncode == 0, result.stderr
    inst = Instance(config_dir, base)
    yield inst
    leftovers = inst.processes()
    inst.cleanup()
    assert not leftovers, f"processes left running: {leftovers}"


def smtp_greeting(port: int) -> str:
    client = LineClient(port)
    try:
        greeting = client.line()
        client.command("QUIT")
        return greeting
    finally:
        client.close()


def served_by(inst: Instance, after: int) -> list[int]:
    """pids in `postfix/smtpd[PID]: connect from` lines of the maillog after offset `after`."""
    return [int(pid) for pid in re.findall(r" postfix/smtpd\[(\d+)\]: connect from ", inst.maillog()[after:])]


def test_start_status_reload_stop(instance):
    started = instance.start()
    assert f"127.0.0.1:{instance.smtp_port}" in started.stderr
    master = instance.master_pid()
    assert alive(master)

    old = LineClient(instance.smtp_port)
    assert old.line() == "220 mail.example.test ESMTP Postfix\r\n"

    instance.edit("main.cf", "myhostname = mail.example.test", "myhostname = renamed.example.test")
    reloaded = instance.roost("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert wait_until(lambda: "renamed.example.test" in smtp_greeting(instance.smtp_port), 10)

    # The session opened before the reload is still served, by its old worker.
    assert old.command("NOOP") == "250 2.0.0 Ok\r\n"
    assert old.command("QUIT") == "221 2.0.0 Bye\r\n"
    old.close()

    workers = children_of(master)
    assert workers
    stopped = instance.roost("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not alive(master)
    assert [pid for pid in workers if alive(pid)] == []
    status = instance.roost("status")
    assert status.returncode == 1
    assert "the roost mail system is not running" in status.stderr

    log = instance.maillog()
    assert f"postfix/master[{master}]: daemon started -- version " in log
    assert f"postfix/master[{master}]: reload -- version " in log
    assert f"postfix/master[{master}]: terminating on signal 15" in log
    assert "not available yet" not in log  # every service roost init configures is served


def test_killed_worker_is_replaced(instance):
    # One worker for the smtp service, so the replacement is the only one that can answer.
    instance.set_maxproc(str(instance.smtp_port), "1")
    instance.start()
    offset = len(instance.maillog())
    smtp_greeting(instance.smtp_port)
    (victim,) = wait_until(lambda: served_by(instance, offset), 5)
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: f"pid {victim} killed by signal 9" in instance.maillog(), 5)

    offset = len(instance.maillog())
    assert smtp_greeting(instance.smtp_port).startswith("220 ")
    (replacement,) = wait_until(lambda: served_by(instance, offset), 5)
    assert replacement != victim and alive(replacement)
    assert instance.roost("stop").returncode == 0


def test_second_start_is_refused(instance):
    instance.start()
    master = instance.master_pid()
    again = instance.roost("start")
    assert again.returncode == 1
    assert "fatal: the roost mail system is already running" in again.stderr
    assert instance.master_pid() == master
    assert instance.roost("stop").returncode == 0
    gone = instance.roost("stop")
    assert gone.returncode == 1 and "not running" in gone.stderr


def test_start_with_port_taken_fails_and_leaves_nothing(instance):
    blocker = socket.socket()
    # REUSEADDR so a TIME_WAIT left by an earlier test cannot fail the test itself; a
    # listening socket still makes roost's own bind fail, which is what is tested.
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", instance.smtp_port))
    blocker.listen(1)
    try:
        result = instance.roost("start")
    finally:
        blocker.close()
    assert result.returncode != 0
    assert f"fatal: bind 127.0.0.1 port {instance.smtp_port}: Address already in use" in result.stderr
    assert wait_until(lambda: not instance.processes(), 5)
    assert instance.roost("status").returncode == 1


def test_fatal_configuration_refuses_to_start(instance):
    with open(os.path.join(instance.dir, "main.cf"), "a", encoding="utf-8") as main_cf:
        main_cf.write("this line has no equals sign\n")
    with open(os.path.join(instance.dir, "master.cf"), "a", encoding="utf-8") as master_cf:
        master_cf.write("broken inet n\n")
    result = instance.roost("start")
    assert result.returncode == 1
    main_errors = [line for line in result.stderr.splitlines() if "main.cf, line" in line]
    master_errors = [line for line in result.stderr.splitlines() if "master.cf, line" in line]
    assert main_errors and master_errors, result.stderr
    assert "the mail system will not start" in result.stderr
    assert not instance.processes()


def test_reload_with_fatal_error_keeps_old_configuration(instance):
    instance.start()
    master = instance.master_pid()
    with open(os.path.join(instance.dir, "main.cf"), "a", encoding="utf-8") as main_cf:
        main_cf.write("myhostname = broken.example.test\nthis line has no equals sign\n")
    refused = instance.roost("reload")
    assert refused.returncode == 1
    assert "main.cf, line" in refused.stderr and "not reloading" in refused.stderr

    os.kill(master, signal.SIGHUP)  # what `kill -HUP` or an init system would do
    assert wait_until(lambda: "the running configuration stays in effect" in instance.maillog(), 5)
    assert re.search(rf"postfix/master\[{master}\]: error: \S+main\.cf, line \d+: ", instance.maillog())
    assert "mail.example.test" in smtp_greeting(instance.smtp_port)
    assert instance.master_pid() == master
    assert instance.roost("stop").returncode == 0


def test_privileges_dropped_to_mail_owner(instance):
    if os.geteuid() == 0:
        instance.edit("main.cf", "mail_owner = root", "mail_owner = nobody")
        expected = pwd.getpwnam("nobody").pw_uid
    else:
        expected = os.getuid()  # mail_owner is this user: nothing to drop
    instance.start()
    master = instance.master_pid()
    workers = children_of(master)
    assert workers
    for pid in [master, *workers]:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            uids = next(line for line in status if line.startswith("Uid:")).split()[1:]
        assert uids == [str(expected)] * 4, (pid, uids)
    # (serving mail as an unprivileged mail_owner needs state it can reach, unlike this
    # pytest tmp_path: tests/e2e/test_system_layout.py does the whole job that way)
    assert instance.roost("stop").returncode == 0
    assert not alive(master)
    instance.start()  # a pid file the unprivileged master could not remove is taken over
    assert instance.roost("stop").returncode == 0


def test_start_fg_serves_until_sigterm(instance):
    process = subprocess.Popen([*roost_cmd(), "-c", instance.dir, "start-fg"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "is running: PID:" in line:
                break
        text = "".join(lines)
        assert f"listening: {instance.smtp_port} (smtpd) on 127.0.0.1:{instance.smtp_port}" in text
        assert re.search(r"postfix/master\[\d+\]: daemon started", text)
        assert smtp_greeting(instance.smtp_port).startswith("220 ")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        rest = process.stderr.read()
        assert "terminating on signal 15" in rest
        assert re.search(r"postfix/smtpd\[\d+\]: connect from (unknown|localhost)\[127\.0\.0\.1\]",
                         text + rest)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
        process.stdout.close()


PLUGIN_MASTER = """
import sys
from roost.master import services
from roost.master.master import run_master

def make_service(context):
    greeting = f"hello from {context.handler} for {context.name}"

    async def handle(conn):
        conn.writer.write(f"{greeting} as {conn.settings.get('myhostname')} to {conn.peer_host}\\r\\n".encode())
        await conn.writer.drain()
        conn.writer.write((await conn.reader.readline()).upper())
        await conn.writer.drain()
    return handle

services.register_handler("smtpd", make_service)
sys.exit(run_master(sys.argv[1], foreground=True, console_fd=2))
"""


def test_registered_handler_serves_connections(instance):
    """A protocol implementation plugs in through the registry (roost.master.services)."""
    import sys

    process = subprocess.Popen([sys.executable, "-c", PLUGIN_MASTER, instance.dir],
                               stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if "is running: PID:" in line:
                break
        client = LineClient(instance.smtp_port)
        assert client.line() == f"hello from smtpd for {instance.smtp_port} as mail.example.test to 127.0.0.1\r\n"
        assert client.command("echo me") == "ECHO ME\r\n"
        client.close()
        stop_foreground(process)
    finally:
        reap(process)


def test_every_listener_of_roost_init_answers(instance):
    """Each service `roost init` configures is bound and greets in its own protocol, over
    implicit TLS (with init's certificate) where configured."""
    import ssl

    instance.start()
    tls = ssl.create_default_context(cafile=os.path.join(instance.dir, "tls", "cert.pem"))

    def wrap(sock):
        return tls.wrap_socket(sock, server_hostname="mail.example.test")

    expected = {25: "220 mail.example.test ESMTP", 587: "220 mail.example.test ESMTP",
                465: "220 mail.example.test ESMTP", 24: "220 ",
                143: "* OK [CAPABILITY IMAP4rev1 ", 993: "* OK [CAPABILITY IMAP4rev1 ",
                110: "+OK ", 995: "+OK "}
    for standard, start in expected.items():
        client = LineClient(instance.base + standard, wrap=wrap if standard in (465, 993, 995) else None)
        try:
            assert client.line().startswith(start), standard
        finally:
            client.close()
    auth = socket.socket(socket.AF_UNIX)
    auth.settimeout(10)
    auth.connect(os.path.join(instance.dir, "spool", "private", "auth"))
    greeting = b""
    while not greeting.endswith(b"DONE\n") and (chunk := auth.recv(1000)):
        greeting += chunk
    # roost.net.auth serves the socket: Dovecot's auth handshake, PLAIN and LOGIN offered.
    assert greeting.startswith(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\t"), greeting
    auth.close()
    assert instance.roost("stop").returncode == 0
    assert not os.path.exists(os.path.join(instance.dir, "spool", "private", "auth"))


FAILING_MASTER = """
import sys
from roost.master import services
from roost.master.master import run_master

def make_service(context):
    raise RuntimeError("cannot start")

services.register_handler("smtpd", make_service)
sys.exit(run_master(sys.argv[1], foreground=True, console_fd=2))
"""


def test_worker_failing_at_startup_is_throttled(instance):
    """A worker that dies before serving is restarted after 1 s, then 2 s (doubling)."""
    import sys
    import time

    instance.set_maxproc(str(instance.smtp_port), "1")
    process = subprocess.Popen([sys.executable, "-c", FAILING_MASTER, instance.dir],
                               stderr=subprocess.PIPE, text=True)
    try:
        seen: list[float] = []
        failure_lines = []
        label = f"roost/smtpd (service {instance.smtp_port}): bad command startup -- throttling"
        for line in process.stderr:
            if f"fatal: worker of service {instance.smtp_port}:" in line:
                failure_lines.append(line)
            if label in line:
                seen.append(time.monotonic())
                if len(seen) == 3:
                    break
        assert re.search(rf"postfix/smtpd\[\d+\]: fatal: worker of service {instance.smtp_port}: "
                         "RuntimeError: cannot start", failure_lines[0])
        assert 0.8 <= seen[1] - seen[0] and 1.8 <= seen[2] - seen[1]
        stop_foreground(process)
    finally:
        reap(process)


def test_reload_binds_new_and_closes_removed_listeners(instance):
    from tests.conftest import port_free

    moved = next(port for port in range(instance.base + 26, instance.base + 999) if port_free(port))
    instance.start()
    instance.edit("master.cf", f"\n{instance.smtp_port} ", f"\n{moved} ")
    assert instance.roost("reload").returncode == 0

    def old_port_closed():
        try:
            smtp_greeting(instance.smtp_port)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False  # caught while the last copy of the socket was closing: try again
        return False

    assert wait_until(old_port_closed, 10)
    assert smtp_greeting(moved).startswith("220 mail.example.test ESMTP")
    assert instance.roost("stop").returncode == 0
    assert port_free(moved) and port_free(instance.smtp_port)


def test_dovecot_log_path_gets_dovecot_lines(instance):
    """With Dovecot's log_path set, Dovecot-side lines go there in Dovecot's own format;
    Postfix-side lines stay in the mail log."""
    log_path = os.path.join(instance.dir, "dovecot.log")
    with open(os.path.join(instance.dir, "dovecot.conf"), "a", encoding="utf-8") as conf:
        conf.write(f"log_path = {log_path}\n")
    instance.start()
    client = LineClient(instance.base + 143)
    assert client.line().startswith("* OK [CAPABILITY ")
    client.close()
    smtp_greeting(instance.smtp_port)
    assert wait_until(lambda: os.path.exists(log_path) and "imap-login" in open(log_path).read(), 5)
    assert re.search(r"^\w{3} \d\d \d\d:\d\d:\d\d imap-login: Info: Disconnected: Connection closed "
                     r"\(no auth attempts in \d+ secs\): user=<>, rip=127\.0\.0\.1, lip=127\.0\.0\.1, "
                     r"secured, session=<[^>]+>$", open(log_path).read(), re.M)
    assert "postfix/smtpd[" not in open(log_path).read()
    assert wait_until(lambda: " postfix/smtpd[" in instance.maillog(), 5)
    assert "imap-login" not in instance.maillog().replace("service imap-login/", "")
    assert instance.roost("stop").returncode == 0



def stop_foreground(process) -> None:
    """Stop a `start-fg` master with SIGTERM and require a clean exit."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0


def reap(process) -> None:
    """Whatever happened, leave no `start-fg` master behind."""
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stderr.close()


BACKGROUND_MASTER = """
import asyncio, os, sys
from roost.master import services
from roost.master.master import run_master

def make_service(context):
    async def handle(conn):
        pass

    async def background(stopping):
        marker = os.path.join(sys.argv[1], "qmgr-" + str(os.getpid()))
        with open(marker, "w") as f:
            f.write(context.name)
        await stopping.wait()
        with open(marker, "a") as f:
            f.write(" stopped")

    handle.background = background
    return handle

services.register_handler("qmgr", make_service)
sys.exit(run_master(sys.argv[1], foreground=True, console_fd=2))
"""


def test_background_service_runs_once_and_stops_cleanly(instance):
    """master.cf's `qmgr unix ... qmgr` becomes one socket-less worker running its
    `background` coroutine until the master stops (roost.master.plan.background_services)."""
    import sys

    process = subprocess.Popen([sys.executable, "-c", BACKGROUND_MASTER, instance.dir],
                               stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if "is running: PID:" in line:
                break
        markers = wait_until(lambda: [n for n in os.listdir(instance.dir) if n.startswith("qmgr-")])
        assert len(markers) == 1, markers
        stop_foreground(process)
        with open(os.path.join(instance.dir, markers[0])) as marker:
            assert marker.read() == "qmgr stopped"
    finally:
        reap(process)


def test_dovecot_ssl_min_protocol_is_applied_to_imaps(instance):
    """ssl_min_protocol = TLSv1.3 (dovecot.conf): a client that stops at TLS 1.2 is refused
    on imaps, a TLS 1.3 client is served; an unknown value leaves the listener without TLS
    and says so in the log, as a missing certificate does."""
    import ssl

    with open(os.path.join(instance.dir, "dovecot.conf"), "a") as conf:
        conf.write("ssl_min_protocol = TLSv1.3\n")
    instance.start()
    port = instance.base + 993

    def handshake(maximum):
        context = ssl.create_default_context(cafile=os.path.join(instance.dir, "tls", "cert.pem"))
        context.maximum_version = maximum
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="mail.example.test") as tls:
                return tls.version(), tls.recv(100)

    version, greeting = handshake(ssl.TLSVersion.TLSv1_3)
    assert version == "TLSv1.3" and greeting.startswith(b"* OK ")
    with pytest.raises(ssl.SSLError):
        handshake(ssl.TLSVersion.TLSv1_2)
    assert instance.roost("stop").returncode == 0
    with open(os.path.join(instance.dir, "dovecot.conf"), "a") as conf:
        conf.write("ssl_min_protocol = TLSv9\n")
    instance.start()
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake(ssl.TLSVersion.TLSv1_3)
    assert "Unknown ssl_min_protocol setting 'TLSv9'; connections are closed" in instance.maillog()
    assert instance.roost("stop").returncode == 0
