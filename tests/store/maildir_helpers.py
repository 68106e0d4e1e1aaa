"""Shared helpers for the Maildir store tests: a store in tmp_path, and a private Dovecot
2.3 (doveadm) pointed at the same Maildir as the oracle."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

from roost.store.location import AutoMailbox, MailLocation, MailSettings
from roost.store.maildir import MaildirUserStore
from tests.conftest import require_tool

DOVECOT_UID = 5000  # when the tests run as root: Dovecot refuses mail access as root


def make_store(tmp_path: Path, *, layout: str = "maildir++", mail: MailSettings | None = None,
               user: str = "alice", **options) -> MaildirUserStore:
    location = MailLocation("maildir", str(tmp_path / "Maildir"), layout=layout, **options)
    return MaildirUserStore(user, location, mail)


def message(subject: str = "hello", body: str = "body text", crlf: bool = True) -> io.BytesIO:
    text = f"From: a@example.test\nTo: b@example.test\nSubject: {subject}\n\n{body}\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    return io.BytesIO(text.encode())


def special_mailboxes() -> MailSettings:
    return MailSettings(mailboxes=(AutoMailbox("Sent", "\\Sent", "subscribe"),
                                   AutoMailbox("Trash", "\\Trash", "create"),
                                   AutoMailbox("Drafts", "\\Drafts", "no")))


class Doveadm:
    """doveadm of Debian's Dovecot 2.3 on a Maildir, run as the mail owner without a server."""

    def __init__(self, tmp_path: Path, maildir: Path, *, layout: str = "", options: str = "",
                 separator: str = "", prefix: str = "", extra: str = ""):
        self.doveadm = require_tool("doveadm")
        self.maildir = maildir
        self.home = tmp_path / "dovecot-home"
        self.home.mkdir(exist_ok=True)
        self.uid = os.getuid() or DOVECOT_UID
        self.gid = os.getgid() if os.getuid() else DOVECOT_UID
        base = tmp_path / "dovecot-run"
        base.mkdir(exist_ok=True)
        location = f"maildir:{maildir}" + (f":LAYOUT={layout}" if layout else "") + options
        self.conf = tmp_path / "dovecot.conf"
        self.conf.write_text(
            f"base_dir = {base}\nstate_dir = {base}\nlog_path = {tmp_path / 'dovecot.log'}\n"
            f"first_valid_uid = 1\nfirst_valid_gid = 1\nmail_location = {location}\n"
            "namespace inbox {\n  inbox = yes\n"
            + (f"  prefix = {prefix}\n" if prefix else "") +
            f"  separator = {separator or ('/' if layout == 'fs' else '.')}\n}}\n" + extra)

    def run(self, *args: str, input: bytes | None = None) -> str:
        if os.getuid() == 0:  # hand the tree to the mail user Dovecot drops to
            self.maildir.mkdir(parents=True, exist_ok=True)
            subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(self.maildir.parent)],
                           check=True)
        env = dict(os.environ, USER="alice", HOME=str(self.home))
        result = subprocess.run(
            [self.doveadm, "-c", str(self.conf), "-o", f"mail_uid={self.uid}",
             "-o", f"mail_gid={self.gid}", *args], input=input, capture_output=True,
            env=env, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"doveadm {args} failed: {result.stderr.decode()}")
        return result.stdout.decode()

    def save(self, text: bytes, mailbox: str = "INBOX") -> None:
        self.run("save", "-m", mailbox, input=text)

    def lda(self, text: bytes, mailbox: str | None = None) -> None:
        """Deliver with Dovecot's LDA (dovecot-lda), as the mail user (no auth server needed
        then: the user and home come from USER and HOME)."""
        lda = "/usr/lib/dovecot/dovecot-lda"
        command = [lda, "-c", str(self.conf), "-f", "sender@example.test"]
        if mailbox:
            command += ["-m", mailbox]
        if os.getuid() == 0:
            subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(self.maildir.parent)],
                           check=True)
            command = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                       "--clear-groups", *command]
        env = dict(os.environ, USER="alice", HOME=str(self.home))
        result = subprocess.run(command, input=text, capture_output=True, env=env, timeout=60)
        if result.returncode != 0:
            raise AssertionError(f"dovecot-lda failed: {result.stderr.decode()}")

    def fetch(self, mailbox: str = "INBOX") -> dict[int, frozenset[str]]:
        """uid -> flags and keywords (\\Recent left out: it is per session)."""
        out = self.run("fetch", "uid flags", "mailbox", mailbox, "all")
        found: dict[int, frozenset[str]] = {}
        uid = None
        for line in out.splitlines():
            if line.startswith("uid: "):
                uid = int(line[5:])
            elif line.startswith("flags:") and uid is not None:
                found[uid] = frozenset(line[6:].split()) - {"\\Recent"}
        return found

    def status(self, mailbox: str = "INBOX") -> dict[str, int]:
        out = self.run("mailbox", "status", "messages uidnext uidvalidity", mailbox)
        fields = dict(item.split("=", 1) for item in out.split()[1:])
        return {key: int(value) for key, value in fields.items()}

    def mailboxes(self) -> set[str]:
        return set(self.run("mailbox", "list").splitlines())

    def subscribed(self) -> set[str]:
        return set(self.run("mailbox", "list", "-s").splitlines())
