"""Differential test: PenaltyTable levels against a real Dovecot 2.3's anvil (`doveadm penalty`).

A private Dovecot serves IMAP on a loopback port; each sequence of logins (wrong password,
another wrong password, the same wrong password again, a success) comes from its own
source address in 127.0.0.0/8, all sequences at once (Dovecot delays each attempt from a
penalised address by the penalty; auth_failure_delay is 0 here to keep the test short). Afterwards `doveadm penalty` lists the
level anvil keeps per IP, and a PenaltyTable fed the same sequences must hold the same levels
and name the waits Dovecot made before each answer (measured, with a tolerance for load).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from roost.auth.penalty import PenaltyTable
from tests.auth.test_lookup_doveadm import stop_dovecot
from tests.conftest import require_tool

# source address -> passwords tried by alice, in order ("right" succeeds)
SEQUENCES = {
    "127.0.0.2": ["wrong1"],
    "127.0.0.3": ["wrong1", "wrong2"],
    "127.0.0.4": ["wrong1", "wrong1"],
    "127.0.0.5": ["wrong1", "right"],
    "127.0.0.6": ["wrong1", "wrong2", "wrong1"],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def imap_login(port: int, source: str, password: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60,
                                  source_address=(source, 0)) as connection:
        reader = connection.makefile("rb")
        reader.readline()  # greeting
        connection.sendall(f'a LOGIN alice "{password}"\r\n'.encode())
        while True:
            line = reader.readline()
            if not line or line.startswith(b"a "):
                return line


def anvil_levels(conf: Path) -> dict[str, int]:
    listing = subprocess.run(["doveadm", "-c", str(conf), "penalty"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    levels = {}
    for line in listing.splitlines()[1:]:
        words = line.split()
        if len(words) >= 2 and words[1].isdigit():
            levels[words[0]] = int(words[1])
    return levels


def test_penalty_levels_match_dovecot_anvil():
    require_tool("dovecot")
    require_tool("doveadm")
    root = Path(tempfile.mkdtemp(prefix="rpn", dir="/tmp"))
    os.chmod(root, 0o755)
    port = free_port()
    (root / "users").write_text("alice:{PLAIN}right:1000:1000::/tmp::\n")
    conf = root / "dovecot.conf"
    conf.write_text(
        f"protocols = imap\nlisten = 127.0.0.1\nbase_dir = {root}/run\n"
        f"state_dir = {root}/state\nlog_path = {root}/log\nssl = no\n"
        "auth_failure_delay = 0\n"
        f"disable_plaintext_auth = no\nmail_location = maildir:{root}/mail\n"
        "service imap-login {\n  inet_listener imap {\n"
        f"    port = {port}\n  }}\n}}\n"
        f"passdb {{\n  driver = passwd-file\n  args = {root}/users\n}}\n"
        f"userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={root}\n}}\n")
    try:
        subprocess.run(["dovecot", "-c", str(conf)], check=True, timeout=30)
        deadline = time.monotonic() + 10
        while (not (root / "run" / "anvil").exists() or not port_open(port)) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        replies: dict[str, list[bytes]] = {ip: [] for ip in SEQUENCES}
        durations: dict[str, list[float]] = {ip: [] for ip in SEQUENCES}

        def run(ip: str) -> None:
            for password in SEQUENCES[ip]:
                started = time.monotonic()
                replies[ip].append(imap_login(port, ip, password))
                durations[ip].append(time.monotonic() - started)

        threads = [threading.Thread(target=run, args=(ip,)) for ip in SEQUENCES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for ip, sequence in SEQUENCES.items():
            assert [reply.startswith(b"a OK") for reply in replies[ip]] == \
                [password == "right" for password in sequence], (ip, replies[ip])
        dovecot = anvil_levels(conf)
    finally:
        stop_dovecot(root)
        shutil.rmtree(root, ignore_errors=True)

    table = PenaltyTable(lambda: 0.0)  # every sequence took < 15 s: no decay on either side
    for ip, sequence in SEQUENCES.items():
        for password, took in zip(sequence, durations[ip]):
            # the wait Dovecot put before answering is the one delay_for names
            wait = table.delay_for(ip)
            assert wait - 0.5 <= took <= wait + 3, (ip, password, wait, took)
            if password == "right":
                table.record_success(ip)
            else:
                table.record_failure(ip, table.attempt_checksum("alice", password))
    ours = {ip: table.level(ip) for ip in SEQUENCES}
    theirs = {ip: dovecot.get(ip, 0) for ip in SEQUENCES}
    assert ours == theirs, (ours, theirs, dovecot)
    assert any(theirs.values())  # the comparison saw penalties at all


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
