"""The durability run shared by tests/e2e/test_durability.py (a few hundred messages) and
bench/e2e_bench.py --durability (2,000): messages go in over SMTP at a given concurrency to a
whole roost server, every roost process is killed with SIGKILL in the middle, roost is
started again, and every message that got `250` must end up in the recipient's Maildir
(matched by Message-ID); duplicates (allowed by the contract: "at worst delivered twice") are
counted and reported. Not a test module."""

from __future__ import annotations

import os
import secrets
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from tests.e2e.server import Server, wait_for

RECIPIENT = "alice@example.test"


@dataclass
class DurabilityReport:
    sent: int
    acked: set[str] = field(default_factory=set)
    killed_after: int = 0
    killed_pids: int = 0
    delivered: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def lost(self) -> set[str]:
        return self.acked - set(self.delivered)

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.delivered.values() if count > 1)


def maildir_message_ids(maildir: str) -> Counter:
    found: Counter = Counter()
    for sub in ("new", "cur"):
        directory = os.path.join(maildir, sub)
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            try:
                with open(os.path.join(directory, name), "rb") as handle:
                    head = handle.read(4096)
            except OSError:
                continue
            for line in head.split(b"\n"):
                if line.lower().startswith(b"message-id:"):
                    found[line.split(b":", 1)[1].strip().decode("ascii", "replace")] += 1
                    break
    return found


def queue_empty(server: Server) -> bool:
    """No complete message left to deliver. Files a killed writer never finished (no
    owner-execute bit: never acknowledged) stay in incoming, as Postfix leaves them, until
    recovery sets them aside a day later."""
    from roost.queue import QueueLayout, recovery
    layout = QueueLayout(server.path("spool"))
    return not any(any(recovery.ready(layout, queue))
                   for queue in ("maildrop", "incoming", "active", "deferred"))


def run(server: Server, count: int, concurrency: int, size: int = 1024,
        settle: float = 120.0) -> DurabilityReport:
    """The server must be initialised with RECIPIENT and started; it is killed and restarted."""
    report = DurabilityReport(sent=count)
    token = secrets.token_hex(4)
    padding = (b"x" * 75 + b"\r\n") * max(1, size // 77)
    lock = threading.Lock()
    next_index = [0]
    kill_at = count // 2
    killed = threading.Event()

    def take() -> int | None:
        with lock:
            if next_index[0] >= count:
                return None
            next_index[0] += 1
            return next_index[0] - 1

    def client() -> None:
        smtp = None
        while True:
            index = take()
            if index is None:
                break
            message_id = f"<dur-{index}-{token}@test>"
            data = (f"From: bench@example.org\r\nTo: {RECIPIENT}\r\nSubject: durability {index}\r\n"
                    f"Message-ID: {message_id}\r\n\r\n").encode() + padding
            try:
                if smtp is None:
                    smtp = smtplib.SMTP("127.0.0.1", server.smtp, timeout=30)
                    smtp.ehlo("bench.example")
                smtp.mail("bench@example.org")
                smtp.rcpt(RECIPIENT)
                code, _text = smtp.data(data)
                if code == 250:
                    with lock:
                        report.acked.add(message_id)
                        if len(report.acked) == kill_at and not killed.is_set():
                            killed.set()
            except (OSError, smtplib.SMTPException):
                smtp = None
                if killed.is_set():
                    wait_for(lambda: server_up.is_set(), 120)
                continue

    server_up = threading.Event()
    started = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    assert killed.wait(300), "never reached the kill point"
    report.killed_after = len(report.acked)
    report.killed_pids = len(server.kill())
    server.start()   # recovery: active files back to incoming, then delivered
    server_up.set()
    for thread in threads:
        thread.join(600)
    maildir = server.path(os.path.join("mail", "example.test", "alice", "Maildir"))
    wait_for(lambda: queue_empty(server) and report.acked <= set(maildir_message_ids(maildir)),
             settle)
    time.sleep(0.5)   # a delivery in flight when the queue emptied
    report.delivered = maildir_message_ids(maildir)
    report.seconds = time.monotonic() - started
    return report


def durability_server() -> Server:
    server = Server(users=(f"{RECIPIENT}:Secret-pw1",))
    server.init()
    # a message deferred by the kill (its delivery cut off) is retried at once
    server.append("main.cf", "minimal_backoff_time = 1s\nmaximal_backoff_time = 2s\n"
                  "queue_run_delay = 1s\n")
    return server
