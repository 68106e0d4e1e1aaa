"""SASL machines against the RFC examples and their failure paths."""

from __future__ import annotations

import base64

import pytest

from roost.auth.schemes import generate, parse_scram_secret, scram_secret_from_password
from roost.auth.schemes_md5ctx import hmac_md5_context
from roost.proto.sasl import (Challenge, Failure, NeedCredentials, ScramCredentials, Success,
                              create_mechanism)


def scram_credentials(algorithm: str, password: str, salt_b64: str) -> ScramCredentials:
    salt = base64.b64decode(salt_b64)
    return scram_secret_from_password(algorithm, password.encode(), salt, 4096)


# ---- PLAIN (RFC 4616 §4 examples) -----------------------------------------------------------

def test_plain_rfc4616_examples():
    machine = create_mechanism("PLAIN", b"\0tim\0tanstaaftanstaaf")
    need = machine.start()
    assert need == NeedCredentials("tim", "", "tanstaaftanstaaf")
    assert machine.supply(True) == Success(None, "tim", "")
    machine = create_mechanism("plain", b"Ursel\0Kurt\0xipj3plmq")
    assert machine.start() == NeedCredentials("Kurt", "Ursel", "xipj3plmq")
    assert machine.supply(False) == Failure("password mismatch")


def test_plain_without_initial_response_gets_empty_challenge():
    machine = create_mechanism("PLAIN")
    assert machine.start() == Challenge(b"")
    assert isinstance(machine.step(b"\0u\0p"), NeedCredentials)


@pytest.mark.parametrize("message", [b"", b"\0\0", b"a\0b", b"a\0b\0c\0d", b"\0\0pw", b"\0u\0",
                                     b"\0\xff\0pw", b"\0u\0\xc3"])
def test_plain_rejects_bad_messages(message):
    machine = create_mechanism("PLAIN", message)
    assert isinstance(machine.start(), Failure)
    assert isinstance(machine.step(b"\0u\0p"), Failure)  # finished: stays failed


def test_password_is_not_in_repr():
    need = create_mechanism("PLAIN", b"\0u\0hunter2").start()
    assert "hunter2" not in repr(need) and "hunter2" not in str(need)


def test_unknown_user_and_out_of_turn_calls_fail():
    machine = create_mechanism("PLAIN", b"\0u\0p")
    machine.start()
    assert machine.step(b"\0u\0p") == Failure("response received while credentials are pending")
    assert machine.supply(None) == Failure("unknown user")
    assert isinstance(create_mechanism("PLAIN").supply(True), Failure)
    assert create_mechanism("NOPE") is None


# ---- LOGIN ---------------------------------------------------------------------------------

def test_login_challenges_then_credentials():
    machine = create_mechanism("LOGIN")
    assert machine.start() == Challenge(b"Username:")
    assert machine.step(b"alice") == Challenge(b"Password:")
    assert machine.step(b"pw") == NeedCredentials("alice", "", "pw")
    assert machine.supply(True) == Success(None, "alice", "")


def test_login_initial_response_is_the_username():
    machine = create_mechanism("LOGIN", b"alice")
    assert machine.start() == Challenge(b"Password:")
    assert machine.step(b"pw") == NeedCredentials("alice", "", "pw")


@pytest.mark.parametrize("steps", [[b""], [b"a\0b"], [b"\xff"], [b"alice", b""]])
def test_login_rejects_empty_and_binary(steps):
    machine = create_mechanism("LOGIN")
    machine.start()
    results = [machine.step(step) for step in steps]
    assert isinstance(results[-1], Failure)


# ---- CRAM-MD5 (RFC 2195 §2 example) ----------------------------------------------------------

RFC2195_CHALLENGE = b"<1896.697170952@postoffice.reston.mci.net>"
RFC2195_RESPONSE = b"tim b913a602c7eda7a495b4e6e7334d3890"


@pytest.mark.parametrize("secret", [hmac_md5_context(b"tanstaaftanstaaf"), "tanstaaftanstaaf"])
def test_cram_md5_rfc2195_example(secret):
    machine = create_mechanism("CRAM-MD5", challenge=RFC2195_CHALLENGE)
    assert machine.start() == Challenge(RFC2195_CHALLENGE)
    assert machine.step(RFC2195_RESPONSE) == NeedCredentials("tim", "")
    assert machine.supply(secret) == Success(None, "tim", "")


def test_cram_md5_with_dovecot_stored_context_and_wrong_secret():
    stored = bytes.fromhex(generate("CRAM-MD5", "tanstaaftanstaaf")[len("{CRAM-MD5}"):])
    machine = create_mechanism("CRAM-MD5", challenge=RFC2195_CHALLENGE)
    machine.start()
    machine.step(RFC2195_RESPONSE)
    assert machine.supply(stored) == Success(None, "tim", "")
    machine = create_mechanism("CRAM-MD5", challenge=RFC2195_CHALLENGE)
    machine.start()
    machine.step(RFC2195_RESPONSE)
    assert machine.supply("wrong") == Failure("password mismatch")


