"""File system errors as store errors, with Dovecot's wording for users.

Implements the mapping Dovecot applies to storage failures (lib-storage mail-error.h):
ENOSPC/EDQUOT are "Not enough disk space" (a QuotaExceeded: IMAP [OVERQUOTA], LMTP 552),
EACCES/EPERM and everything else an internal error whose details go to the log only
("Internal error occurred. Refer to server log for more information.").

Invariants: only OSError is translated; StoreError subclasses pass through untouched.
Security: paths and errno texts are logged, never shown to the user.
"""

from __future__ import annotations

import errno
import functools
import logging

from roost.store.api import QuotaExceeded, StoreError

log = logging.getLogger("roost.store")
INTERNAL_ERROR = "Internal error occurred. Refer to server log for more information."


class StorageFailure(StoreError):
    """The file system failed under the store (details in the log)."""


def translate(error: OSError) -> StoreError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return QuotaExceeded("Not enough disk space")
    log.error("%s", error)
    return StorageFailure(INTERNAL_ERROR)


def store_errors(method):
    """Decorator: OSError out of a store method becomes a StoreError."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except OSError as error:
            raise translate(error) from error
    return wrapper
