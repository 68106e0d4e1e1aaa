"""A private Debian Postfix used as the oracle for SMTP restriction replies.

One Postfix instance (own config, queue and data directories under a 0755 directory in /tmp,
loopback high ports) serves every case of a test module: each case is an `smtpd` service on
its own port with `-o { name = value }` overrides, and, when the case changes the address
classes (mydestination, relay_domains, virtual_*), its own `trivial-rewrite` service
(`rewrite_service_name`), because smtpd asks trivial-rewrite for the address class and
trivial-rewrite reads its own parameters, not smtpd's. Mail is never delivered: every
transport is `discard`. SASL logins go to a tiny Dovecot-auth-protocol server in a thread
(`FakeDovecotAuth`: password "pw" for every user). DNS is never consulted by the cases:
`smtpd_peername_lookup = no` (the client is `unknown[127.0.0.2]`).

`dialogue(port, commands, source)` plays an SMTP conversation from `source` (127.0.0.1 is in
mynetworks, 127.0.0.2 is not) and returns one reply (`"250 2.1.5 Ok"`, multi-line replies
joined with "\n") per command; a `DATA` answered 354 is followed by a short message.
Needs root (Postfix's master runs as root and its daemons as `postfix`).
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field

from tests.support.postfix import PrivatePostfix

MESSAGE = b"Subject: roost policy matrix\r\n\r\nhello\r\n.\r\n"
PASSWORD = "pw"

SYSLOG_NAME = "postfix-roost-policy"
MAIN_CF = """\
default_transport = discard
local_transport = discard
relay_transport = discard
virtual_transport = discard
smtpd_sasl_type = dovecot
smtpd_sasl_path = {auth_socket}
smtpd_tls_security_level = none
smtpd_client_connection_count_limit = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 1000
smtpd_hard_error_limit = 1000
biff = no
"""

# Parameters that trivial-rewrite reads to classify an address: a case setting one of them
# gets its own rewrite service with the same overrides.
REWRITE_PARAMETERS = frozenset({
    "mydestination", "relay_domains", "virtual_alias_domains", "virtual_mailbox_domains",
    "virtual_alias_maps", "virtual_mailbox_maps", "myhostname", "mydomain", "myorigin",
    "inet_interfaces", "proxy_interfaces", "allow_percent_hack", "swap_bangpath",
    "resolve_dequoted_address", "resolve_null_domain", "resolve_numeric_domain",
    "append_dot_mydomain", "recipient_delimiter", "relayhost", "parent_domain_matches_subdomains",
})


def _override_args(overrides: dict[str, str]) -> str:
    return " ".join(f"-o {{ {name} = {value} }}" if value else f"-o {name}="
                    for name, value in overrides.items())


@dataclass
class Service:
    name: str
    port: int
    overrides: dict[str, str] = field(default_factory=dict)

    def master_cf_lines(self) -> str:
        overrides = dict(self.overrides)
        lines = []
        if REWRITE_PARAMETERS & set(overrides):
            rewrite = f"rw{self.port}"
            rewrite_overrides = {k: v for k, v in overrides.items() if k in REWRITE_PARAMETERS}
            lines.append(f"{rewrite} unix - - n - - trivial-rewrite {_override_args(rewrite_overrides)}")
            overrides["rewrite_service_name"] = rewrite
        lines.append(f"127.0.0.1:{self.port} inet n - n - - smtpd -o syslog_name=pf/{self.name} "
                     f"{_override_args(overrides)}")
        return "\n".join(lines) + "\n"


class FakeDovecotAuth:
    """Dovecot auth protocol 1.2, server side, just enough for Postfix's smtpd: every PLAIN
    or LOGIN login with password "pw" succeeds as the given user name."""

    def __init__(self, path: str):
        self.path = path
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        os.chmod(path, 0o666)
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.server.close()

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.server.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            conn.sendall(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n"
                         b"SPID\t1\nCUID\t1\nCOOKIE\t" + b"0" * 32 + b"\nDONE\n")
            buffer = b""
            pending: dict[str, list] = {}
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    answer = self._answer(line.decode(), pending)
                    if answer:
                        conn.sendall(answer.encode() + b"\n")
        except OSError:
            return
        finally:
            conn.close()

    def _answer(self, line: str, pending: dict) -> str | None:
        fields = line.split("\t")
        if fields[0] == "AUTH":
            request, mech = fields[1], fields[2].upper()
            resp = next((f[5:] for f in fields if f.startswith("resp=")), None)
            if mech == "PLAIN":
                return self._plain(request, resp) if resp is not None else f"CONT\t{request}\t"
            pending[request] = []
            return f"CONT\t{request}\t{base64.b64encode(b'Username:').decode()}"
        if fields[0] == "CONT":
            request, data = fields[1], base64.b64decode(fields[2] if len(fields) > 2 else "")
            if request not in pending:
                return self._plain(request, fields[2])
            pending[request].append(data.decode())
            if len(pending[request]) == 1:
                return f"CONT\t{request}\t{base64.b64encode(b'Password:').decode()}"
            user, password = pending.pop(request)
            return self._verdict(request, user, password)
        return None

    def _plain(self, request: str, resp: str) -> str:
        try:
            _, user, password = base64.b64decode(resp).decode().split("\0")
        except ValueError:
            return f"FAIL\t{request}"
        return self._verdict(request, user, password)

    @staticmethod
    def _verdict(request: str, user: str, password: str) -> str:
        if password == PASSWORD:
            return f"OK\t{request}\tuser={user}"
        return f"FAIL\t{request}\tuser={user}"


class PostfixOracle(PrivatePostfix):
    """See the module docstring. `main_cf` is appended to the fixed base configuration."""

    def __init__(self, services: list[Service], main_cf: str = ""):
        if os.geteuid() != 0:
            raise RuntimeError("the Postfix oracle needs root: Postfix's master starts as root")
        super().__init__(main_cf, syslog_name=SYSLOG_NAME, prefix="roost-policy-oracle-")
        self.FIXED_MAIN_CF = MAIN_CF.format(auth_socket=self.path("auth"))
        self.tables = self.path("tables")
        self.smtpd_services = services
        self.auth: FakeDovecotAuth | None = None
        os.makedirs(self.tables, exist_ok=True)
        os.chmod(self.tables, 0o755)

    def table_path(self, name: str) -> str:
        return os.path.join(self.tables, name)

    def listener_lines(self) -> str:
        return "".join(service.master_cf_lines() for service in self.smtpd_services)

    def listening_ports(self) -> list[int]:
        return [service.port for service in self.smtpd_services]

    def write_main_cf(self) -> str:
        """main.cf and master.cf (subclasses add to master.cf here); the main.cf text."""
        return PrivatePostfix.write_config(self)

    def write_config(self) -> str:
        return self.write_main_cf()

    def start(self) -> None:
        self.auth = FakeDovecotAuth(self.path("auth"))
        # `postfix start` runs postfix-script's fatal checks and creates the queue itself
        super().start(check=False)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.auth is not None:
                self.auth.close()


def _read_reply(stream) -> str:
    lines = []
    while True:
        line = stream.readline()
        if not line:
            raise ConnectionError("connection closed: " + " | ".join(lines))
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        lines.append(text)
        if len(text) < 4 or text[3] != "-":
            return "\n".join(lines)


def dialogue(port: int, commands: list[str], source: str = "127.0.0.2", timeout: float = 20) -> list[str]:
    """Replies to `commands` (the greeting is not included); stops early when the server
    closes the connection (the remaining replies are "(closed)")."""
    replies: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as conn:
        stream = conn.makefile("rb")
        _read_reply(stream)
        for command in commands:
            try:
                conn.sendall(command.encode("utf-8") + b"\r\n")
                reply = _read_reply(stream)
                if command.upper() == "DATA" and reply.startswith("354"):
                    conn.sendall(MESSAGE)
                    reply = reply + "\n" + _read_reply(stream)
            except (ConnectionError, OSError):
                reply = "(closed)"
            replies.append(reply)
            if reply == "(closed)":
                replies += ["(closed)"] * (len(commands) - len(replies))
                break
    return replies


def auth_plain(user: str, password: str = PASSWORD) -> str:
    return "AUTH PLAIN " + base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def postmap(kind: str, path: str, config_dir: str) -> None:
    """Compile `kind:path` with Debian's postmap (FILE.db next to roost's FILE.roostdb)."""
    done = subprocess.run(["postmap", "-c", config_dir, f"{kind}:{path}"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"postmap {kind}:{path}: {done.stderr}")
