"""SASL (RFC 4422) server mechanisms as sans-IO machines: PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-*.

Usage: `machine = create_mechanism(name, initial_response)`; `result = machine.start()`; then
`machine.step(decoded_response)` per client response and `machine.supply(credentials)` after
NeedCredentials, until Success or Failure. Adapters decode lines with `decode_client_response`
and check `mechanism_allowed` first. No I/O here. Security: see each mechanism's module.
"""

from roost.proto.sasl.base import (Cancel, Challenge, Failure, MalformedBase64, Mechanism,
                                   NeedCredentials, Success, TooLong, decode_client_response)
from roost.proto.sasl.registry import (KNOWN_MECHANISMS, PLAINTEXT_DISALLOWED,
                                       PLAINTEXT_MECHANISMS, allowed_mechanisms,
                                       create_mechanism, mechanism_allowed, unknown_mechanisms)
from roost.proto.sasl.scram import ScramCredentials

__all__ = ["Cancel", "Challenge", "Failure", "KNOWN_MECHANISMS", "MalformedBase64", "Mechanism",
           "NeedCredentials", "PLAINTEXT_DISALLOWED", "PLAINTEXT_MECHANISMS", "ScramCredentials",
           "Success", "TooLong", "allowed_mechanisms", "create_mechanism",
           "decode_client_response", "mechanism_allowed", "unknown_mechanisms"]
