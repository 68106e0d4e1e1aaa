"""Per-IP authentication penalty (Dovecot's anvil penalty) and uniform failure answers.

Implements the documented behaviour of Dovecot 2.3's auth penalty (auth-penalty.h, anvil's
PENALTY-GET/PENALTY-INC) as a sans-IO table with an injected clock:
- each failed login from an IP raises its penalty level by one, up to 4
  (AUTH_PENALTY_MAX_PENALTY); a success resets it to 0;
- a failure with the same user + password as one of the IP's recent failures does not raise
  the level (a client retrying a mistyped password is not an attacker), it only refreshes
  the time of the last penalty;
- the next attempt from a penalised IP waits 2 s doubled once per level (AUTH_PENALTY_INIT_SECS
  2, so level 1 = 4 s, 2 = 8 s, 3 and 4 = 15 s, AUTH_PENALTY_MAX_SECS 15) before it is handled;
- a level is forgotten once 15 s passed since the last failure (Dovecot lowers the level by one
  per elapsed threshold of 15, 15, 8, 4 s, which all hold together), and the record itself after
  AUTH_PENALTY_TIMEOUT = 2 + 4 + 8 + 15 = 29 s without failures (anvil's expiry as set by auth);
- IPv6 addresses share one record per /48 (Dovecot's PENALTY_IPV6_MASK_BITS), so one host
  cannot dodge the penalty by walking its prefix.
auth_failure_delay (2 s default, applied to every failed answer) is separate: see
`failure_reply_delay`, which measures it from the start of the request so the answer to an
unknown user and to a wrong password leave at the same moment.

Invariants: `delay_for` is always within [0, AUTH_PENALTY_MAX_SECS]; the table never holds
more than `max_entries` records (least recently updated evicted first) nor records older
than the expiry; nothing here sleeps or reads the wall clock except through `clock`.
Security: only a keyed digest of user + password is kept (`attempt_checksum`), never the
password; `public_failure_message` gives the same text for every failure reason.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

AUTH_PENALTY_INIT_SECS = 2
AUTH_PENALTY_MAX_SECS = 15
AUTH_PENALTY_MAX_PENALTY = 4
AUTH_PENALTY_TIMEOUT = AUTH_PENALTY_INIT_SECS + 4 + 8 + AUTH_PENALTY_MAX_SECS  # 29 s
PENALTY_IPV6_MASK_BITS = 48
RECENT_CHECKSUMS = 10  # how many distinct failed attempts per IP are remembered
DEFAULT_MAX_ENTRIES = 65536

# What Dovecot's login processes answer to any failed login; the reason stays in the log.
AUTH_FAILED_MESSAGE = "Authentication failed."


def penalty_to_secs(level: int) -> int:
    """The wait for an IP at penalty `level` (> 0): 2 s doubled `level` times, at most 15 s."""
    return min(AUTH_PENALTY_INIT_SECS << min(level, 8), AUTH_PENALTY_MAX_SECS)


def penalty_ident(ip: str) -> str | None:
    """The record key for a remote address: the IPv4 address, or the IPv6 /48 network.

    None when there is no usable address (Dovecot then applies no penalty either)."""
    try:
        address = ipaddress.ip_address(ip.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, PENALTY_IPV6_MASK_BITS), strict=False)
        return str(network.network_address)
    return str(address)


@dataclass
class PenaltyRecord:
    level: int
    last_penalty: float
    checksums: list[bytes] = field(default_factory=list)


class PenaltyTable:
    """Penalty levels per remote IP (or IPv6 /48), bounded in size and age."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 max_entries: int = DEFAULT_MAX_ENTRIES,
                 expire_secs: float = AUTH_PENALTY_TIMEOUT):
        self.clock = clock
        self.max_entries = max(1, max_entries)
        self.expire_secs = expire_secs
        self._records: OrderedDict[str, PenaltyRecord] = OrderedDict()  # oldest update first
        self._key = os.urandom(16)

    def __len__(self) -> int:
        return len(self._records)

    def attempt_checksum(self, user: str, password: str) -> bytes:
        """A keyed digest of one login attempt, for `record_failure` (the password is not kept)."""
        digest = hashlib.blake2s(key=self._key, digest_size=8)
        digest.update(user.encode("utf-8", "surrogateescape") + b"\0"
                      + password.encode("utf-8", "surrogateescape"))
        return digest.digest()

    def level(self, ip: str) -> int:
        """The IP's current penalty level (0 to AUTH_PENALTY_MAX_PENALTY), after decay."""
        ident = penalty_ident(ip)
        if ident is None:
            return 0
        self._expire()
        record = self._records.get(ident)
        if record is None:
            return 0
        now = self.clock()
        # a clock that went backwards counts as "just now", as Dovecot does
        elapsed = max(0.0, now - record.last_penalty)
        level = record.level
        threshold_level = AUTH_PENALTY_MAX_PENALTY
        while level > 0 and elapsed >= penalty_to_secs(threshold_level):
            level -= 1
            threshold_level -= 1
        return level

    def delay_for(self, ip: str) -> float:
        """Seconds to wait before handling the next login attempt from `ip`."""
        level = self.level(ip)
        return float(penalty_to_secs(level)) if level > 0 else 0.0

    def record_failure(self, ip: str, attempt_checksum: bytes | None = None) -> None:
        """A failed login from `ip`; `attempt_checksum` from `attempt_checksum(user, password)`."""
        ident = penalty_ident(ip)
        if ident is None:
            return
        level = min(self.level(ip) + 1, AUTH_PENALTY_MAX_PENALTY)
        record = self._records.pop(ident, None)
        if record is None:
            record = PenaltyRecord(0, self.clock())
        if attempt_checksum and attempt_checksum in record.checksums:
            level = max(level - 1, 0)  # the same attempt again: refresh, do not raise
        elif attempt_checksum:
            record.checksums.append(attempt_checksum)
            del record.checksums[:-RECENT_CHECKSUMS]
        record.level = level
        record.last_penalty = self.clock()
        self._records[ident] = record
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    def record_success(self, ip: str) -> None:
        """A successful login from `ip`: its penalty is gone."""
        ident = penalty_ident(ip)
        if ident is not None:
            self._records.pop(ident, None)

    def _expire(self) -> None:
        cutoff = self.clock() - self.expire_secs
        while self._records:
            ident, record = next(iter(self._records.items()))
            if record.last_penalty > cutoff:
                break
            del self._records[ident]


def public_failure_message(result: Any) -> str:
    """The text a client sees for a failed roost.auth.lookup.AuthResult, whatever its reason.

    `result.reason` ("unknown user", "password mismatch", "internal failure") is for logs only:
    telling the first two apart would let a client enumerate user names."""
    return AUTH_FAILED_MESSAGE


def failure_reply_delay(elapsed: float, auth_failure_delay: float) -> float:
    """Seconds still to wait before sending a failed answer, `elapsed` seconds after the request.

    The wait runs from the start of the request, so the password hashing a wrong password
    costs (and an unknown user does not) is hidden inside auth_failure_delay; only when the
    check itself took longer than the delay is the answer sent at once."""
    return max(0.0, float(auth_failure_delay) - max(0.0, elapsed))
