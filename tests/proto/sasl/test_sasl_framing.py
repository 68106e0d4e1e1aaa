"""Response decoding, odd splits, cancel, oversize, mechanism selection, and fuzzing."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.auth.schemes import scram_secret_from_password
from roost.proto.sasl import (Cancel, Challenge, Failure, MalformedBase64, NeedCredentials,
                              ScramCredentials, Success, TooLong, allowed_mechanisms,
                              create_mechanism, decode_client_response, mechanism_allowed,
                              unknown_mechanisms)
from roost.proto.sasl.registry import KNOWN_MECHANISMS


def test_decode_client_response_cases():
    assert decode_client_response(b"AHUAcA==\r\n", 100) == b"\0u\0p"
    assert decode_client_response(b"AHUAcA==", 100) == b"\0u\0p"
    assert decode_client_response(b"*\r\n", 100) == Cancel()
    assert decode_client_response(b"=", 100) == b""
    assert decode_client_response(b"", 100) == b""
    assert decode_client_response(b"AHUAc", 100) == MalformedBase64()
    assert decode_client_response(b"AH UAcA==", 100) == MalformedBase64()
    assert decode_client_response(b"\xff\xfe", 100) == MalformedBase64()
    assert decode_client_response(b"A" * 101, 100) == TooLong()
    assert decode_client_response(b"*" * 101, 100) == TooLong()


def feed_lines(stream: bytes, chunk_sizes: list[int]) -> list[bytes]:
    """Reassemble CRLF lines from a stream delivered in arbitrary chunks (as an adapter does)."""
    lines, buffer, position, index = [], b"", 0, 0
    while position < len(stream):
        size = chunk_sizes[index % len(chunk_sizes)] if chunk_sizes else 1
        buffer += stream[position:position + max(size, 1)]
        position += max(size, 1)
        index += 1
        while b"\r\n" in buffer:
            line, buffer = buffer.split(b"\r\n", 1)
            lines.append(line)
    return lines


def scram_client_exchange(name: str, password: str) -> tuple[bytes, callable]:
    client_first_bare = "n=user,r=clientnonce"
    algorithm = "sha1" if name == "SCRAM-SHA-1" else "sha256"

    def client_final(server_first: bytes) -> bytes:
        import hashlib
        import hmac
        fields = dict(part.split("=", 1) for part in server_first.decode().split(","))
        salted = hashlib.pbkdf2_hmac(algorithm, password.encode(), base64.b64decode(fields["s"]),
                                     int(fields["i"]))
        client_key = hmac.new(salted, b"Client Key", algorithm).digest()
        stored_key = hashlib.new(algorithm, client_key).digest()
        without_proof = f"c=biws,r={fields['r']}"
        message = f"{client_first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(stored_key, message, algorithm).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    return f"n,,{client_first_bare}".encode(), client_final


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=5),
       name=st.sampled_from(["SCRAM-SHA-1", "SCRAM-SHA-256"]))
def test_scram_responses_split_oddly_still_authenticate(chunks, name):
    first, make_final = scram_client_exchange(name, "pencil")
    credentials = scram_secret_from_password(
        "sha1" if name == "SCRAM-SHA-1" else "sha256", b"pencil", b"salty", 64)
    machine = create_mechanism(name)
    assert machine.start() == Challenge(b"")
    [line] = feed_lines(base64.b64encode(first) + b"\r\n", chunks)
    assert isinstance(machine.step(decode_client_response(line, 8192)), NeedCredentials)
    challenge = machine.supply(credentials)
    [line] = feed_lines(base64.b64encode(make_final(challenge.data)) + b"\r\n", chunks)
    assert isinstance(machine.step(decode_client_response(line, 8192)), Success)


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=4))
def test_login_byte_at_a_time_and_odd_splits(chunks):
    stream = base64.b64encode(b"alice") + b"\r\n" + base64.b64encode(b"p w") + b"\r\n"
    machine = create_mechanism("LOGIN")
    machine.start()
    lines = feed_lines(stream, chunks)
    results = [machine.step(decode_client_response(line, 100)) for line in lines]
    assert results == [Challenge(b"Password:"), NeedCredentials("alice", "", "p w")]


def test_cancel_and_oversize_are_adapter_decisions_not_machine_input():
    # the adapter stops the exchange on Cancel/TooLong/MalformedBase64; the machine never sees them
    for line in (b"*", b"A" * 20, b"!!"):
        decoded = decode_client_response(line, 10)
        assert isinstance(decoded, (Cancel, TooLong, MalformedBase64))


# ---- auth_mechanisms and disable_plaintext_auth ---------------------------------------------

CONFIGURED = ["plain", "login", "cram-md5", "scram-sha-256", "PLAIN", "digest-md5"]


@pytest.mark.parametrize("secured,trusted,disable,expected", [
    (False, False, True, ["CRAM-MD5", "SCRAM-SHA-256"]),
    (True, False, True, ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]),
    (False, True, True, ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]),
    (False, False, False, ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"]),
])
def test_allowed_mechanisms(secured, trusted, disable, expected):
    assert allowed_mechanisms(CONFIGURED, secured, trusted, disable) == expected
    allowed = mechanism_allowed("plain", CONFIGURED, secured, trusted, disable)
    assert allowed == ("PLAIN" in expected)


def test_unknown_mechanisms_are_reported():
    assert unknown_mechanisms(CONFIGURED) == ["digest-md5"]
    assert not mechanism_allowed("SCRAM-SHA-1", CONFIGURED, True, True, False)


# ---- fuzz: garbage gives Failure (or a normal next step), never an exception -------------------

CREDENTIALS = {
    "PLAIN": True, "LOGIN": True, "CRAM-MD5": "pw",
    "SCRAM-SHA-1": ScramCredentials(2, b"s", b"k" * 20, b"k" * 20),
    "SCRAM-SHA-256": ScramCredentials(2, b"s", b"k" * 32, b"k" * 32),
}


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(KNOWN_MECHANISMS),
       initial=st.none() | st.binary(max_size=80),
       responses=st.lists(st.binary(max_size=80) | st.text(max_size=80).map(str.encode),
                          max_size=4),
       supplies=st.lists(st.sampled_from([None, True, False, "x", b"\0" * 32, 7, "creds"]),
                         max_size=4))
def test_fuzz_machines_never_raise(name, initial, responses, supplies):
    machine = create_mechanism(name, initial)
    results = [machine.start()]
    for response, supply in zip(responses, supplies + [None] * len(responses)):
        results.append(machine.step(response))
        value = CREDENTIALS[name] if supply == "creds" else supply
        results.append(machine.supply(value))
    for result in results:
        assert isinstance(result, (Challenge, NeedCredentials, Success, Failure))
    finished = [r for r in results if isinstance(r, (Success, Failure))]
    if finished:
        assert isinstance(machine.step(b"more"), Failure)
    assert not any(isinstance(r, Success) for r in results if name.startswith("SCRAM"))


@settings(max_examples=300, deadline=None)
@given(line=st.binary(max_size=200), limit=st.integers(min_value=0, max_value=300))
def test_fuzz_decode_client_response(line, limit):
    result = decode_client_response(line, limit)
    assert isinstance(result, (bytes, Cancel, MalformedBase64, TooLong))
