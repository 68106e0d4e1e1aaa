"""An in-process roost POP3 server (roost.net.pop3) and a private Debian Dovecot for tests.

`write_setup(dir)` writes one dovecot.conf (passwd-file users, Maildirs under `dir/mail`,
a self-signed certificate, pop3 + pop3s listeners on given ports) that both servers read, so
a test can compare them on the same Maildir. `RoostPop3` serves it from an event loop on a
thread; `RealDovecot` runs `dovecot -F -c` (root only: it drops to dovecot/dovenull and the
mail user 5000, so `dir` must be traversable: see `traversable_dir`). Both are stopped by the
test, by pid for Dovecot.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.net.server import Connection, new_session_id
from roost.net.tls import server_context
from tests.conftest import RecordingLog, require_tool
from tests.master.helpers import alive, wait_until
from tests.support.processes import port_accepts, terminate

MAIL_UID = 5000
PASSWORD = "pw"
USERS = ("alice", "bob", "carol")

BASE_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
protocols = {protocols}
listen = {listen}
log_path = {dir}/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
last_valid_uid = {uid}
ssl = {ssl}
auth_mechanisms = plain login
auth_failure_delay = {failure_delay}
disable_plaintext_auth = {disable_plaintext_auth}
mail_location = maildir:{dir}/mail/%u/Maildir
{extra}
passdb {{
  driver = passwd-file
  args = {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={dir}/mail/%u
}}
"""
LOGIN_SERVICE = """\
service {protocol}-login {{
  inet_listener {protocol} {{
    port = {port}
  }}
  inet_listener {protocol}s {{
    port = {tls_port}
    ssl = yes
  }}
}}
"""


def dovecot_conf(directory, ports: dict[str, tuple[int, int]], *, ssl: str = "no",
                 failure_delay: str = "0", disable_plaintext_auth: str = "no",
                 listen: tuple[str, ...] = ("127.0.0.1",), extra: str = "",
                 uid: int = MAIL_UID) -> str:
    """The dovecot.conf the differential tests and benchmarks share: passwd-file users, a
    Maildir per user under DIR/mail, one login service per protocol in `ports`
    ({"imap": (port, tls_port)}; port 0 = no listener), private base_dir and log."""
    text = BASE_CONF.format(dir=directory, protocols=" ".join(ports), listen=", ".join(listen),
                            uid=uid, failure_delay=failure_delay, extra=extra,
                            ssl=ssl + (f"\nssl_cert = <{directory}/cert.pem\nssl_key = <{directory}/key.pem"
                                       if ssl != "no" else ""),
                            disable_plaintext_auth=disable_plaintext_auth)
    return text + "".join(LOGIN_SERVICE.format(protocol=protocol, port=port, tls_port=tls_port)
                          for protocol, (port, tls_port) in ports.items())


