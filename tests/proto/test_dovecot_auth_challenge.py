"""CRAM-MD5 and SCRAM over the auth socket: roost answers like Debian's Dovecot 2.3.

Both servers get one dovecot.conf offering PLAIN, CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256
and a passwd-file whose users store their password in different schemes (plaintext,
`{CRAM-MD5}`, `{SCRAM-SHA-256}`, `{SHA512-CRYPT}`). A client written here from RFC 2195 and
RFC 5802 runs each exchange against both; the outcome (OK or FAIL and its `user=`) and the
Info lines must be the same. The challenges are random, so the transcripts themselves differ.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import socket

import pytest

from roost.auth import schemes
from tests.master.helpers import wait_until
from tests.proto.test_dovecot_auth_differential import auth_servers
from tests.support.dovecot import auth_only_conf

CONF = auth_only_conf("plain cram-md5 scram-sha-1 scram-sha-256")
PASSWORDS = {"plain": "pw1", "cram": "pw2", "scram": "pw3", "crypt": "pw4"}


def users_file() -> str:
    stored = {
        "plain": "{PLAIN}pw1",
        "cram": schemes.generate("CRAM-MD5", "pw2"),
        "scram": schemes.generate("SCRAM-SHA-256", "pw3"),
        "crypt": schemes.generate("SHA512-CRYPT", "pw4"),
    }
    return "".join(f"{user}:{secret}::::::\n" for user, secret in stored.items())


class AuthClient:
    """A blocking client of the Dovecot auth protocol, one request at a time."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buffer = b""
        self.sock.sendall(b"VERSION\t1\t2\nCPID\t4242\n")
        while b"DONE\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        self.buffer = self.buffer.partition(b"DONE\n")[2]
        self.next_id = 1

    def line(self) -> list[bytes]:
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            assert data, "server closed the connection"
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.split(b"\t")

    def start(self, mechanism: str, rip: int) -> tuple[int, list[bytes]]:
        request_id = self.next_id
        self.next_id += 1
        self.sock.sendall(b"AUTH\t%d\t%s\tservice=imap\tno-penalty\trip=10.8.0.%d\n"
                          % (request_id, mechanism.encode(), rip))
        return request_id, self.line()

    def cont(self, request_id: int, data: bytes) -> list[bytes]:
        self.sock.sendall(b"CONT\t%d\t%s\n" % (request_id, base64.b64encode(data)))
        return self.line()

    def close(self) -> None:
        self.sock.close()


def outcome(reply: list[bytes]) -> tuple[str, ...]:
    """OK/FAIL with the user= field; the rest (SCRAM's server-final) is mechanism data."""
    return (reply[0].decode(), *[f.decode() for f in reply[2:] if f.startswith(b"user=")])


def cram_md5(client: AuthClient, user: str, password: str, rip: int) -> tuple[str, ...]:
    request_id, reply = client.start("CRAM-MD5", rip)
    assert reply[0] == b"CONT", reply
    challenge = base64.b64decode(reply[2])
    digest = hmac.new(password.encode(), challenge, "md5").hexdigest()  # RFC 2195 §2
    return outcome(client.cont(request_id, f"{user} {digest}".encode()))


def scram(client: AuthClient, mechanism: str, user: str, password: str,
          rip: int) -> tuple[str, ...]:
    algorithm = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}[mechanism]
    request_id, reply = client.start(mechanism, rip)
    assert reply[0] == b"CONT", reply
    client_nonce = base64.b64encode(os.urandom(12)).decode()
    first_bare = f"n={user},r={client_nonce}"
    reply = client.cont(request_id, ("n,," + first_bare).encode())  # RFC 5802 §5.1
    if reply[0] != b"CONT":
        return outcome(reply)
    server_first = base64.b64decode(reply[2]).decode()
    fields = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(algorithm, password.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    client_key = hmac.new(salted, b"Client Key", algorithm).digest()
    stored_key = hashlib.new(algorithm, client_key).digest()
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth_message, algorithm).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    reply = client.cont(request_id, final.encode())
    if reply[0] == b"CONT":  # Dovecot sends server-final as a CONT, then OK on an empty reply
        reply = client.cont(request_id, b"")
    return outcome(reply)


CASES = [
    ("CRAM-MD5", "plain", "pw1"), ("CRAM-MD5", "plain", "wrong"),
    ("CRAM-MD5", "cram", "pw2"), ("CRAM-MD5", "cram", "wrong"),
    ("CRAM-MD5", "scram", "pw3"), ("CRAM-MD5", "crypt", "pw4"),
    ("CRAM-MD5", "nobody", "pw1"),
    ("SCRAM-SHA-1", "plain", "pw1"), ("SCRAM-SHA-1", "plain", "wrong"),
    ("SCRAM-SHA-256", "plain", "pw1"), ("SCRAM-SHA-256", "scram", "pw3"),
    ("SCRAM-SHA-256", "scram", "wrong"), ("SCRAM-SHA-256", "crypt", "pw4"),
    ("SCRAM-SHA-256", "nobody", "pw3"), ("SCRAM-SHA-1", "cram", "pw2"),
]


def run_cases(path: str) -> list[tuple[str, ...]]:
    results = []
    for index, (mechanism, user, password) in enumerate(CASES):
        client = AuthClient(path)
        try:
            if mechanism == "CRAM-MD5":
                results.append(cram_md5(client, user, password, index + 1))
            else:
                results.append(scram(client, mechanism, user, password, index + 1))
        finally:
            client.close()
    return results


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with auth_servers(tmp_path_factory.mktemp("dovecot-challenge"), CONF, users_file()) as started:
        yield started


def test_challenge_mechanisms_end_like_dovecot(servers):
    dovecot_path, roost_path, _roost, _directory = servers
    theirs = run_cases(dovecot_path)
    ours = run_cases(roost_path)
    for case, their, our in zip(CASES, theirs, ours):
        assert our == their, (case, our, their)
    # the right password works for every user whose stored scheme can serve the mechanism
    assert ours[0][0] == ours[2][0] == ours[7][0] == ours[10][0] == "OK"
    assert ours[1][0] == ours[3][0] == ours[6][0] == "FAIL"


def test_info_lines_are_dovecots(servers):
    """Every case above plus one more: the same Info lines, in the same order."""
    dovecot_path, roost_path, roost, directory = servers
    for path in (dovecot_path, roost_path):
        client = AuthClient(path)
        try:
            cram_md5(client, "crypt", "pw4", 200)
        finally:
            client.close()
    last = "passwd-file(crypt,10.8.0.200): Requested CRAM-MD5 scheme, but we have only SHA512-CRYPT"
    log_path = directory / "dovecot.log"
    assert wait_until(lambda: last in log_path.read_text(), 5)
    theirs = [line for line in re.findall(r" auth: Info: (.*)", log_path.read_text())]
    ours = [text for level, text in roost.log.lines if level == "info"]
    assert ours == theirs
