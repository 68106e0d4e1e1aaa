"""A private Debian Dovecot 2.3 and roost.net.imap (in this process) on one dovecot.conf, for
IMAP differential tests: alice's Maildir is Dovecot's, bob's is roost's, so the same commands
can run against both and their answers be compared. Stopped by the test (Dovecot by pid).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port_base, require_tool
from tests.interop.test_imap_dovecot_differential import CONF, MAIL_UID, PASSWORD
from tests.net.pop3_harness import RealDovecot, RoostImap, make_certificate, traversable_dir

USERS = {"dovecot": "alice", "roost": "bob"}


class Servers:
    def __init__(self, directory: Path, port: int):
        self.directory = directory
        self.port = port
        self.conf = directory / "dovecot.conf"
        self.dovecot = None
        self.roost = None
        self.start()

    def start(self) -> None:
        self.dovecot = RealDovecot(self.conf, self.port)
        self.roost = RoostImap(self.conf)

    def stop(self) -> None:
        if self.roost is not None:
            self.roost.close()
            self.roost = None
        if self.dovecot is not None:
            self.dovecot.close()
            self.dovecot = None

    def ports(self) -> dict[str, int]:
        return {"dovecot": self.port, "roost": self.roost.port}

    def maildir(self, kind: str) -> Path:
        return self.directory / "mail" / USERS[kind] / "Maildir"


@contextmanager
def imap_pair(prefix: str):
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("the Dovecot IMAP differential tests run Dovecot with a private base_dir "
                    "and need root (CI runs the suite as root)", pytrace=False)
    with traversable_dir(prefix) as directory:
        port = free_port_base() + 143
        for name in ("run", "state", "mail"):
            (directory / name).mkdir()
        make_certificate(directory)
        (directory / "users").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n"
                                                 for u in USERS.values()))
        os.chown(directory / "mail", MAIL_UID, MAIL_UID)
        (directory / "dovecot.conf").write_text(CONF.format(dir=directory, uid=MAIL_UID,
                                                            port=port))
        both = Servers(directory, port)
        try:
            yield both
        finally:
            both.stop()


def both(servers: Servers, action) -> dict[str, object]:
    """{"dovecot": action("dovecot", port), "roost": action("roost", port)}"""
    return {kind: action(kind, port) for kind, port in servers.ports().items()}
