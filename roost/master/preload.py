"""Importing every module the workers may need while the master can still read them.

The master drops root to `mail_owner` before it forks the workers (roost.master.privileges).
Python reads modules lazily: a worker that imports `roost.policy` or `sqlite3` for its first
client would need the interpreter's files to be readable by mail_owner, which they are not
when Python lives under a private directory (a pyenv in /root, a venv in a 0700 home).
Importing everything first means forked workers find it all in sys.modules (shared
copy-on-write pages, no per-worker import cost either).

Invariants: never raises; a module that fails to import (an optional backend whose package
is missing) is skipped, as it would fail in the worker just the same.
Security: runs before privileges are dropped, so it imports only roost's own modules and the
standard-library and pinned third-party modules they name, never a configured path.
"""

from __future__ import annotations

import importlib
import pkgutil

# Imported inside functions somewhere in roost (lazily), or by the standard library itself
# at first use (codecs, thread pools, hashing).
LAZY_MODULES = ("concurrent.futures.thread", "hmac", "crypt", "encodings.idna",
                "encodings.utf_7", "encodings.punycode", "email.parser", "email.policy",
                "mmap", "sqlite3", "secrets", "zlib", "ssl", "pwd", "grp", "stat", "bisect",
                "urllib.parse", "importlib.metadata", "dns.resolver", "dns.asyncresolver",
                "dns.exception", "passlib.hash", "pam",
                "cryptography.hazmat.primitives.serialization", "uvloop")
SKIPPED = ("roost.__main__",)


def preload() -> None:
    import roost

    for module in pkgutil.walk_packages(roost.__path__, "roost."):
        if module.name.startswith(SKIPPED):
            continue
        _try(module.name)
    for name in LAZY_MODULES:
        _try(name)


def _try(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception:  # noqa: BLE001 - see Invariants
        pass
