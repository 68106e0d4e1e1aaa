"""Run Debian's Dovecot imap binary in PREAUTH mode over a pipe against a private Maildir.

The oracle for the message-analysis differential tests: the corpus is written into a Maildir
(with a dovecot-uidlist so UID n is corpus entry n), a minimal dovecot.conf points at it, and
`/usr/lib/dovecot/imap -c CONF` is run once with every command batched on stdin. Tests run as
root here, so mail_uid/mail_gid are an unprivileged numeric id (5000) that owns the Maildir.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

from tests.conftest import require_tool

IMAP_BINARY = "/usr/lib/dovecot/imap"
MAIL_ID = 5000
_LITERAL_END = re.compile(rb"\{(\d+)\}\r\n\Z")


def _chown_tree(root: Path) -> None:
    if os.geteuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, MAIL_ID, MAIL_ID)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), MAIL_ID, MAIL_ID)


class DovecotOracle:
    def __init__(self, root: Path, messages: list[bytes], internal_dates: list[float],
                 flag_letters: list[str] | None = None, keywords: list[str] = ()):
        """flag_letters[i]: Maildir info letters of message i+1 (RFC-less Maildir "2," info:
        D F R S T, and a, b, ... for keywords[0], keywords[1], ... via dovecot-keywords)."""
        require_tool("doveconf")
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # the imap process runs as MAIL_ID and must traverse it
        self.root = root
        maildir = root / "home" / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        lines = [f"3 V1700000000 N{len(messages) + 1}"]
        for index, (data, when) in enumerate(zip(messages, internal_dates), start=1):
            base = f"1700000000.M{index:06d}P1.roosttest"
            letters = "".join(sorted(flag_letters[index - 1])) if flag_letters else ""
            path = maildir / "cur" / f"{base}:2,{letters}"
            path.write_bytes(data)
            os.utime(path, (when, when))
            lines.append(f"{index} :{base}")
        (maildir / "dovecot-uidlist").write_text("\n".join(lines) + "\n")
        if keywords:
            (maildir / "dovecot-keywords").write_text(
                "".join(f"{i} {k}\n" for i, k in enumerate(keywords)))
        (root / "run").mkdir(exist_ok=True)
        uid = MAIL_ID if os.geteuid() == 0 else os.geteuid()
        gid = MAIL_ID if os.geteuid() == 0 else os.getegid()
        self.conf = root / "dovecot.conf"
        self.conf.write_text(
            f"mail_location = maildir:{maildir}\nbase_dir = {root}/run\n"
            "log_path = /dev/stderr\nssl = no\nprotocols = imap\n"
            f"mail_uid = {uid}\nmail_gid = {gid}\nfirst_valid_uid = 0\nfirst_valid_gid = 0\n"
            "imap_max_line_length = 64k\n")
        _chown_tree(root / "home")

    def session(self, commands: list[bytes], timeout: float = 120, attempts: int = 3) -> bytes:
        """Raw output of one PREAUTH session given these command lines (CRLF added).

        stdin stays open until the final LOGOUT is answered: Dovecot drops still-queued
        pipelined commands when it sees end of input, which made busy runs lose answers.
        A session that dies (the shared test machine is sometimes very loaded) is retried."""
        for attempt in range(attempts):
            try:
                return self._session(commands, timeout)
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _session(self, commands: list[bytes], timeout: float) -> bytes:
        script = b"".join(c + b"\r\n" for c in commands) + b"ZZ LOGOUT\r\n"
        env = {"USER": "roosttest", "HOME": str(self.root / "home"), "PATH": os.environ.get("PATH", "")}
        proc = subprocess.Popen([IMAP_BINARY, "-c", str(self.conf)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        writer = threading.Thread(target=self._write, args=(proc, script), daemon=True)
        writer.start()
        output = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while not re.search(rb"(?:\A|\n)ZZ (?:OK|NO|BAD)", output):
                if time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError("dovecot imap did not finish")
                chunk = proc.stdout.read1(65536)
                if not chunk:
                    break
                output += chunk
        finally:
            writer.join(timeout)
            try:
                proc.stdin.close()
            except OSError:
                pass
            output += proc.stdout.read()
            proc.wait(timeout)
            errors = proc.stderr.read()
            proc.stdout.close()
            proc.stderr.close()
        if proc.returncode != 0 or not re.search(rb"(?:\A|\n)(?:ZZ OK|\* BYE)", output):
            raise RuntimeError(f"dovecot imap failed: rc={proc.returncode} stderr={errors[-2000:]!r} "
                               f"stdout tail={bytes(output[-500:])!r}")
        return bytes(output)

    @staticmethod
    def _write(proc: subprocess.Popen, script: bytes) -> None:
        try:
            proc.stdin.write(script)
            proc.stdin.flush()
        except OSError:
            pass


def split_responses(raw: bytes) -> list[bytes]:
    """Split a server byte stream into whole responses (a line plus any literals it carries)."""
    out, pos = [], 0
    while pos < len(raw):
        start = pos
        while True:
            end = raw.find(b"\r\n", pos)
            if end < 0:
                pos = len(raw)
                break
            line_end = end + 2
            match = _LITERAL_END.search(raw, pos, line_end)
            if match and match.end() == line_end:
                pos = line_end + int(match.group(1))
                continue
            pos = line_end
            break
        out.append(raw[start:pos])
    return out