@contextmanager
def traversable_dir(prefix: str = "roost-pop3-"):
    """A fresh directory under /tmp that Dovecot's unprivileged processes can reach (pytest's
    tmp_path sits below a 0700 directory)."""
    base = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(base, 0o755)
    try:
        yield Path(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def make_certificate(directory: Path) -> None:
    subprocess.run([require_tool("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                    "-days", "30", "-keyout", str(directory / "key.pem"),
                    "-out", str(directory / "cert.pem"), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)


def write_setup(directory: Path, *, pop3_port: int = 0, pop3s_port: int = 0,
                failure_delay: str = "0", disable_plaintext_auth: str = "yes",
                lock: str = "yes", extra: str = "", certificate: bool = True,
                listen: tuple[str, ...] = ("127.0.0.1",), ssl: str = "yes",
                ports: dict[str, tuple[int, int]] | None = None) -> Path:
    """DIR/dovecot.conf (dovecot_conf; POP3 on the two ports unless `ports` names the
    login services), the passwd-file of USERS and the state directories."""
    directory = Path(directory)
    for name in ("run", "state", "mail"):
        (directory / name).mkdir(exist_ok=True)
    if certificate and not (directory / "cert.pem").exists():
        make_certificate(directory)
    (directory / "users").write_text("".join(f"{user}:{{PLAIN}}{PASSWORD}::::::\n"
                                             for user in USERS))
    os.chmod(directory / "users", 0o644)
    conf = directory / "dovecot.conf"
    conf.write_text(dovecot_conf(directory, ports or {"pop3": (pop3_port, pop3s_port)},
                                 ssl=ssl, failure_delay=failure_delay,
                                 disable_plaintext_auth=disable_plaintext_auth, listen=listen,
                                 extra=f"pop3_lock_session = {lock}\n{extra}"))
    return conf


def maildir(directory: Path, user: str = "alice") -> Path:
    path = Path(directory) / "mail" / user / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


def put_message(directory: Path, name: str, text: bytes, user: str = "alice") -> Path:
    """A message file dropped into new/ as an MDA would (LF line ends)."""
    path = maildir(directory, user) / "new" / name
    path.write_bytes(text)
    return path


def chown_mail(directory: Path) -> None:
    for root, dirs, files in os.walk(Path(directory) / "mail"):
        for name in dirs + files:
            os.chown(os.path.join(root, name), MAIL_UID, MAIL_UID)
    os.chown(Path(directory) / "mail", MAIL_UID, MAIL_UID)


class _Config:
    def __init__(self, dovecot):
        self.dovecot = dovecot


class RoostPop3:
    """roost.net.pop3 on 127.0.0.1 (a plain port and an implicit-TLS port), in its own loop."""

    def __init__(self, conf_path: Path, *, ports: tuple[int, int] = (0, 0), service_kwargs=None,
                 log=None, service_class=None):
        from roost.net.pop3 import Pop3Service

        diags = Diagnostics()
        dovecot = parse_dovecot_conf(str(conf_path), diags)
        assert not diags.has_fatal(), [str(d) for d in diags.items]
        directory = Path(conf_path).parent
        self.log = log or RecordingLog()
        self.context = server_context(str(directory / "cert.pem"), str(directory / "key.pem")) \
            if (directory / "cert.pem").exists() else None
        self.service = (service_class or Pop3Service)(_Config(dovecot), self.log, None,
                                                      **(service_kwargs or {}))
        self.stopping = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tasks: set = set()
        self.servers = []
        self.port = self._listen(ports[0], implicit_tls=False)
        self.tls_port = self._listen(ports[1], implicit_tls=True) if self.context else None

    def _listen(self, port: int, implicit_tls: bool) -> int:
        async def start():
            self.stopping = self.stopping or asyncio.Event()
            kwargs = {"ssl": self.context} if implicit_tls else {}
            server = await asyncio.start_server(self._client, "127.0.0.1", port, **kwargs)
            self.servers.append(server)
            return server.sockets[0].getsockname()[1]
        return asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    async def _client(self, reader, writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        conn = Connection(reader=reader, writer=writer, listener=None, config=None,
                          log=self.log, session_id=new_session_id(), peer_host=peer[0],
                          peer_port=peer[1], local_host=local[0], local_port=local[1],
                          tls=writer.get_extra_info("sslcontext") is not None,
                          ssl_context=self.context, stopping=self.stopping)
        try:
            await self.service.serve(conn)
        except (ConnectionError, asyncio.CancelledError, ssl.SSLError, TimeoutError):
            pass
        except Exception as error:  # noqa: BLE001 - recorded for the test to see
            self.log.error(f"unexpected {type(error).__name__}: {error}")
        finally:
            writer.close()
            self.tasks.discard(task)

    def lines(self, level: str = "info") -> list[str]:
        return [text for lvl, text in self.log.lines if lvl == level]

    def stop_gracefully(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)

    def close(self) -> None:
        async def stop():
            for server in self.servers:
                server.close()
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.wait(list(self.tasks), timeout=5)
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class FileLog:
    """A service logger writing `level<TAB>text` lines to a file (the subprocess server)."""

    def __init__(self, path: str):
        self.path = path

    def __getattr__(self, level: str):
        def write(text: str) -> None:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(f"{level}\t{text}\n".replace("\r", "\\r"))
        return write


class RoostImap(RoostPop3):
    """roost.net.imap in this process, on RoostPop3's loop and listeners."""

    def __init__(self, conf_path: Path, **kwargs):
        from roost.net.imap import ImapService

        super().__init__(conf_path, service_class=ImapService, **kwargs)


class RoostPop3Process:
    """roost.net.pop3 in a child process running as the mail user (as a real worker does,
    so the files it creates in a Maildir belong to that user, like Dovecot's). Stopped by pid."""

    def __init__(self, conf_path: Path, *, uid: int = MAIL_UID, addresses=("127.0.0.1",)):
        import sys

        self.log_path = str(Path(conf_path).parent / "roost-pop3.log")
        Path(self.log_path).touch()
        os.chown(self.log_path, uid, uid)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.net.pop3_harness", str(conf_path), str(uid),
             self.log_path, *addresses], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parents[2]))
        ready = self.process.stdout.readline().decode()
        if not ready.startswith("ready "):
            self.close()
            raise AssertionError(f"roost POP3 did not start: {ready}"
                                 f"{self.process.stdout.read().decode(errors='replace')}")
        self.port = int(ready.split()[1])
        self.tls_port = int(ready.split()[2])

    def lines(self, level: str = "info") -> list[str]:
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path, encoding="utf-8") as handle:
            return [line.rstrip("\n").split("\t", 1)[1] for line in handle
                    if line.startswith(level + "\t")]

    def close(self) -> None:
        terminate(self.process, 10)
        if self.process.stdout:
            self.process.stdout.close()


