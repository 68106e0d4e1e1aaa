"""HMAC-MD5 precomputed contexts: Dovecot's CRAM-MD5 (alias HMAC-MD5) password scheme.

Dovecot stores for CRAM-MD5 not the password but the MD5 chaining state after the HMAC inner
pad block (key XOR ipad) and after the outer pad block (key XOR opad) (RFC 2104 §4 "implementation
note"; RFC 2195 §2 for CRAM-MD5): 32 bytes, the outer state first, then the inner state, each as
four little-endian 32-bit words, hex-encoded by default. The SASL CRAM-MD5 mechanism resumes
these states to compute HMAC-MD5(key, challenge) without the plaintext password. hashlib has
no way to resume an MD5 state, so this module carries the MD5 compression function (RFC 1321 §3.4).

Invariants: pure functions on bytes; `hmac_md5_context` and `hmac_md5_from_context` agree with
hmac.new(key, msg, "md5") for every key (keys over 64 bytes are hashed first, RFC 2104 §2).
Security: the context is password-equivalent for CRAM-MD5; callers store it like a password.
"""

from __future__ import annotations

import hashlib
import math
import struct

BLOCK_SIZE = 64
CONTEXT_SIZE = 32
INITIAL_STATE = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476)
SHIFTS = ((7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4)
SINES = tuple(int(abs(math.sin(i + 1)) * 2**32) & 0xFFFFFFFF for i in range(64))
MASK = 0xFFFFFFFF


def rotate_left(value: int, amount: int) -> int:
    return ((value << amount) | (value >> (32 - amount))) & MASK


def md5_compress(state: tuple[int, int, int, int], block: bytes) -> tuple[int, int, int, int]:
    """One MD5 compression of a 64-byte block into `state` (RFC 1321 §3.4)."""
    words = struct.unpack("<16I", block)
    a, b, c, d = state
    for i in range(64):
        if i < 16:
            mixed, index = (b & c) | (~b & d), i
        elif i < 32:
            mixed, index = (d & b) | (~d & c), (5 * i + 1) % 16
        elif i < 48:
            mixed, index = b ^ c ^ d, (3 * i + 5) % 16
        else:
            mixed, index = c ^ (b | (~d & MASK)), (7 * i) % 16
        mixed = (mixed + a + SINES[i] + words[index]) & MASK
        a, d, c = d, c, b
        b = (b + rotate_left(mixed, SHIFTS[i])) & MASK
    return tuple((x + y) & MASK for x, y in zip(state, (a, b, c, d)))  # type: ignore[return-value]


def md5_resume(state: tuple[int, int, int, int], prefix_length: int, data: bytes) -> bytes:
    """MD5 digest of (prefix + data) given the state after a prefix of whole blocks."""
    total_bits = ((prefix_length + len(data)) * 8) & 0xFFFFFFFFFFFFFFFF
    padded = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + struct.pack("<Q", total_bits)
    for offset in range(0, len(padded), BLOCK_SIZE):
        state = md5_compress(state, padded[offset:offset + BLOCK_SIZE])
    return struct.pack("<4I", *state)


def padded_key(key: bytes) -> bytes:
    if len(key) > BLOCK_SIZE:
        key = hashlib.md5(key).digest()
    return key.ljust(BLOCK_SIZE, b"\0")


def hmac_md5_context(key: bytes) -> bytes:
    """The 32-byte Dovecot CRAM-MD5 context of `key`: outer state, then inner state."""
    block = padded_key(key)
    inner = md5_compress(INITIAL_STATE, bytes(b ^ 0x36 for b in block))
    outer = md5_compress(INITIAL_STATE, bytes(b ^ 0x5C for b in block))
    return struct.pack("<4I", *outer) + struct.pack("<4I", *inner)


def hmac_md5_from_context(context: bytes, message: bytes) -> bytes:
    """HMAC-MD5(key, message) from the context of key; ValueError when the context is malformed."""
    if len(context) != CONTEXT_SIZE:
        raise ValueError("CRAM-MD5 context must be 32 bytes")
    outer = struct.unpack("<4I", context[:16])
    inner = struct.unpack("<4I", context[16:])
    inner_digest = md5_resume(inner, BLOCK_SIZE, message)  # type: ignore[arg-type]
    return md5_resume(outer, BLOCK_SIZE, inner_digest)  # type: ignore[arg-type]