def test_cram_md5_challenge_is_a_unique_msg_id():
    first = create_mechanism("CRAM-MD5", hostname="mail.example").start().data
    second = create_mechanism("CRAM-MD5", hostname="mail.example").start().data
    assert first != second
    assert first.startswith(b"<") and first.endswith(b"@mail.example>")


@pytest.mark.parametrize("response", [
    b"", b"tim", b"tim b913", b"tim  b913a602c7eda7a495b4e6e7334d3890x",
    b" b913a602c7eda7a495b4e6e7334d3890", b"\xff b913a602c7eda7a495b4e6e7334d3890"])
def test_cram_md5_malformed_responses(response):
    machine = create_mechanism("CRAM-MD5")
    machine.start()
    assert isinstance(machine.step(response), Failure)


def test_cram_md5_refuses_initial_response():
    assert isinstance(create_mechanism("CRAM-MD5", b"tim 00").start(), Failure)


# ---- SCRAM (RFC 5802 §5, RFC 7677 §3) ---------------------------------------------------------

SCRAM_VECTORS = {
    "SCRAM-SHA-1": dict(
        algorithm="sha1", salt="QSXCR+Q6sek8bf92", server_nonce="3rfcNHYJY1ZVvWVs7j",
        client_first=b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
        server_first=b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        client_final=b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                     b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        server_final=b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
    "SCRAM-SHA-256": dict(
        algorithm="sha256", salt="W22ZaJ0SNY7soEsUEjb6gQ==",
        server_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        client_first=b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        server_first=b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        client_final=b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        server_final=b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
}


def scram_machine(name: str, with_initial_response: bool = True):
    vector = SCRAM_VECTORS[name]
    machine = create_mechanism(name, vector["client_first"] if with_initial_response else None,
                               server_nonce=vector["server_nonce"])
    credentials = scram_credentials(vector["algorithm"], "pencil", vector["salt"])
    return vector, machine, credentials


@pytest.mark.parametrize("name", SCRAM_VECTORS)
@pytest.mark.parametrize("with_initial_response", [True, False])
def test_scram_rfc_example(name, with_initial_response):
    vector, machine, credentials = scram_machine(name, with_initial_response)
    first = machine.start()
    if not with_initial_response:
        assert first == Challenge(b"")
        first = machine.step(vector["client_first"])
    assert first == NeedCredentials("user", "")
    assert machine.supply(credentials) == Challenge(vector["server_first"])
    assert machine.step(vector["client_final"]) == Success(vector["server_final"], "user", "")


@pytest.mark.parametrize("name", SCRAM_VECTORS)
def test_scram_with_dovecot_stored_secret_and_wrong_password(name):
    vector, machine, _ = scram_machine(name)
    machine.start()
    stored = generate(name, "pencil", rounds=4096)[len(name) + 2:]
    secret = parse_scram_secret(stored)
    fixed_salt = ScramCredentials(secret.iterations, base64.b64decode(vector["salt"]),
                                  secret.stored_key, secret.server_key)
    machine.supply(fixed_salt)  # a different salt than the client used: the proof cannot match
    assert machine.step(vector["client_final"]) == Failure("password mismatch")


@pytest.mark.parametrize("client_final,reason", [
    (b"c=eSws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
     "channel binding data does not match the gs2 header"),
    (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=", "nonce mismatch"),
    (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=AAAA", "malformed proof"),
    (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", "missing proof"),
    (b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=w0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
     "password mismatch"),
])
def test_scram_final_message_checks(client_final, reason):
    _, machine, credentials = scram_machine("SCRAM-SHA-1")
    machine.start()
    machine.supply(credentials)
    assert machine.step(client_final) == Failure(reason)


@pytest.mark.parametrize("client_first", [
    b"p=tls-unique,,n=user,r=abc", b"x,,n=user,r=abc", b"n,,m=ext,n=user,r=abc", b"n,,r=abc,n=user",
    b"n,,n=us=2Xer,r=abc", b"n,,n=,r=abc", b"n,,n=user,r=", b"n", b"n,", b"n,b=x,n=user,r=abc",
    b"n,,n=user", b"\xff,,n=user,r=abc"])
def test_scram_client_first_failures(client_first):
    assert isinstance(create_mechanism("SCRAM-SHA-256", client_first).start(), Failure)


def test_scram_unknown_user_gets_decoy_challenge_then_fails():
    vector, machine, _ = scram_machine("SCRAM-SHA-1")
    machine.start()
    decoy = machine.supply(None)
    assert isinstance(decoy, Challenge)
    assert decoy.data.startswith(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=")
    assert decoy.data.endswith(b",i=4096")
    _, again, _ = scram_machine("SCRAM-SHA-1")
    again.start()
    assert again.supply(None) == decoy  # same salt each time: no tell-tale randomness
    assert machine.step(vector["client_final"]) == Failure("unknown user")


def test_scram_saslname_and_authzid_decoding():
    machine = create_mechanism("SCRAM-SHA-1", b"y,a=ad=3Dmin,n=a=2Cb,r=nonce")
    assert machine.start() == NeedCredentials("a,b", "ad=min")
