"""Fixtures for the store tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def open_tmp():
    """A fresh directory every user can traverse (0755, under /tmp): Dovecot drops to the mail
    user (uid 5000 when the tests run as root), which cannot enter pytest's 0700 tmp_path.
    Removed after the test."""
    base = Path(tempfile.mkdtemp(prefix="roost-store-", dir="/tmp"))
    os.chmod(base, 0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
