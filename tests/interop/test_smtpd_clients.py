"""Real SMTP clients against a whole roost server made by `roost init` and run with `start-fg`.

swaks (plain, PIPELINING, STARTTLS + AUTH PLAIN/LOGIN on submission, TLS-on-connect to
smtps), Python's smtplib, msmtp, BDAT over a raw socket, and a real Debian Postfix relaying
into roost (`relayhost = [127.0.0.1]:port`). Every message must come back `250 2.0.0 Ok:
queued as ID` and leave a queue file with that ID in roost's queue; roost's log must carry
Postfix's smtpd lines for it.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from tests.conftest import free_port_base, require_tool, roost_cmd, run_roost
from tests.master.helpers import wait_until
from tests.policy.postfix_oracle import PostfixOracle, Service

PASSWORD = "pw"
USER = "alice@example.test"


def client_name(address: str) -> str:
    """What Postfix would log for a loopback client: /etc/hosts' name, else unknown (no PTR
    for 127.0.0.2 in this test network)."""
    from roost.smtpd.hosts import HostsTable
    with open("/etc/hosts", encoding="utf-8") as hosts:
        table = HostsTable.parse(hosts.read())
    name = table.name_of(address)
    return name if name and address in table.addresses_of(name) else "unknown"


class Roost:
    def __init__(self, tmp_path):
        self.base = free_port_base()
        self.dir = str(tmp_path / "etc")
        done = run_roost("init", self.dir, "--port-base", str(self.base), "--user", f"{USER}:{PASSWORD}")
        assert done.returncode == 0, done.stderr
        self._edit("main.cf", "mynetworks = 127.0.0.0/8 [::1]/128", "mynetworks = 127.0.0.1/32")
        self.log_path = str(tmp_path / "roost.log")
        self.process = None

    def _edit(self, name: str, old: str, new: str) -> None:
        path = os.path.join(self.dir, name)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        assert old in text, f"{old!r} not in {name}"
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text.replace(old, new))

    @property
    def smtp(self) -> int:
        return self.base + 25

    @property
    def submission(self) -> int:
        return self.base + 587

    @property
    def smtps(self) -> int:
        return self.base + 465

    def start(self) -> None:
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen([*roost_cmd(), "-c", self.dir, "start-fg"], stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        for port in (self.smtp, self.submission):
            assert wait_until(lambda: _greets(port), 15), self.log()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def queued(self, queue_id: str) -> bool:
        for _root, _dirs, files in os.walk(os.path.join(self.dir, "spool")):
            if queue_id in files:
                return True
        return f"{queue_id}: client=" in self.log()


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return bool(sock.recv(100))
    except OSError:
        return False


@pytest.fixture(scope="module")
def roost(tmp_path_factory):
    server = Roost(tmp_path_factory.mktemp("roost"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


def swaks(*args: str) -> str:
    done = subprocess.run([require_tool("swaks"), "--hide-informational", *args], capture_output=True,
                          text=True, timeout=60)
    return done.stdout + done.stderr


def queue_id_of(transcript: str) -> str:
    match = re.search(r"250 2\.0\.0 Ok: (?:\d+ bytes )?queued as (\w+)", transcript)
    assert match, transcript
    return match.group(1)


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_swaks_plain_and_relay_refused_outside_mynetworks(roost):
    out = swaks("--server", f"127.0.0.1:{roost.smtp}", "--local-interface", "127.0.0.2",
                "--from", "x@outside.test", "--to", USER)
    assert roost.queued(queue_id_of(out))
    refused = swaks("--server", f"127.0.0.1:{roost.smtp}", "--local-interface", "127.0.0.2",
                    "--from", "x@outside.test", "--to", "bob@elsewhere.test", "--quit-after", "RCPT")
    assert "<** 554 5.7.1 <bob@elsewhere.test>: Relay access denied" in refused
    inside = swaks("--server", f"127.0.0.1:{roost.smtp}", "--from", "x@inside.test",
                   "--to", "bob@elsewhere.test", "--quit-after", "RCPT")
    assert "<-  250 2.1.5 Ok" in inside
    assert f"NOQUEUE: reject: RCPT from {client_name('127.0.0.2')}[127.0.0.2]: 554 5.7.1 <bob@elsewhere.test>: Relay access denied" \
        in roost.log()


def test_swaks_pipelining(roost):
    out = swaks("--server", f"127.0.0.1:{roost.smtp}", "--pipeline", "--from", "x@inside.test", "--to", USER)
    assert "PIPELINING" in out
    assert roost.queued(queue_id_of(out))


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_swaks_starttls_auth_on_submission(roost, mechanism):
    out = swaks("--server", f"127.0.0.1:{roost.submission}", "-tls", "--auth", mechanism,
                "--auth-user", USER, "--auth-password", PASSWORD, "--from", USER, "--to", "bob@elsewhere.test")
    assert "235 2.7.0 Authentication successful" in out
    queue_id = queue_id_of(out)
    assert roost.queued(queue_id)
    assert (f"{queue_id}: client={client_name('127.0.0.1')}[127.0.0.1], sasl_method={mechanism}, "
            f"sasl_username={USER}") in roost.log()


def test_submission_refuses_plaintext_and_bad_password(roost):
    out = swaks("--server", f"127.0.0.1:{roost.submission}", "--from", USER, "--to", "bob@elsewhere.test",
                "--quit-after", "MAIL")
    assert "530 5.7.0 Must issue a STARTTLS command first" in out
    bad = swaks("--server", f"127.0.0.1:{roost.submission}", "-tls", "--auth", "PLAIN", "--auth-user", USER,
                "--auth-password", "wrong", "--from", USER, "--to", "bob@elsewhere.test")
    assert "535 5.7.8 Error: authentication failed:" in bad


def test_swaks_tls_on_connect_to_smtps(roost):
    out = swaks("--server", f"127.0.0.1:{roost.smtps}", "--tlsc", "--auth", "PLAIN", "--auth-user", USER,
                "--auth-password", PASSWORD, "--from", USER, "--to", "bob@elsewhere.test")
    assert roost.queued(queue_id_of(out))


def test_smtplib_submission(roost):
    with smtplib.SMTP("127.0.0.1", roost.submission, timeout=20) as client:
        client.starttls(context=client_context())
        client.login(USER, PASSWORD)
        code, text = client.noop()
        assert code == 250
        client.sendmail(USER, ["carol@elsewhere.test", USER], b"Subject: smtplib\r\n\r\nhello\r\n")


def test_msmtp_submission(roost, tmp_path):
    msmtp = require_tool("msmtp")
    config = tmp_path / "msmtprc"
    config.write_text(f"""account roost
