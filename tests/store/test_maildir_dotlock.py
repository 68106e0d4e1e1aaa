"""Dovecot-style dot-locks (roost.store.maildir.dotlock): one holder at a time across
processes, never blocked by a holder that was killed, stale locks broken by Dovecot's rules."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from roost.store.maildir.dotlock import DotLock, LockTimeout
from tests.conftest import REPO

HOLDER = r"""
import sys, time
from roost.store.maildir.dotlock import DotLock
mode = sys.argv[2]
if mode == "hold":
    lock = DotLock(sys.argv[1]); lock.acquire(); print("held", flush=True); time.sleep(60)
while True:
    with DotLock(sys.argv[1]):
        pass
"""


def spawn(path, mode):
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(path), mode],
                            stdout=subprocess.PIPE, text=True, env={"PYTHONPATH": str(REPO)})


def test_a_killed_holder_never_blocks(tmp_path):
    target = tmp_path / "dovecot-uidlist"
    rng = random.Random(3)
    for _ in range(8):
        proc = spawn(target, "loop")
        try:
            time.sleep(0.15 + rng.random() * 0.1)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stdout.close()
        if (tmp_path / "dovecot-uidlist.lock").exists():
            assert (tmp_path / "dovecot-uidlist.lock").read_bytes()  # never left empty
        started = time.monotonic()
        with DotLock(str(target), timeout=5):
            pass
        assert time.monotonic() - started < 1
    assert sorted(os.listdir(tmp_path)) == []  # no temporary files left behind


def test_a_live_holder_excludes_others(tmp_path):
    target = tmp_path / "dovecot-uidlist"
    proc = spawn(target, "hold")
    try:
        assert proc.stdout.readline() == "held\n"
        with pytest.raises(LockTimeout):
            DotLock(str(target), timeout=0.3).acquire()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    with DotLock(str(target), timeout=5):
        pass


def test_stale_rules(tmp_path):
    target = str(tmp_path / "dovecot-keywords")
    lock = target + ".lock"
    # another host's lock: only its age can make it stale
    with open(lock, "w") as handle:
        handle.write("1:elsewhere.example")
    with pytest.raises(LockTimeout):
        DotLock(target, timeout=0.2).acquire()
    os.utime(lock, (time.time() - 200, time.time() - 200))
    with DotLock(target, timeout=1):
        pass
    # empty (a Dovecot holder killed before writing its pid): stale after a few seconds
    open(lock, "w").close()
    with pytest.raises(LockTimeout):
        DotLock(target, timeout=0.2).acquire()
    os.utime(lock, (time.time() - 10, time.time() - 10))
    with DotLock(target, timeout=1) as held:
        held.replace(b"0 kw\n")
    assert open(target, "rb").read() == b"0 kw\n" and not os.path.exists(lock)
