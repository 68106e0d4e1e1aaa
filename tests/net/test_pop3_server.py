"""Python's poplib against a whole roost server (`roost init` + `roost start`): every POP3
command, the response codes, STLS and pop3s, UIDLs stable across sessions and a restart, a
dropped connection in the middle of RETR, and the log lines in the mail log.

dovecot.conf gets `pop3_lock_session = yes` (for [IN-USE]); messages are dropped into the
Maildir's new/ as an MDA would. The instance is stopped by the test (`roost stop`, then
SIGKILL by pid for anything left).
"""

from __future__ import annotations

import base64
import os
import poplib
import re
import signal
import socket
import ssl
import time

import pytest

from tests.conftest import free_port_base, run_roost
from tests.interop.test_postfix_sasl import _processes_with
from tests.master.helpers import kill_quietly, wait_until

USER = "alice@example.test"
PASSWORD = "Secret-pw1"
BIG_LINES = 60000  # a ~3 MB message: streamed, never whole in memory


def message(number: int, body: bytes = b"") -> bytes:
    return (b"From: sender@example.test\nTo: alice@example.test\nSubject: message %d\n\n"
            b"line one\n.line starting with a dot\n.\nlast line %d\n" % (number, number) + body)


class Roost:
    def __init__(self, base_dir: str, port_base: int):
        self.dir = os.path.join(base_dir, "roost")
        self.base = port_base
        self.pop3 = port_base + 110
        self.pop3s = port_base + 995
        self.maildir = os.path.join(self.dir, "mail", "example.test", "alice", "Maildir")

    def roost(self, *args: str):
        return run_roost("-c", self.dir, *args, timeout=60)

    def start(self) -> None:
        result = self.roost("start")
        assert result.returncode == 0, result.stderr
        assert wait_until(lambda: _port_open(self.pop3), 10)

    def stop(self) -> None:
        self.roost("stop")
        if not wait_until(lambda: not _processes_with(self.dir), 10):
            for pid in _processes_with(self.dir):
                kill_quietly(pid, signal.SIGKILL)

    def maillog(self) -> str:
        path = os.path.join(self.dir, "data", "maillog")
        return open(path, encoding="utf-8", errors="replace").read() if os.path.exists(path) else ""

    def deliver(self, name: str, data: bytes) -> None:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.maildir, sub), exist_ok=True)
        path = os.path.join(self.maildir, "tmp", name)
        with open(path, "wb") as out:
            out.write(data)
        os.rename(path, os.path.join(self.maildir, "new", name))

    def client(self) -> poplib.POP3:
        pop = poplib.POP3("127.0.0.1", self.pop3, timeout=30)
        pop.user(USER)
        assert pop.pass_(PASSWORD) == b"+OK Logged in."
        return pop


class SourcePOP3(poplib.POP3):
    """poplib.POP3 connecting from a chosen loopback address (to play another client)."""

    def __init__(self, source: str, port: int):
        self.source = source
        super().__init__("127.0.0.1", port, timeout=30)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture(scope="module")
def roost(tmp_path_factory):
    inst = Roost(str(tmp_path_factory.mktemp("pop3")), free_port_base())
    try:
        init = run_roost("init", inst.dir, "--port-base", str(inst.base), "--user",
                         f"{USER}:{PASSWORD}")
        assert init.returncode == 0, init.stderr
        with open(os.path.join(inst.dir, "dovecot.conf"), "a", encoding="utf-8") as conf:
            # 127.0.0.3 plays a trusted network: its failed logins raise no per-IP penalty,
            # which would slow every later login from that address.
            conf.write("pop3_lock_session = yes\nauth_failure_delay = 0\n"
                       "login_trusted_networks = 127.0.0.3\n")
        inst.start()
        yield inst
    finally:
        inst.stop()


@pytest.fixture
def mailbox(roost):
    """Three messages and a big one in alice's INBOX, nothing else."""
    pop = roost.client()
    for number in range(1, pop.stat()[0] + 1):
        pop.dele(number)
    pop.quit()
    for number in (1, 2, 3):
        roost.deliver(f"{1000000000 + number}.M{number}P1.test", message(number))
    big = message(4, b"".join(b".%05d dotted line of the big message\n" % n
                              for n in range(BIG_LINES)))
    roost.deliver("1000000004.M4P1.test", big)
    return big


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def test_every_command(roost, mailbox):
    pop = poplib.POP3("127.0.0.1", roost.pop3, timeout=30)
    assert pop.getwelcome() == b"+OK Dovecot (Debian) ready."
    capabilities = pop.capa()
    assert {"TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS"} <= \
        set(capabilities)
    assert capabilities["SASL"] == ["PLAIN", "LOGIN"]
    pop.user(USER)
    assert pop.pass_(PASSWORD) == b"+OK Logged in."
    sizes = [len(crlf(message(n))) for n in (1, 2, 3)] + [len(crlf(mailbox))]
    assert pop.stat() == (4, sum(sizes))
    response, listing, _octets = pop.list()
    assert response == b"+OK 4 messages:"
    assert listing == [b"%d %d" % (n + 1, size) for n, size in enumerate(sizes)]
    assert pop.list(2) == b"+OK 2 %d" % sizes[1]
    uidls = pop.uidl()[1]
    assert len(uidls) == 4 and all(re.fullmatch(rb"\d [0-9a-f]{16}", line) for line in uidls)
    assert pop.uidl(3) == b"+OK " + uidls[2]
    # poplib undoes the dot-stuffing: the lines must come back exactly as stored.
    response, lines, octets = pop.retr(1)
    assert response == b"+OK %d octets" % sizes[0]
    assert lines == message(1).rstrip(b"\n").split(b"\n")
    response, lines, _ = pop.retr(4)
    assert b"\r\n".join(lines) + b"\r\n" == crlf(mailbox)
    response, lines, _ = pop.top(2, 1)
    assert lines == message(2).split(b"\n")[:5]
    assert pop.noop() == b"+OK"
    assert pop.dele(1) == b"+OK Marked to be deleted."
    with pytest.raises(poplib.error_proto, match=r"-ERR Message is deleted\."):
        pop.retr(1)
    with pytest.raises(poplib.error_proto, match=r"-ERR There's no message 9\."):
        pop.list(9)
    assert pop.stat() == (3, sum(sizes[1:]))
    assert pop.rset() == b"+OK"
    assert pop.stat() == (4, sum(sizes))
    pop.dele(2)
    assert pop.quit() == b"+OK Logging out, messages deleted."
    again = roost.client()
    assert again.stat() == (3, sizes[0] + sizes[2] + sizes[3])
    assert again.uidl()[1] == [b"%d %s" % (n + 1, line.split()[1])
                               for n, line in enumerate(uidls[:1] + uidls[2:])]
    assert again.quit() == b"+OK Logging out."
    log = roost.maillog()
    assert re.search(r"dovecot: pop3-login: Login: user=<alice@example.test>, method=PLAIN, "
                     r"rip=127\.0\.0\.1, lip=127\.0\.0\.1, mpid=\d+, secured, session=<\S{16}>",
                     log)
    assert re.search(r"dovecot: pop3\(alice@example.test\)<\d+><\S{16}>: Disconnected: Logged out "
                     r"top=1/\d+, retr=2/\d+, del=1/4, size=\d+", log)