host 127.0.0.1
port {roost.submission}
tls on
tls_starttls on
tls_certcheck off
auth on
user {USER}
password {PASSWORD}
from {USER}
logfile {tmp_path}/msmtp.log
""")
    config.chmod(0o600)
    done = subprocess.run([msmtp, "-C", str(config), "-a", "roost", "dave@elsewhere.test"],
                          input=b"Subject: msmtp\r\n\r\nvia msmtp\r\n", capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "msmtp.log").read_text()
    match = re.search(r"smtpstatus=250 smtpmsg='250 2.0.0 Ok: queued as (\w+)'", log)
    assert match, log
    assert roost.queued(match.group(1))


def test_bdat_raw_socket_whole_server(roost):
    with socket.create_connection(("127.0.0.1", roost.smtp), timeout=10) as sock:
        stream = sock.makefile("rb")
        assert stream.readline().startswith(b"220 ")
        sock.sendall(b"EHLO bdat.test\r\n")
        ehlo = [stream.readline() for _ in range(11)]
        assert ehlo[-1] == b"250 CHUNKING\r\n"
        body = b"Subject: bdat\r\n\r\nchunked\r\n"
        sock.sendall(b"MAIL FROM:<x@inside.test>\r\nRCPT TO:<%s>\r\nBDAT %d LAST\r\n%s"
                     % (USER.encode(), len(body), body))
        replies = [stream.readline() for _ in range(3)]
        assert replies[:2] == [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"]
        match = re.match(rb"250 2\.0\.0 Ok: %d bytes queued as (\w+)\r\n" % len(body), replies[2])
        assert match, replies
        assert roost.queued(match.group(1).decode())


class RelayingPostfix(PostfixOracle):
    """The oracle instance with an smtp(8) client that relays everything to roost."""

    def write_main_cf(self) -> str:
        text = super().write_main_cf()
        path = os.path.join(self.etc, "master.cf")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("smtp      unix  -       -       n       -       -       smtp\n")
        return text


def test_postfix_relays_into_roost(roost):
    require_tool("postfix")
    port = free_port_base()
    postfix = RelayingPostfix([Service("relay", port + 25)], main_cf=(
        "myhostname = relay.postfix.test\nmydestination =\nmynetworks = 127.0.0.0/8\n"
        f"relayhost = [127.0.0.1]:{roost.smtp}\ndefault_transport = smtp\nrelay_transport = smtp\n"
        "smtp_tls_security_level = none\n"))
    postfix.start()
    try:
        with smtplib.SMTP("127.0.0.1", port + 25, timeout=20) as client:
            client.sendmail("sender@relay.postfix.test", [USER], b"Subject: via postfix\r\n\r\nrelayed\r\n")

        def relayed():
            match = re.search(r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent \(250 2\.0\.0 Ok: queued as (\w+)\)",
                              postfix.read_log())
            return match.group(1) if match else None
        queue_id = wait_until(relayed, 30)
        assert queue_id, postfix.read_log()
        assert roost.queued(queue_id)
        assert f"{queue_id}: client={client_name('127.0.0.1')}[127.0.0.1]" in roost.log()
    finally:
        postfix.stop()


def test_pflogsumm_reads_smtpd_lines(roost, tmp_path):
    """Debian's pflogsumm counts roost's smtpd connections, receptions and rejections."""
    tool = require_tool("pflogsumm")
    for _ in range(2):
        swaks("--server", f"127.0.0.1:{roost.smtp}", "--from", "x@inside.test", "--to", USER)
    swaks("--server", f"127.0.0.1:{roost.smtp}", "--local-interface", "127.0.0.2", "--from", "x@outside.test",
          "--to", "bob@elsewhere.test", "--quit-after", "RCPT")
    log = tmp_path / "smtpd.log"
    wait_until(lambda: roost.log().count("disconnect from") >= 3, 10)
    log.write_text(roost.log())
    report = subprocess.run([tool, "--smtpd-stats", str(log)], capture_output=True, text=True, timeout=60).stdout
    counts = {name: int(number) for number, name in
              re.findall(r"^\s+(\d+)\s+(received|rejected|connections)\b", report, re.M)}
    assert counts["connections"] >= 3 and counts["rejected"] >= 1, report
    assert "127.0.0.2" in report, report  # the refused client, per host
