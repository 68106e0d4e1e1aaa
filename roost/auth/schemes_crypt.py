"""crypt(3) through the system libcrypt (libxcrypt): every format it knows, one code path.

Dovecot's CRYPT, DES-CRYPT, MD5-CRYPT, SHA256-CRYPT, SHA512-CRYPT and BLF-CRYPT schemes (and
yescrypt `$y$`, Debian 12's /etc/shadow default, which Dovecot verifies as `{CRYPT}`) are all
crypt(3) strings: the stored hash is its own setting, so verification is
`crypt(password, stored) == stored`. libxcrypt implements DES, `$1$`, `$5$`, `$6$`, `$2a$`/
`$2b$`/`$2y$` and `$y$`; `crypt_gensalt_rn` makes settings with salt from the OS random source.

Invariants: `crypt_hash` returns None (never raises) when libcrypt refuses the setting or the
password (NUL byte, unknown format, "*" failure tokens); the re-entrant `crypt_rn` with a private
buffer per call makes this safe from worker threads, and ctypes releases the GIL while it runs.
Security: comparison with the stored hash is constant-time (hmac.compare_digest).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hmac

CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt; a larger buffer is harmless
SETTING_BUFFER_SIZE = 256


def load_libcrypt() -> ctypes.CDLL:
    name = "libcrypt.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        found = ctypes.util.find_library("crypt")
        if found is None:
            raise
        return ctypes.CDLL(found)


LIBCRYPT = load_libcrypt()
LIBCRYPT.crypt_rn.restype = ctypes.c_char_p
LIBCRYPT.crypt_rn.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int)
LIBCRYPT.crypt_gensalt_rn.restype = ctypes.c_char_p
LIBCRYPT.crypt_gensalt_rn.argtypes = (ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                                      ctypes.c_int, ctypes.c_char_p, ctypes.c_int)


def crypt_hash(password: bytes, setting: str) -> str | None:
    """crypt(3) of `password` with `setting` (a stored hash or a fresh salt), None on refusal."""
    if b"\0" in password:
        return None
    try:
        setting_bytes = setting.encode("ascii")
    except UnicodeEncodeError:
        return None
    if b"\0" in setting_bytes:
        return None
    data = ctypes.create_string_buffer(CRYPT_DATA_SIZE)
    result = LIBCRYPT.crypt_rn(password, setting_bytes, data, CRYPT_DATA_SIZE)
    # libxcrypt signals failure with NULL or a string starting with "*"
    if not result or result.startswith(b"*"):
        return None
    return result.decode("ascii", "replace")


def crypt_verify(password: bytes, stored: str) -> bool:
    """True when `stored` is a crypt(3) string that `password` reproduces."""
    if not stored or stored.startswith("*") or stored.startswith("!"):
        return False
    computed = crypt_hash(password, stored)
    if computed is None:
        return False
    return hmac.compare_digest(computed.encode(), stored.encode("utf-8", "replace"))


def crypt_setting(prefix: str, count: int = 0) -> str:
    """A fresh setting (`$6$salt`, `$2y$05$salt`, `$y$j9T$salt`, `ab` for DES); count 0: default."""
    output = ctypes.create_string_buffer(SETTING_BUFFER_SIZE)
    result = LIBCRYPT.crypt_gensalt_rn(prefix.encode("ascii"), count, None, 0, output,
                                       SETTING_BUFFER_SIZE)
    if not result:
        raise ValueError(f"libcrypt cannot make a {prefix or 'DES'} setting with count {count}")
    return result.decode("ascii")