def test_response_codes(roost, mailbox):
    pop = SourcePOP3("127.0.0.3", roost.pop3)
    pop.user(USER)
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[AUTH\] Authentication failed\.'"):
        pop.pass_("wrong")
    pop.user("nobody@example.test")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[AUTH\] Authentication failed\.'"):
        pop.pass_(PASSWORD)
    pop.quit()
    first = roost.client()
    second = poplib.POP3("127.0.0.1", roost.pop3, timeout=30)
    second.user(USER)
    with pytest.raises(poplib.error_proto,
                       match=r"-ERR \[IN-USE\] Mailbox is locked by another POP3 session\."):
        second.pass_(PASSWORD)
    first.quit()
    third = roost.client()  # the lock went with the first session
    third.quit()
    # An outsider without TLS may not send a password (disable_plaintext_auth = yes).
    outsider = socket.create_connection(("127.0.0.1", roost.pop3), timeout=10,
                                        source_address=("127.0.0.2", 0))
    reader = outsider.makefile("rb")
    reader.readline()
    outsider.sendall(b"USER alice@example.test\r\n")
    assert reader.readline() == (b"-ERR [AUTH] Plaintext authentication disallowed on "
                                 b"non-secure (SSL/TLS) connections.\r\n")
    outsider.sendall(b"AUTH PLAIN\r\n")
    assert reader.readline() == b"-ERR [AUTH] Plaintext authentication disabled.\r\n"
    reader.close()
    outsider.close()
    assert wait_until(lambda: "tried to use disallowed plaintext auth" in roost.maillog(), 5)


def test_stls_and_pop3s(roost, mailbox):
    pop = SourcePOP3("127.0.0.2", roost.pop3)  # not trusted: needs TLS first
    assert "USER" not in pop.capa()
    assert pop.stls(_insecure_context()).startswith(b"+OK Begin TLS negotiation now.")
    assert "USER" in pop.capa() and "STLS" not in pop.capa()
    pop.user(USER)
    assert pop.pass_(PASSWORD) == b"+OK Logged in."
    assert pop.stat()[0] == 4
    pop.quit()
    secure = poplib.POP3_SSL("127.0.0.1", roost.pop3s, context=_insecure_context(), timeout=30)
    assert "STLS" not in secure.capa()
    # AUTH PLAIN with an initial response (RFC 5034).
    token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert secure._shortcmd(f"AUTH PLAIN {token}") == b"+OK Logged in."
    assert secure.stat()[0] == 4
    secure.quit()
    assert wait_until(lambda: re.search(r"pop3-login: Login: user=<alice@example.test>, "
                                        r"method=PLAIN, rip=127\.0\.0\.2, lip=127\.0\.0\.1, "
                                        r"mpid=\d+, TLS, session=", roost.maillog()), 5)


def test_dropped_connection_mid_retr_loses_nothing(roost, mailbox):
    pop = roost.client()
    count, size = pop.stat()
    pop.dele(1)  # never applied: no QUIT
    pop.sock.sendall(b"RETR 4\r\n")
    assert pop.file.readline().startswith(b"+OK")
    pop.file.read(100000)  # part of the 3 MB message, then the client vanishes
    pop.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    pop.sock.close()
    pop.file.close()
    later = wait_until(lambda: _try_client(roost), 15)
    assert later.stat() == (count, size)
    later.quit()


def _try_client(roost):
    try:
        return roost.client()
    except poplib.error_proto:  # the dropped session may hold the lock a moment longer
        time.sleep(0.1)
        return None


def test_uidl_stable_across_sessions_and_restart(roost, mailbox):
    first = roost.client()
    uidls = first.uidl()[1]
    first.quit()
    second = roost.client()
    assert second.uidl()[1] == uidls
    second.quit()
    roost.stop()
    roost.start()
    third = roost.client()
    assert third.uidl()[1] == uidls
    third.quit()
