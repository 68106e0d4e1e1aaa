"""roost.net.dovecot_auth_client against the Dovecot auth protocol: roost's own auth socket
service is tested elsewhere; here a protocol stand-in (tests.policy.postfix_oracle) and a
silent server check the handshake, CONT steps, FAIL/OK and the tempfail paths."""

from __future__ import annotations

import asyncio
import base64
import socket

from roost.net.dovecot_auth_client import DovecotAuthClient, filter_mechanisms, socket_address
from tests.policy.postfix_oracle import FakeDovecotAuth


def test_socket_address():
    assert socket_address("private/auth", "/var/spool/postfix") == ("unix", "/var/spool/postfix/private/auth")
    assert socket_address("/run/dovecot/auth-client", "/q") == ("unix", "/run/dovecot/auth-client")
    assert socket_address("inet:127.0.0.1:12345", "/q") == ("inet", ("127.0.0.1", 12345))


def test_filter_mechanisms():
    mechanisms = {"PLAIN": frozenset({"plaintext"}), "LOGIN": frozenset({"plaintext"}),
                  "CRAM-MD5": frozenset({"dictionary", "active"}), "ANONYMOUS": frozenset({"anonymous"}),
                  "SCRAM-SHA-256": frozenset({"mutual-auth"}), "SECRET": frozenset({"private"})}
    assert filter_mechanisms(mechanisms, ["noanonymous"]) == ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256")
    assert filter_mechanisms(mechanisms, ["noanonymous", "noplaintext"]) == ("CRAM-MD5", "SCRAM-SHA-256")
    assert filter_mechanisms(mechanisms, ["mutual_auth"]) == ("SCRAM-SHA-256",)


def test_exchanges(tmp_path):
    server = FakeDovecotAuth(str(tmp_path / "auth"))

    async def scenario():
        client = DovecotAuthClient(str(tmp_path / "auth"))
        plain = base64.b64encode(b"\0alice\0pw").decode()
        ok = await client.start("PLAIN", plain, local_ip="127.0.0.1", remote_ip="127.0.0.2", secured=True)
        wrong = await client.start("PLAIN", base64.b64encode(b"\0bob\0x").decode(), local_ip="", remote_ip="",
                                   secured=False)
        step1 = await client.start("LOGIN", None, local_ip="", remote_ip="", secured=False)
        step2 = await client.respond(base64.b64encode(b"carol").decode())
        step3 = await client.respond(base64.b64encode(b"pw").decode())
        await client.close()
        return client.mechanisms, ok, wrong, step1, step2, step3

    try:
        mechanisms, ok, wrong, step1, step2, step3 = asyncio.run(scenario())
    finally:
        server.close()
    assert list(mechanisms) == ["PLAIN", "LOGIN"]
    assert (ok.status, ok.user) == ("ok", "alice")
    assert (wrong.status, wrong.user) == ("fail", "bob")
    assert (step1.status, base64.b64decode(step1.challenge)) == ("continue", b"Username:")
    assert (step2.status, base64.b64decode(step2.challenge)) == ("continue", b"Password:")
    assert (step3.status, step3.user) == ("ok", "carol")


def test_unreachable_or_silent_server_is_tempfail(tmp_path):
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(tmp_path / "silent"))
    silent.listen(1)
    import roost.net.dovecot_auth_client as module
    saved = module.HANDSHAKE_TIMEOUT
    module.HANDSHAKE_TIMEOUT = 0.3

    async def scenario():
        missing = await DovecotAuthClient(str(tmp_path / "missing")).start(
            "PLAIN", "=", local_ip="", remote_ip="", secured=False)
        quiet = await DovecotAuthClient(str(tmp_path / "silent")).start(
            "PLAIN", "=", local_ip="", remote_ip="", secured=False)
        return missing, quiet

    try:
        missing, quiet = asyncio.run(scenario())
    finally:
        module.HANDSHAKE_TIMEOUT = saved
        silent.close()
    assert missing.status == quiet.status == "tempfail"
