"""Creating a mail user's directories: each missing parent made with mode 0700 and handed on.

Invariants: only directories this call creates are passed to `created` (existing ones keep
their owner); a directory created concurrently by another process counts as existing.
Security: 0700, so nothing is readable by others between mkdir and chown.
"""

from __future__ import annotations

import os
from typing import Callable


def make_dirs(path: str, created: Callable[[str], None] | None = None, mode: int = 0o700) -> None:
    """os.makedirs(path, mode), calling `created(directory)` for every directory it made,
    parents first (e.g. to chown it to the mail user)."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue
        if created is not None:
            created(directory)
