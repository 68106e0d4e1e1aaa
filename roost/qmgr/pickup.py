"""pickup(8): local submissions from `maildrop` are passed through cleanup into `incoming`.

`sendmail` (roost.cli.sendmail) writes a queue file into maildrop as the submitting user.
Pickup reads each complete one, takes the submitter's identity from the file's owner (uid,
for the `Received: ... (Postfix, from userid N)` header and the log), hands sender,
recipients, DSN attributes and content to roost.cleanup (origin "sendmail"), and removes
the maildrop file once cleanup's queue file is durable. Log line as Postfix's pickup:
`ID: uid=1000 from=<bob>` (ID being the new queue ID).

Invariants: a maildrop file is removed only after its message is safely queued (or cleanup
rejected it, which is logged); an unreadable or malformed file is moved to `corrupt`.
Security: the file's contents never choose the uid; files that are not regular files owned
by someone are set aside, symlinks are not followed.
"""

from __future__ import annotations

import os
import pwd
import stat

from roost.queue import QueueFileError, QueueLayout, iter_content, read_envelope
from roost.queue.records import notify_words

MAILDROP_MODE = 0o1733  # write-only for everyone, sticky: like Postfix without setgid postdrop


def gecos_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_gecos.split(",")[0].strip()
    except KeyError:
        return ""


def prepare_maildrop(layout: QueueLayout) -> None:
    directory = layout.queue_dir("maildrop")
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, MAILDROP_MODE)


class Pickup:
    def __init__(self, layout: QueueLayout, cleanup, log):
        self.layout = layout
        self.cleanup = cleanup  # roost.cleanup.CleanupService
        self.log = log

    def scan(self) -> int:
        """Pick up every complete maildrop file; returns how many were queued."""
        queued = 0
        for queue_id, path in list(self.layout.scan("maildrop")):
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode):
                self._set_aside(queue_id, path, "not a regular file")
                continue
            if not info.st_mode & stat.S_IXUSR:
                continue  # sendmail is still writing it
            if self.take(queue_id, path, info.st_uid):
                queued += 1
        return queued

    def take(self, queue_id: str, path: str, uid: int) -> bool:
        try:
            qf = read_envelope(path, queue_id)
        except QueueFileError as exc:
            self._set_aside(queue_id, path, str(exc))
            return False
        envelope = {key: value for key, value in qf.attributes.items()
                    if key in ("ENVID", "RET", "BODY")}
        envelope["UID"] = str(uid)
        fullname = qf.fullname or gecos_name(uid)  # sendmail -F, else the user's GECOS name
        if fullname:
            envelope["FULLNAME"] = fullname
        message = self.cleanup.open(origin="sendmail", client=None, sender=qf.sender or "",
                                    envelope=envelope)
        try:
            for recipient in qf.recipients:
                message.add_recipient(recipient.address, orcpt=recipient.orcpt,
                                      notify=notify_words(recipient.notify) or None)
            for chunk in iter_content(qf):
                message.write(chunk.replace(b"\n", b"\r\n"))
            result = message.finish()
        except (OSError, QueueFileError) as exc:
            message.abort()
            self.log.warning(f"{queue_id}: pickup failed: {exc}")
            return False
        self.log.info(f"{result.queue_id}: uid={uid} from=<{qf.sender or ''}>")
        try:
            os.unlink(path)
        except OSError as exc:
            self.log.warning(f"{queue_id}: remove {path}: {exc.strerror}")
        return result.status in ("queued", "held")

    def _set_aside(self, queue_id: str, path: str, why: str) -> None:
        target = os.path.join(self.layout.ensure_directory("corrupt", queue_id), queue_id)
        try:
            os.rename(path, target)
            self.log.warning(f"{queue_id}: {why}: moved to the corrupt queue")
        except OSError:
            pass