def _serve_as(conf_path: str, uid: int, log_path: str, addresses: list[str]) -> None:
    """The child of RoostPop3Process: listen (all addresses on one port), drop to `uid`, serve."""
    from roost.config.dovecot_settings import dovecot_settings
    from roost.login import userip
    from roost.net.pop3 import Pop3Service

    directory = Path(conf_path).parent
    diags = Diagnostics()
    dovecot = parse_dovecot_conf(conf_path, diags)
    context = server_context(str(directory / "cert.pem"), str(directory / "key.pem"))
    log = FileLog(log_path)

    async def main() -> None:
        service = Pop3Service(_Config(dovecot), log, None)
        stopping = asyncio.Event()

        def client(implicit_tls: bool):
            async def on_client(reader, writer):
                peer, local = writer.get_extra_info("peername"), writer.get_extra_info("sockname")
                conn = Connection(reader=reader, writer=writer, listener=None, config=None,
                                  log=log, session_id=new_session_id(), peer_host=peer[0],
                                  peer_port=peer[1], local_host=local[0], local_port=local[1],
                                  tls=implicit_tls, ssl_context=context, stopping=stopping)
                try:
                    await service.serve(conn)
                except Exception as error:  # noqa: BLE001
                    log.error(f"unexpected {type(error).__name__}: {error}")
                finally:
                    writer.close()
            return on_client

        plain = await asyncio.start_server(client(False), addresses[0], 0)
        port = plain.sockets[0].getsockname()[1]
        servers = [plain] + [await asyncio.start_server(client(False), address, port)
                             for address in addresses[1:]]
        tls = await asyncio.start_server(client(True), addresses[0], 0, ssl=context)
        _import_everything()  # the interpreter's files may be unreadable after setuid
        userip.prepare(dovecot_settings(dovecot).base_dir, uid, uid)  # as the master does
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
        print(f"ready {port} {tls.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def _import_everything() -> None:
    from roost.master.preload import preload

    preload()


class RealDovecot:
    """Debian's Dovecot on the same dovecot.conf (root only), stopped by pid."""

    def __init__(self, conf_path: Path, pop3_port: int):
        self.conf = Path(conf_path)
        self.directory = self.conf.parent
        self.port = pop3_port
        output = open(self.directory / "dovecot-start.log", "wb")
        self.process = subprocess.Popen([require_tool("dovecot"), "-F", "-c", str(self.conf)],
                                        stdin=subprocess.DEVNULL, stdout=output,
                                        stderr=subprocess.STDOUT)
        output.close()
        if not wait_until(lambda: port_accepts(pop3_port, 0.5), 15):
            self.close()
            raise AssertionError("Dovecot did not start: "
                                 + (self.directory / "dovecot-start.log").read_text()
                                 + self.log_text())

    def log_text(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        terminate(self.process, 15)
        wait_until(lambda: not alive(self.process.pid), 5)


def _drain(sock, first_wait: float, idle: float) -> tuple[bytes, bool]:
    """What the server sends until it goes quiet for `idle` seconds (the first octet is
    awaited up to `first_wait`), and whether the connection is still open."""
    received = b""
    sock.settimeout(first_wait)
    while True:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            return received, True
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        sock.settimeout(idle)
        if not data:
            return received + b"<closed>", False
        received += data


def _insecure_tls(sock):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(sock)


def talk(port: int, chunks: list[bytes], *, source: str | None = None, idle: float = 0.4,
         tls_port: bool = False, host: str = "127.0.0.1", first_wait: float = 5.0) -> bytes:
    """Send each chunk after the answer to the previous one went quiet (the first octet of
    an answer is awaited up to `first_wait` seconds: a loaded machine may be slow to start
    a server process); the whole transcript."""
    sock = socket.create_connection((host, port), timeout=10,
                                    source_address=(source, 0) if source else None)
    if tls_port:
        sock = _insecure_tls(sock)
    try:
        received, open_ = _drain(sock, first_wait, idle)
        if open_:
            for chunk in chunks:
                try:
                    sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    received += b"<closed>"
                    break
                answer, open_ = _drain(sock, first_wait, idle)
                received += answer
                if not open_:
                    break
    finally:
        sock.close()
    return received


def talk_stls(port: int, before: list[bytes], after: list[bytes], *, source: str | None = None,
              idle: float = 0.3) -> bytes:
    """`before` in clear text, then STLS, the TLS handshake and `after` inside TLS."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0) if source else None)
    reader = sock.makefile("rb")
    received = reader.readline()
    for chunk in before:
        sock.sendall(chunk)
        sock.settimeout(5)
        received += reader.readline()
        if chunk.upper().startswith(b"CAPA"):
            while not received.endswith(b"\r\n.\r\n"):
                received += reader.readline()
    sock.sendall(b"STLS\r\n")
    received += reader.readline()
    reader.close()
    tls = _insecure_tls(sock)
    received += b"<tls>"
    try:
        for chunk in after:
            tls.sendall(chunk)
            answer, open_ = _drain(tls, 5.0, idle)
            received += answer
            if not open_:
                break
    finally:
        tls.close()
    return received


def wait_for(predicate, timeout: float = 5.0):
    return wait_until(predicate, timeout, 0.02)


if __name__ == "__main__":
    import sys

    _serve_as(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:])
