"""local(8): delivery to the users of this machine (mydestination recipients).

Per recipient, in Postfix's order (local(8) "DESCRIPTION"):
  1. `Delivered-To:` loop check: the message already carries this recipient → bounce
     `mail forwarding loop for ADDR` (5.4.6);
  2. alias_maps (aliases(5), roost.tables.aliases: lists, chains, :include:, /file, |command,
     owner- aliases as envelope sender of the expansion) — addresses in a local domain are
     expanded here, others are forwarded;
  3. the user's .forward per forward_path (`\\user` delivers to the mailbox itself);
  4. mailbox_command, else home_mailbox (`Maildir/` → Maildir, else mbox under $HOME), else
     mail_spool_directory/USER (mbox; a trailing / makes it a Maildir);
  unknown users go to luser_relay when set, else bounce `unknown user: "name"` (5.1.1).
recipient_delimiter: `user+ext` delivers to `user` (the extension is offered to .forward+ext).
allow_mail_to_commands / allow_mail_to_files decide which sources may name commands and files.

Results: one RecipientResult per request recipient (the worst of its targets: deferred over
bounced over sent) with one `expanded` entry per final target; one log line per target
(`to=<target>, orig_to=<recipient>, relay=local, ... (delivered to maildir)`).

Maildir writes that need no other uid go to the process's commit thread
(roost.delivery.commit_thread, shared with virtual(8): group commit of new/ fsyncs).

Invariants: `deliver` never raises; an unexpected error defers with 4.3.0.
Security: as root, mailboxes and .forward targets are written as the user, alias
files/commands as the alias database owner (default_privs when that is root), mail spool
mbox files as root then owned by the user; never as root for a command or file target.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from dataclasses import dataclass
from typing import Callable

from roost.delivery import BOUNCED, DEFERRED, SENT, DeliveryRequest, Recipient, RecipientResult
from roost.delivery.command import run_command
from roost.delivery.logline import Timer, log_results
from roost.delivery.mailbox import (MailboxError, MaildirJob, append_mbox, content_chunks,
                                    deliver_maildir, delivery_headers)
from roost.delivery import commit_thread
from roost.delivery.privileges import privs_of, run_as, runs_in_process
from roost.delivery.forward import Forwarder, default_forwarder
from roost.tables import open_table
from roost.tables.access import split_extension
from roost.tables.address import split_result_list
from roost.tables.aliases import expand, owner_alias
from roost.tables.base import TableError

HEADER_LIMIT = 1024 * 1024
MAX_FORWARD_DEPTH = 10
_VARIABLE = re.compile(r"\$(?:\{(\w+)(?:([?:])([^}]*))?\}|(\w+))")


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str = "/bin/sh"


def system_user(name: str) -> User | None:
    import pwd
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return User(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, entry.pw_shell)


def expand_local_variables(template: str, values: dict[str, str]) -> str:
    """local(8) $name, ${name}, ${name?text}, ${name:text} in forward_path, luser_relay..."""
    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(4)
        value = values.get(name, "")
        if match.group(2) == "?":
            return match.group(3) if value else ""
        if match.group(2) == ":":
            return "" if value else match.group(3)
        return value
    return _VARIABLE.sub(substitute, template)


def delivered_to_values(chunks) -> set[str]:
    """Lower-cased Delivered-To: values in the message header (loop detection); `chunks()`
    gives the message with LF line ends (roost.delivery.mailbox.content_chunks). Reading
    stops at the end of the header (or after HEADER_LIMIT bytes)."""
    found: set[str] = set()
    header = b""
    source = chunks()
    try:
        for chunk in source:
            header += chunk
            if b"\n\n" in header or len(header) >= HEADER_LIMIT:
                break
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
    header = header[:HEADER_LIMIT]
    end = header.find(b"\n\n")
    header = header[:end if end >= 0 else len(header)]
    if b"delivered-to:" not in header.lower():   # the usual case: no line to look at
        return found
    for line in header.splitlines():
        if line[:13].lower() == b"delivered-to:":
            found.add(line[13:].strip().decode("utf-8", "replace").lower())
    return found


class LocalAgent:
    def __init__(self, request: DeliveryRequest, settings, log, *, users: Callable[[str], User | None],
                 forwarder: Forwarder, timer: Timer):
        self.request = request
        self.settings = settings
        self.log = log
        self.users = users
        self.forwarder = forwarder
        self.timer = timer
        self.myorigin = settings.get("myorigin") or settings.get("myhostname")
        self.delimiter = settings.get("recipient_delimiter")
        self.local_domains = {d.lower() for d in settings.list("mydestination")} | {"localhost"}
        self.allow_commands = {x.lower() for x in settings.list("allow_mail_to_commands")}
        self.allow_files = {x.lower() for x in settings.list("allow_mail_to_files")}
        self.delivered_header_classes = {x.lower() for x in settings.list("prepend_delivered_header")}
        self._loop_values: set[str] | None = None
        self.envelope_sender = request.sender   # owner-LIST while LIST's expansion is delivered

    # ------------------------------------------------------------------ helpers
    def is_local(self, address: str) -> bool:
        return address.rpartition("@")[2].lower() in self.local_domains

    def qualify(self, name: str) -> str:
        return name if "@" in name else f"{name}@{self.myorigin}"

    def loop_values(self) -> set[str]:
        if self._loop_values is None:
            self._loop_values = delivered_to_values(content_chunks(self.request))
        return self._loop_values

    def result(self, recipient: Recipient, target: str, status: str, dsn: str, text: str) -> RecipientResult:
        shown = Recipient(target, recipient.orcpt, recipient.notify, recipient.original or recipient.address)
        return RecipientResult(shown, status, dsn, text, "local")

    def _headers(self, delivered_to: str, original: str, kind: str) -> bytes:
        prepend = kind in self.delivered_header_classes or kind == "mailbox" and "file" in self.delivered_header_classes
        return delivery_headers(self.envelope_sender, original, delivered_to if prepend else None)

    # ------------------------------------------------------------------ per recipient
    async def recipient(self, recipient: Recipient) -> RecipientResult:
        address = recipient.address
        original = recipient.original or address
        local, _, domain = address.rpartition("@") if "@" in address else (address, "", "")
        if address.lower() in self.loop_values():   # local(8): Delivered-To loop detection
            outcome = self.result(recipient, address, BOUNCED, "5.4.6", f"mail forwarding loop for {address}")
            return _aggregate(recipient, [outcome])
        try:
            # nis:mail.aliases (in Postfix's default) answers nothing without a NIS domain, as in Postfix
            tables = [open_table(ref, aliases=True) for ref in self.settings.list("alias_maps")
                      if not ref.startswith("nis:")]
            expansion = expand(tables, local, is_local=self.is_local, recipient_delimiter=self.delimiter)
        except TableError as exc:
            outcome = self.result(recipient, address, DEFERRED, "4.3.0", f"alias database unavailable: {exc}")
            return _aggregate(recipient, [outcome])
        if not expansion.found:
            outcomes = await self.user(recipient, local, address, original, depth=0)
            return _aggregate(recipient, outcomes)
        owner = owner_alias(tables, local)
        # aliases(5): with an owner-LIST alias, LIST's expansion carries owner-LIST as sender
        sender = self.qualify(owner) if owner else self.request.sender
        self.envelope_sender = sender
        try:
            return await self._expanded(recipient, expansion, tables, address, original, sender)
        finally:
            self.envelope_sender = self.request.sender

    async def _expanded(self, recipient, expansion, tables, address: str, original: str,
                        sender: str) -> RecipientResult:
        alias_privs = self._alias_privileges(tables)
        outcomes: list[RecipientResult] = []
        forwards: list[str] = []
        for target in expansion.targets:
            source_class = "include" if target.via_include else "alias"
            if target.kind == "mailbox":
                outcomes += await self.user(recipient, target.value, self.qualify(target.value), original, depth=1)
            elif target.kind == "address":
                forwards.append(target.value)
            elif target.kind == "file":
                outcomes.append(await self.file(recipient, target.value, address, original, alias_privs, source_class))
            else:
                outcomes.append(await self.command(recipient, target.value, address, original, alias_privs,
                                                   source_class, None))
        if forwards:
            outcomes += await self.forward(recipient, forwards, address, original, sender)
        return _aggregate(recipient, outcomes)

    def _alias_privileges(self, tables) -> tuple[int, int]:
        for table in tables:
            path = getattr(table, "name", "")
            try:
                uid = os.stat(path).st_uid
            except (OSError, TypeError):
                continue
            if uid != 0:
                try:
                    import pwd
                    return uid, pwd.getpwuid(uid).pw_gid
                except KeyError:
                    return uid, uid
            break
        return privs_of(self.settings.get("default_privs") or "nobody")

    async def user(self, recipient: Recipient, name: str, address: str, original: str, depth: int) -> list[RecipientResult]:
        user_name, extension = split_extension(name.lower(), self.delimiter)
        user = self.users(user_name)
        if user is None:
            relay = self.settings.get("luser_relay")
            if relay:
                values = {"user": user_name, "local": name, "extension": extension[1:],
                          "recipient_delimiter": extension[:1], "domain": address.rpartition("@")[2],
                          "recipient": address, "original_recipient": original}
                return await self.forward(recipient, [expand_local_variables(relay, values)], address, original,
                                          self.envelope_sender)
            return [self.result(recipient, address, BOUNCED, "5.1.1", f'unknown user: "{user_name}"')]
        if depth < MAX_FORWARD_DEPTH:
            forwarded = await self.dot_forward(recipient, user, extension, address, original, depth)
            if forwarded is not None:
                return forwarded
        return [await self.mailbox(recipient, user, address, original)]

    async def dot_forward(self, recipient, user: User, extension: str, address: str, original: str,
                          depth: int) -> list[RecipientResult] | None:
        values = {"home": user.home, "user": user.name, "extension": extension[1:],
                  "recipient_delimiter": extension[:1], "local": address.rpartition("@")[0],
                  "domain": address.rpartition("@")[2], "recipient": address}
        for template in _split_paths(self.settings.raw("forward_path")):
            path = expand_local_variables(template, values)
            if not path:
                continue
            try:
                text = await asyncio.to_thread(run_as, user.uid, user.gid, _read_forward, path, user.uid)
            except OSError:
                text = None
            if text is None:
                continue
            outcomes: list[RecipientResult] = []
            forwards: list[str] = []
            for line in text.splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                for item in split_result_list(line):
                    item = item.strip().strip('"') if item.strip().startswith('"') else item.strip()
                    if item.startswith("\\"):   # \user: the mailbox itself, no more .forward
                        outcomes.append(await self.mailbox(recipient, user, address, original))
                    elif item.startswith("|"):
                        outcomes.append(await self.command(recipient, item[1:], address, original,
                                                           (user.uid, user.gid), "forward", user))
                    elif item.startswith("/"):
                        outcomes.append(await self.file(recipient, item, address, original, (user.uid, user.gid),
                                                        "forward"))
                    elif item:
                        forwards.append(item)
            if forwards:
                outcomes += await self.forward(recipient, forwards, address, original, self.envelope_sender)
            return outcomes or None
        return None

    async def mailbox(self, recipient: Recipient, user: User, address: str, original: str) -> RecipientResult:
        command = self._mailbox_command(user.name)
        if command:
            return await self.command(recipient, command, address, original, (user.uid, user.gid), "mailbox", user)
        headers = self._headers(recipient.address, original, "mailbox")
        limit = self.settings.size("mailbox_size_limit")
        home_mailbox = self.settings.get("home_mailbox")
        try:
            if home_mailbox:
                path = os.path.join(user.home, home_mailbox)
                if home_mailbox.endswith("/") and runs_in_process(user.uid):
                    await commit_thread.run(MaildirJob(path, headers, content_chunks(self.request),
                                                       size_limit=limit))
                    return self.result(recipient, address, SENT, "2.0.0", "delivered to maildir")
                if home_mailbox.endswith("/"):
                    await asyncio.to_thread(run_as, user.uid, user.gid, _maildir_job, path, headers,
                                            self.request.content, limit)
                    return self.result(recipient, address, SENT, "2.0.0", "delivered to maildir")
                await asyncio.to_thread(run_as, user.uid, user.gid, _mbox_job, path, self.envelope_sender, headers,
                                        self.request.content, limit, None)
                return self.result(recipient, address, SENT, "2.0.0", "delivered to mailbox")
            spool = self.settings.get("mail_spool_directory")
            path = os.path.join(spool, user.name)
            owner = (user.uid, user.gid)
            if spool.endswith("/"):
                await commit_thread.run(MaildirJob(path + "/", headers, content_chunks(self.request),
                                                   size_limit=limit, owner=owner))
                return self.result(recipient, address, SENT, "2.0.0", "delivered to maildir")
            await asyncio.to_thread(_mbox_job, path, self.envelope_sender, headers, self.request.content, limit, owner)
            return self.result(recipient, address, SENT, "2.0.0", "delivered to mailbox")
        except MailboxError as exc:
            return self.result(recipient, address, DEFERRED if exc.temporary else BOUNCED, exc.dsn, exc.text)
        except OSError as exc:
            return self.result(recipient, address, DEFERRED, "4.2.0", f"cannot deliver to mailbox: {exc}")

    def _never_root(self, privs: tuple[int, int]) -> tuple[int, int]:
        """local(8): files and commands are never written or run as root; default_privs instead."""
        return privs_of(self.settings.get("default_privs") or "nobody") if privs[0] == 0 else privs

    def _mailbox_command(self, user_name: str) -> str:
        """mailbox_command_maps (per user, first match) over mailbox_command."""
        for reference in self.settings.list("mailbox_command_maps"):
            value = open_table(reference).lookup(user_name)
            if value is not None:
                return value.strip()
        return self.settings.get("mailbox_command")

    async def file(self, recipient, path: str, address: str, original: str, privs: tuple[int, int],
                   source_class: str) -> RecipientResult:
        if source_class not in self.allow_files:
            return self.result(recipient, address, BOUNCED, "5.7.1", "mail to file is restricted")
        privs = self._never_root(privs)
        headers = self._headers(recipient.address, original, "file")
        try:
            if path.endswith("/"):
                await asyncio.to_thread(run_as, privs[0], privs[1], _maildir_job, path, headers,
                                        self.request.content, 0)
            else:
                await asyncio.to_thread(run_as, privs[0], privs[1], _mbox_job, path, self.envelope_sender, headers,
                                        self.request.content, 0, None)
        except MailboxError as exc:
            return self.result(recipient, address, DEFERRED if exc.temporary else BOUNCED, exc.dsn,
                               f"cannot append message to file {path}: {exc.text}")
        except OSError as exc:
            return self.result(recipient, address, DEFERRED, "4.2.0", f"cannot append message to file {path}: {exc}")
        return self.result(recipient, address, SENT, "2.0.0", f"delivered to file: {path}")

    async def command(self, recipient, command: str, address: str, original: str, privs: tuple[int, int],
                      source_class: str, user: User | None) -> RecipientResult:
        if source_class != "mailbox" and source_class not in self.allow_commands:
            return self.result(recipient, address, BOUNCED, "5.7.1", "mail to command is restricted")
        privs = self._never_root(privs)
        local_part, _, domain = address.rpartition("@")
        user_name, extension = split_extension(local_part.lower(), self.delimiter)
        env = {name: os.environ[name] for name in self.settings.list("export_environment") if name in os.environ}
        env.setdefault("PATH", "/usr/bin:/bin")
        env.update({"SENDER": self.envelope_sender, "RECIPIENT": address, "LOCAL": local_part, "DOMAIN": domain,
                    "EXTENSION": extension[1:], "ORIGINAL_RECIPIENT": original})
        if user is not None:
            env.update({"HOME": user.home, "LOGNAME": user.name, "USER": user.name, "SHELL": user.shell,
                        "USER": user.name})
        headers = self._headers(recipient.address, original, "command")
        with self.request.content() as source:
            outcome = await run_command(command, source, sender=self.envelope_sender, headers=headers, env=env,
                                        uid=privs[0], gid=privs[1],
                                        timeout=self.settings.time("command_time_limit"),
                                        shell=self.settings.get("local_command_shell"),
                                        cwd=user.home if user else None)
        return self.result(recipient, address, outcome.status, outcome.dsn, outcome.text)

    async def forward(self, recipient, addresses: list[str], address: str, original: str,
                      sender: str) -> list[RecipientResult]:
        targets = [self.qualify(a) for a in addresses]
        header = None
        if "forward" in self.delivered_header_classes:
            header = f"Delivered-To: {address}\r\n".encode("utf-8", "surrogateescape")
        try:
            queue_id = await self.forwarder(sender=sender, recipients=targets, original=original,
                                            prepend=header, request=self.request)
        except Exception as exc:
            return [self.result(recipient, address, DEFERRED, "4.3.0", f"unable to forward: {exc}")]
        return [self.result(recipient, target, SENT, "2.0.0", f"forwarded as {queue_id}") for target in targets]


def _split_paths(value: str) -> list[str]:
    return [item for item in re.split(r"[,\s]+", value) if item]


def _read_forward(path: str, owner: int) -> str | None:
    """A .forward file's text, when it is a regular file owned by the user (or root) and
    not writable by others (local(8) ignores any other)."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid not in (owner, 0) or st.st_mode & 0o002:
                return None
            return handle.read(64 * 1024).decode("utf-8", "replace")
    except OSError:
        return None


def _maildir_job(path: str, headers: bytes, opener, limit: int, owner=None) -> str:
    with opener() as source:
        return deliver_maildir(path, headers, source, size_limit=limit, owner=owner)


def _mbox_job(path: str, sender: str, headers: bytes, opener, limit: int, owner) -> int:
    with opener() as source:
        return append_mbox(path, sender, headers, source, size_limit=limit, owner=owner)


def _aggregate(recipient: Recipient, outcomes: list[RecipientResult]) -> RecipientResult:
    if not outcomes:
        return RecipientResult(recipient, SENT, "2.0.0", "discarded", "local")
    for status in (DEFERRED, SENT, BOUNCED):
        chosen = next((o for o in outcomes if o.status == status), None)
        if chosen is not None:
            return RecipientResult(recipient, status, chosen.dsn, chosen.text, "local", expanded=tuple(outcomes))
    return outcomes[0]


async def deliver(request: DeliveryRequest, settings, *, resolver=None, log, users=None,
                  forwarder: Forwarder | None = None) -> list[RecipientResult]:
    timer = Timer(request)
    agent = LocalAgent(request, settings, log, users=users or system_user,
                       forwarder=forwarder or default_forwarder(settings, log), timer=timer)
    results: list[RecipientResult] = []
    for recipient in request.recipients:
        try:
            result = await agent.recipient(recipient)
        except Exception as exc:   # the contract: never raise
            result = RecipientResult(recipient, DEFERRED, "4.3.0", f"unexpected error in local delivery: {exc!r}",
                                     "local")
        results.append(result)
        log_results(log, request.queue_id, list(result.expanded) or [result], timer)
    return results
