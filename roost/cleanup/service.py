"""CleanupService / CleanupMessage: cleanup(8) for one worker process (contract in __init__).

Per message: `open` creates the queue file (roost.queue.writer) and writes the envelope
(sender qualified and canonicalized); `add_recipient` qualifies, canonicalizes and expands
each recipient through virtual_alias_maps; `write` streams the content: the primary
headers are split (roost.cleanup.headers, bounded by header_size_limit), checked
(header_checks; mime_header_checks for MIME headers, RFC 2045), rewritten (addresses in
From/Sender/Reply-To/To/Cc/... headers) and written one at a time; the body goes to the file
in whole chunks, CRLF turned into LF, and is split into lines only when body_checks is set
(and only within body_checks_size_limit). `finish` adds the missing Message-Id / Date /
From headers for local mail (always_add_missing_headers, local_header_rewrite_clients),
writes the extracted recipients (always_bcc, sender_bcc_maps, recipient_bcc_maps, BCC
actions), then the end record, and returns only after the file and its directory are
fsynced (HOLD: the file is moved into `hold` first).

Log lines (Postfix's cleanup formats): `ID: message-id=<...>`, `ID: reject: header H from
host[addr]; from=<s> to=<r> proto=ESMTP helo=<h>: 5.7.1 text`, likewise warning/hold/discard/
info/replace/redirect/filter/bcc and `body` lines.

Invariants: memory per message is bounded by header_size_limit plus one chunk; nothing is
written after a rejection; an aborted or rejected message leaves no file; table failures
become `451 4.3.0 Error: queue file write error`-style replies, never escape as exceptions
from write().
Security: header/body text is matched and copied, never interpreted beyond addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress

from roost.cleanup import CleanupResult, ClientInfo
from roost.cleanup.addresses import rewrite_address_list
from roost.cleanup.actions import CheckActions
from roost.cleanup.checks import Checks
from roost.cleanup.headers import HeaderSplitter, header_name
from roost.cleanup.mime import MimeScanner, content_type
from roost.cleanup.received import mail_date, message_id, received_header
from roost.cleanup.rewrite import Rewriter, RewriteLoop
from roost.proto.smtp.reply import Reply
from roost.qmgr.trigger import notify_queued
from roost.queue.committer import Committer
from roost.queue.layout import QueueLayout
from roost.queue.records import notify_mask
from roost.queue.writer import DirectorySync, QueueFileWriter
from roost.tables.base import TableError

SENDER_HEADERS = frozenset(("from", "sender", "reply-to", "errors-to", "return-receipt-to",
                            "resent-from", "resent-sender", "resent-reply-to", "disposition-notification-to"))
RECIPIENT_HEADERS = frozenset(("to", "cc", "bcc", "apparently-to", "resent-to", "resent-cc", "resent-bcc"))
HOP_HEADERS = frozenset(("received", "delivered-to"))
MAILER_DAEMON = "MAILER-DAEMON"
FLUSH_AT = 1 << 16
CONTEXT_CACHE_SIZE = 4096  # client addresses whose header context is remembered
HEADER_MEMO_SIZE = 4096  # rewritten address headers remembered (no canonical tables only)
MAX_CHECKED_LINE = 1 << 16   # a longer "line" passes body_checks unchecked (Postfix splits it too)

# envelope parameters (MAIL FROM ESMTP keywords, sendmail options) -> queue file attributes
ENVELOPE_ATTRIBUTES = {"ENVID": "dsn_envid", "RET": "dsn_ret", "BODY": "body_type", "SMTPUTF8": "smtputf8",
                       "SIZE": "declared_size", "FULLNAME": "full_name", "UID": "uid"}

REPLY_TEMPFAIL = Reply(451, "4.3.0", "Error: queue file write error")
REPLY_SIZE = Reply(552, "5.3.4", "Message size exceeds fixed limit")
REPLY_HOPS = Reply(554, "5.4.0", "Error: too many hops")
REPLY_NO_RCPT = Reply(554, "5.5.1", "Error: no valid recipients")


class CleanupService:
    """One per worker process: settings, tables and directory descriptors are shared."""

    def __init__(self, settings, log) -> None:
        self.settings = settings
        self.log = log
        self.layout = QueueLayout.from_settings(settings)
        self.layout.ensure()
        self.dirsync = DirectorySync()
        self.committer = Committer(self.dirsync)  # its thread starts at the first finish_async
        self.long_ids = settings.bool("enable_long_queue_ids")
        self.myhostname = settings.get("myhostname")
        self.mail_name = settings.get("mail_name") or "Postfix"
        self.header_size_limit = max(1, settings.size("header_size_limit"))
        self.message_size_limit = settings.size("message_size_limit")
        self.body_checks_size_limit = settings.size("body_checks_size_limit")
        self.hopcount_limit = settings.int("hopcount_limit")
        self.duplicate_limit = settings.int("duplicate_filter_limit")
        self.tls_received_header = settings.bool("smtpd_tls_received_header")
        self.sasl_header = settings.bool("smtpd_sasl_authenticated_header")
        self.always_add = settings.bool("always_add_missing_headers")
        self.undisclosed = settings.get("undisclosed_recipients_header").strip()
        self.rewriter = Rewriter.from_settings(settings)
        self.header_checks = Checks(settings.list("header_checks"))
        self.mime_header_checks = Checks(settings.list("mime_header_checks"))
        self.body_checks = Checks(settings.list("body_checks"))
        self.nested_header_checks = Checks(settings.list("nested_header_checks"))
        self._rewrite_clients = settings.list("local_header_rewrite_clients")
        self._interfaces: list | None = None
        self._mynetworks: list | None = None
        self._context_cache: dict[tuple[str, bool], str] = {}
        rewriter = self.rewriter
        # without canonical tables a header's rewrite depends only on its text and context
        # (qualification by fixed settings): the From/To lines clients repeat are done once
        self.header_rewrites: dict | None = (
            None if rewriter.canonical or rewriter.sender_canonical or rewriter.recipient_canonical else {})

    # ------------------------------------------------------------------ client class
    def header_context(self, origin: str, client: ClientInfo | None) -> str:
        """"local" when headers are rewritten as locally posted (local_header_rewrite_clients)."""
        if origin != "smtpd" and origin != "lmtp" or client is None:
            return "local"
        # the answer depends only on these and on settings fixed for the service's life;
        # cached because parsing the address and matching networks costs more than the rest
        # of a small message's envelope
        key = (client.address, bool(client.sasl_username))
        context = self._context_cache.get(key)
        if context is None:
            if len(self._context_cache) >= CONTEXT_CACHE_SIZE:
                self._context_cache.clear()
            context = self._context_cache[key] = self._header_context(client)
        return context

    def _header_context(self, client: ClientInfo) -> str:
        for item in self._rewrite_clients:
            if item == "permit_inet_interfaces" and self._address_in(client.address, self._interface_networks()):
                return "local"
            if item == "permit_mynetworks" and self._address_in(client.address, self._mynetwork_list()):
                return "local"
            if item == "permit_sasl_authenticated" and client.sasl_username:
                return "local"
            if item in ("static:all", "permit"):
                return "local"
        return "remote"

    def _interface_networks(self) -> list:
        if self._interfaces is None:
            from roost.config import netinfo
            try:
                found = netinfo.interface_addresses(list(self.settings.list("inet_interfaces")),
                                                    list(self.settings.list("inet_protocols")))
                self._interfaces = [ipaddress.ip_network(a.ip) for a in found]
            except Exception:  # a bad inet_interfaces was reported at load time
                self._interfaces = [ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("::1")]
        return self._interfaces

    def _mynetwork_list(self) -> list:
        if self._mynetworks is None:
            networks = []
            for item in self.settings.list("mynetworks"):
                text = item.replace("[", "").replace("]", "")
                try:
                    networks.append(ipaddress.ip_network(text, strict=False))
                except ValueError:
                    continue  # tables and host names: matched by the SMTP policy, not here
            self._mynetworks = networks
        return self._mynetworks

    @staticmethod
    def _address_in(address: str, networks: list) -> bool:
        try:
            ip = ipaddress.ip_address(address.removeprefix("IPv6:"))
        except ValueError:
            return False
        return any(ip in network for network in networks if network.version == ip.version)

    # ------------------------------------------------------------------ contract
    def open(self, *, origin: str, client: ClientInfo | None, sender: str,
             envelope: dict[str, str]) -> "CleanupMessage":
        return CleanupMessage(self, origin, client, sender, dict(envelope or {}))

    def close(self) -> None:
        self.committer.close()
        self.dirsync.close()


class CleanupMessage(CheckActions):
    def __init__(self, service: CleanupService, origin: str, client: ClientInfo | None, sender: str,
                 envelope: dict[str, str]) -> None:
        self.service = service
        self.origin = origin
        self.client = client
        self.envelope = envelope
        self.original_sender = sender
        self.context = service.header_context(origin, client)
        self._writer = QueueFileWriter(service.layout, long_ids=service.long_ids, dirsync=service.dirsync,
                                       anonymous=True)
        self.queue_id = self._writer.queue_id
        self.arrival = self._writer.arrival_seconds + self._writer.arrival_usec / 1e6
        self.size = 0
        self.status = "queued"
        self.reply: Reply | None = None
        self.closed = False
        self._recipients: list[str] = []           # as the client gave them (Received "for")
        self._log_recipient: str | None = None     # to=<> of action log lines
        self._seen: set[str] = set()
        self._addresses: set[str] = set()          # final recipient addresses, lower-cased
        self._late: list[tuple[str, str | None, str | None, int]] = []
        self._bcc: list[str] = []
        self._filter: str | None = None
        self._redirect: str | None = None
        self._started = False
        self._splitter = HeaderSplitter(service.header_size_limit)
        self._out = bytearray()
        self._carry_cr = False
        self._hops = 0
        self._present: set[str] = set()
        self._body_seen = 0
        self._body_line = bytearray()
        self._body_checks_on = bool(service.body_checks)
        self._line_mode = False           # decided at the end of the primary header
        self._mime: MimeScanner | None = None
        self._part_index = 0
        self._unchecked_rest = False
        self._primary_type = None
        self._message_id_logged = False
        try:
            self.sender = self._rewrite_sender(sender)
            writer = self._writer
            if self.envelope.get("SMTPUTF8"):
                writer.smtputf8 = 1  # Postfix's SMTPUTF8_FLAG_REQUESTED in the size record
            writer.attribute("log_ident", self.queue_id)
            writer.attribute("rewrite_context", self.context)
            writer.sender(self.sender)
            for name, value in self._client_attributes():
                writer.attribute(name, value)
            sender_bcc = service.rewriter.sender_bcc_for(self.sender)
            if sender_bcc:
                self._bcc.append(sender_bcc)
        except (TableError, RewriteLoop) as exc:
            self._fail_temporarily(exc)
        except BaseException:
            self._writer.abort()
            raise

    # ------------------------------------------------------------------ envelope
    def _client_attributes(self) -> list[tuple[str, str]]:
        attrs: list[tuple[str, str]] = []
        client = self.client
        if client is not None:
            attrs += [("client_name", client.name), ("client_address", client.address)]
            if client.port is not None:
                attrs.append(("client_port", str(client.port)))
            if client.helo:
                attrs.append(("helo_name", client.helo))
            attrs.append(("protocol_name", client.protocol))
            if client.sasl_method:
                attrs.append(("sasl_method", client.sasl_method))
            if client.sasl_username:
                attrs.append(("sasl_username", client.sasl_username))
        attrs.append(("origin", self.origin))
        for key, value in self.envelope.items():
            name = ENVELOPE_ATTRIBUTES.get(key.upper())
            if name is not None and value is not None:
                attrs.append((name, str(value).replace("\n", " ")))
        return attrs

    def _rewrite_sender(self, sender: str) -> str:
        if not sender:
            return ""
        rewriter = self.service.rewriter
        return rewriter.canonical_sender(rewriter.qualify(sender), "envelope_sender")

    def add_recipient(self, address: str, *, orcpt: str | None = None, notify: str | None = None) -> None:
        if self.closed or self.reply is not None:
            return
        try:
            mask = notify_mask(notify)
        except ValueError:
            mask = 0
        self._recipients.append(address)
        rewriter = self.service.rewriter
        if orcpt is None:  # as Postfix: every envelope recipient keeps its DSN original (RFC 3461 4.2)
            given = address if self.origin in ("smtpd", "lmtp") else rewriter.qualify(address)
            orcpt = f"rfc822;{given}"
        try:
            qualified = rewriter.canonical_recipient(rewriter.qualify(address), "envelope_recipient")
            self._log_recipient = qualified
            expanded = rewriter.virtual_expand(qualified)
            bcc = rewriter.recipient_bcc_for(qualified)
        except (TableError, RewriteLoop) as exc:
            self._fail_temporarily(exc)
            return
        if bcc:
            self._bcc.append(bcc)
        for final in expanded:
            key = f"{final.lower()}\0{orcpt or ''}"
            if key in self._seen:
                continue
            if len(self._seen) < self.service.duplicate_limit:
                self._seen.add(key)
            self._addresses.add(final.lower())
            if self._started:
                self._late.append((final, address, orcpt, mask))
            else:
                self._writer.recipient(final, original=address, orcpt=orcpt, notify=mask)

    # ------------------------------------------------------------------ content
    def write(self, data: bytes, crlf_only: bool = False, lf_after_cr: bool = False) -> None:
        """Content as received (CRLF or LF lines, split anywhere). `crlf_only`: the caller
        knows every CR in `data` is the first half of a CRLF (DataContent.crlf_only);
        `lf_after_cr`: ... and every LF the second half of one (true of all DATA content,
        roost.proto.smtp.data); with both, the line count comes free with the CR deletion."""
        if self.closed:
            return
        self.size += len(data)
        if self.reply is not None:
            return
        limit = self.service.message_size_limit
        if limit and self.size > limit:
            self._reject(REPLY_SIZE, None)
            return
        try:
            if not self._started:
                self._start()
            if not self._splitter.done:
                headers, body = self._splitter.feed(data)
                for header in headers:
                    self._header(header)
                if not self._splitter.done:
                    return
                self._end_of_headers()
                # the body may begin with bytes held back from an earlier chunk: the shortcut
                # holds only for a suffix of this chunk (a suffix keeps every CR's LF with it)
                crlf_only = crlf_only and data.endswith(body)
                data = body
            self._body(data, crlf_only, lf_after_cr)
        except (TableError, RewriteLoop) as exc:
            self._fail_temporarily(exc)
        except OSError as exc:
            self._fail_temporarily(exc)

    def _start(self) -> None:
        self._started = True
        self._writer.start_content()
        service = self.service
        recipient = self._recipients[0] if len(self._recipients) == 1 else None
        uid = self.envelope.get("UID")
        text = received_header(client=self.client, myhostname=service.myhostname, mail_name=service.mail_name,
                               queue_id=self.queue_id, recipient=recipient, when=self.arrival,
                               tls_header=service.tls_received_header, sasl_header=service.sasl_header,
                               uid=int(uid) if uid and str(uid).isdigit() else None)
        # it is a header like any other: header_checks see it and it counts as a hop
        self._header(text.encode("utf-8", "surrogateescape"))

    def _emit(self, header: bytes) -> None:
        self._out += header
        self._out += b"\n"
        if len(self._out) >= FLUSH_AT:
            self._writer.content(bytes(self._out))
            self._out = bytearray()

    def _flush_out(self) -> None:
        if self._out:
            self._writer.content(bytes(self._out))
            self._out = bytearray()

    def _header(self, raw: bytes) -> None:
        if self.reply is not None:
            return
        text = original = raw.decode("utf-8", "surrogateescape")
        colon = text.find(":")
        # header_name(raw), lower-cased: the name is printable ASCII (HeaderSplitter)
        lname = (text[:colon].rstrip(" \t") if colon >= 0 else text).lower()
        service = self.service
        if lname in HOP_HEADERS:
            self._hops += 1
            if self._hops >= service.hopcount_limit:  # Postfix: our own Received counts too
                self._reject(REPLY_HOPS, None)
                return
        checks = service.mime_header_checks if lname.startswith("content-") or lname == "mime-version" \
            else service.header_checks
        action = checks.match(text) if checks else None
        if action is not None:
            result = self._act(action, "header", text)
            if result == "drop":
                return
            if isinstance(result, str) and result.startswith("prepend:"):
                self._emit(result[len("prepend:"):].encode("utf-8", "surrogateescape"))
            if isinstance(result, str) and result.startswith("replace:"):
                text = result[len("replace:"):]
                name = header_name(text.encode("utf-8", "surrogateescape"))
                lname = name.lower()
            if self.reply is not None:
                return
        self._present.add(lname)
        if lname == "content-type":
            self._primary_type = content_type(text.encode("utf-8", "surrogateescape"))
        if lname == "message-id" and not self._message_id_logged:
            self._message_id_logged = True
            self.service.log.info(f"{self.queue_id}: message-id={text.split(':', 1)[1].strip()}")
        if (lname in SENDER_HEADERS or lname in RECIPIENT_HEADERS) and (
                self.context == "local" or self.service.rewriter.remote_domain):
            # remote mail keeps its header addresses unless remote_header_rewrite_domain is set
            text = self._rewrite_header(text, lname)
        # unchanged text goes out as it came (decoding with surrogateescape is lossless)
        self._emit(raw if text is original or text == original else text.encode("utf-8", "surrogateescape"))

    def _rewrite_header(self, text: str, lname: str) -> str:
        memo = self.service.header_rewrites
        if memo is None:
            return self._rewrite_header_now(text, lname)
        key = (text, lname in SENDER_HEADERS, self.context)
        rewritten = memo.get(key)
        if rewritten is None:
            rewritten = self._rewrite_header_now(text, lname)
            if len(memo) >= HEADER_MEMO_SIZE:
                memo.clear()
            memo[key] = rewritten
        return rewritten

    def _rewrite_header_now(self, text: str, lname: str) -> str:
        name, _, value = text.partition(":")
        rewriter = self.service.rewriter
        context = self.context

        def one(address: str) -> str:
            if not address:
                return address
            qualified = rewriter.qualify(address, context)
            if lname in SENDER_HEADERS:
                return rewriter.canonical_sender(qualified, "header_sender")
            return rewriter.canonical_recipient(qualified, "header_recipient")

        new_value = rewrite_address_list(value, one)
        return text if new_value == value else f"{name}:{new_value}"

    def _end_of_headers(self) -> None:
        if self.reply is not None:
            return
        service = self.service
        primary = self._primary_type
        if primary and primary[0] in (b"multipart", b"message") and (
                service.mime_header_checks or service.nested_header_checks or self._body_checks_on):
            self._mime = MimeScanner(primary, service.header_size_limit)
        self._line_mode = self._body_checks_on or self._mime is not None
        if self.status == "discarded":  # Postfix adds nothing (and logs no message-id) then
            self._emit(b"")
            self._flush_out()
            return
        if self.context == "local" or service.always_add:
            if "message-id" not in self._present:
                value = f"<{message_id(self.arrival, self.queue_id, service.myhostname)}>"
                self._emit(f"Message-Id: {value}".encode())
                service.log.info(f"{self.queue_id}: message-id={value}")
                self._message_id_logged = True
            if "date" not in self._present:
                self._emit(f"Date: {mail_date(self.arrival)}".encode())
            if "from" not in self._present:
                self._emit(f"From: {self._from_value()}".encode("utf-8", "surrogateescape"))
            if service.undisclosed and not self._present & RECIPIENT_HEADERS - {"apparently-to"}:
                self._emit(service.undisclosed.encode("utf-8", "surrogateescape"))
        elif not self._message_id_logged:
            service.log.info(f"{self.queue_id}: message-id=<>")
            self._message_id_logged = True
        self._emit(b"")  # Postfix inserts the separator when the body began without one
        self._flush_out()

    def _from_value(self) -> str:
        if not self.sender:
            return MAILER_DAEMON
        fullname = self.envelope.get("FULLNAME")
        if fullname:
            return f'{fullname} <{self.sender}>'
        return self.sender

    def _body(self, data: bytes, crlf_only: bool = False, lf_after_cr: bool = False) -> None:
        if not data or self.reply is not None:
            return
        if self._carry_cr:
            data = b"\r" + data
            self._carry_cr = False
            crlf_only = False
        if data.endswith(b"\r"):
            data = data[:-1]
            self._carry_cr = True
        if not crlf_only:
            data = data.replace(b"\r\n", b"\n")
            newlines = None
        else:  # with only paired CRs, deleting every CR is the same and ~5x cheaper
            stored = data.translate(None, b"\r")
            # every CR deleted ended a line; so did every LF, when each followed a CR (a
            # suffix of such data may begin with the LF of a CR left out: then count)
            newlines = len(data) - len(stored) if lf_after_cr and data[:1] != b"\n" else None
            data = stored
        if not self._line_mode:
            self._writer.content(data, newlines)
            return
        self._line_body(data)

    def _line_body(self, data: bytes) -> None:
        """The body line by line: body_checks within body_checks_size_limit of each part,
        and the headers of MIME parts / attached messages when a MimeScanner is active.
        Once there is nothing left to look at, the rest passes through in one piece."""
        limit = self.service.body_checks_size_limit
        out = bytearray()
        start, length = 0, len(data)
        while start < length:
            if self._mime is None and (not self._body_checks_on or self._body_seen >= limit):
                out += self._body_line
                self._body_line = bytearray()
                out += data[start:]
                break
            newline = data.find(b"\n", start)
            if newline < 0:
                self._body_line += data[start:]
                if len(self._body_line) > MAX_CHECKED_LINE:  # too long to be a line worth checking
                    out += self._body_line
                    self._body_line = bytearray()
                    self._unchecked_rest = True
                break
            line = bytes(self._body_line) + data[start:newline]
            self._body_line = bytearray()
            start = newline + 1
            if self._unchecked_rest:  # the tail of an over-long line
                self._unchecked_rest = False
                out += line + b"\n"
                continue
            out += self._process_line(line)
            if self.reply is not None:
                return
        if out:
            self._writer.content(bytes(out))

    def _process_line(self, line: bytes) -> bytes:
        if self._mime is None:
            return self._body_line_out(line)
        out = b""
        for kind, item in self._mime.line(line):
            if self._mime.part_started != self._part_index:
                self._part_index = self._mime.part_started
                self._body_seen = 0  # body_checks_size_limit counts per part
            if kind == "body":
                out += self._body_line_out(item)
            elif kind in ("mime", "nested"):
                out += self._part_header_out(item, kind)
            else:
                out += item + b"\n"
        return out

    def _body_line_out(self, line: bytes) -> bytes:
        if not self._body_checks_on or self._body_seen >= self.service.body_checks_size_limit:
            return line + b"\n"
        self._body_seen += len(line) + 1
        text = line.decode("utf-8", "surrogateescape")
        action = self.service.body_checks.match(text)
        if action is None:
            return line + b"\n"
        return _edited(self._act(action, "body", text), line)

    def _part_header_out(self, header: bytes, kind: str) -> bytes:
        checks = self.service.mime_header_checks if kind == "mime" else self.service.nested_header_checks
        if not checks or self.reply is not None:
            return header + b"\n"
        text = header.decode("utf-8", "surrogateescape")
        action = checks.match(text)
        return header + b"\n" if action is None else _edited(self._act(action, "header", text), header)

    def _reject(self, reply: Reply, log: str | None) -> None:
        if self.reply is None:
            self.reply = reply
            self.status = "rejected"
        if log:
            self.service.log.info(log)

    def _fail_temporarily(self, exc: BaseException) -> None:
        self.service.log.warning(f"{self.queue_id}: {exc}")
        if self.reply is None:
            self.reply = REPLY_TEMPFAIL
            self.status = "rejected"

    # ------------------------------------------------------------------ completion
    def finish(self) -> CleanupResult:
        prepared = self._prepare_commit()
        if isinstance(prepared, CleanupResult):
            return prepared
        try:
            self._writer.commit(prepared)
        except OSError as exc:
            return self._closed_with(self._failed(exc))
        except BaseException:
            self.abort()
            raise
        return self._closed_with(self._queued_result())

    def _finish_records(self) -> CleanupResult | None:
        """All of finish() but the commit: a final result (rejected, discarded) or None when
        the file is ready for QueueFileWriter.finish / prepare_commit."""
        if self.reply is None and not self._started:
            self._start()
        if self.reply is None and not self._splitter.done:
            for header in self._splitter.finish():
                self._header(header)
            self._end_of_headers()
            self._body(self._splitter.trailing_body)
        if self.reply is None:
            if self._carry_cr:
                self._carry_cr = False
                self._writer.content(b"\r")
            if self._line_mode:
                tail = b""
                if self._body_line:
                    line, self._body_line = bytes(self._body_line), bytearray()
                    tail = line if self._unchecked_rest else self._process_line(line)[:-1]
                if self._mime is not None:
                    for kind, item in self._mime.finish():
                        tail += self._part_header_out(item, kind)[:-1] if kind in ("mime", "nested") else item
                if tail and self.reply is None:
                    self._writer.content(tail)
        if self.reply is None and self._writer.nrcpt == 0 and not self._late:
            self.reply, self.status = REPLY_NO_RCPT, "rejected"
        if self.reply is not None:
            self._writer.abort()
            self.closed = True
            return CleanupResult(self.queue_id, "rejected", self.reply, self.size, 0)
        if self.status == "discarded":
            self._writer.abort()
            self.closed = True
            return CleanupResult(self.queue_id, "discarded", _queued(self.queue_id), self.size, 0)
        writer = self._writer
        writer.end_content()
        for final, original, orcpt, mask in self._late:
            writer.recipient(final, original=original, orcpt=orcpt, notify=mask)
        rewriter = self.service.rewriter
        extra = ([rewriter.always_bcc] if rewriter.always_bcc else []) + self._bcc
        for bcc in extra:  # a copy never goes to an address that is a recipient already
            if bcc.lower() not in self._addresses:
                self._addresses.add(bcc.lower())
                writer.recipient(bcc, original=bcc)
        if self._filter:
            writer.attribute("content_filter", self._filter)
        if self._redirect:
            writer.attribute("redirect_to", self._redirect)
        return None

    def _failed(self, exc: BaseException) -> CleanupResult:
        self._fail_temporarily(exc)
        self.abort()
        return self._rejected_result()

    def _rejected_result(self) -> CleanupResult:
        return CleanupResult(self.queue_id, "rejected", self.reply or REPLY_TEMPFAIL, self.size, 0)

    def _queued_result(self) -> CleanupResult:
        # size: the stored content size, what Postfix logs as size= and mailq shows
        writer = self._writer
        if writer.queue == "incoming":   # durable now: the queue manager takes it at once
            notify_queued(self.service.layout.root, self.queue_id)
        return CleanupResult(self.queue_id, self.status, _queued(self.queue_id), writer.content_size, writer.nrcpt)

    async def finish_async(self, committer) -> CleanupResult:
        """finish() for an event loop: everything but the fsyncs runs here, and the file and
        its directory are made durable by `committer` (roost.queue.committer.Committer, one
        thread per process, group commit). Returns only after both fsyncs, as finish()."""
        prepared = self._prepare_commit()
        if isinstance(prepared, CleanupResult):
            return prepared
        try:
            await committer.commit(self._writer, prepared)
        except OSError as exc:  # the committer removed the file already
            return self._closed_with(self._failed(exc))
        except asyncio.CancelledError:
            # the committer owns the file until its fsyncs end; it stays durable (or is
            # removed by the committer on failure), as a finish() in a thread would
            self._closed_with(self._rejected_result())
            raise
        return self._closed_with(self._queued_result())

    def _prepare_commit(self) -> CleanupResult | tuple[str, ...]:
        """finish() up to the fsyncs: the final result when there is nothing to commit (or it
        failed, or the message is closed already), else the directories to fsync after the
        (complete, mode 0700) file."""
        if self.closed:
            return self._result
        try:
            result = self._finish_records()
            if result is None:
                return self._writer.prepare_commit("hold" if self.status == "held" else None)
        except (TableError, RewriteLoop, OSError) as exc:
            result = self._failed(exc)
        except BaseException:
            self.abort()
            raise
        return self._closed_with(result)

    def _closed_with(self, result: CleanupResult) -> CleanupResult:
        self._result = result
        self.closed = True
        return result

    def abort(self) -> None:
        self._writer.abort()
        if not self.closed:
            self.closed = True
            self._result = self._rejected_result()


def _queued(queue_id: str) -> Reply:
    return Reply(250, "2.0.0", f"Ok: queued as {queue_id}")


def _edited(result, original: bytes) -> bytes:
    """The output for a checked line or part header after its action's edit."""
    if result == "drop":
        return b""
    if isinstance(result, str) and result.startswith("replace:"):
        return result[len("replace:"):].encode("utf-8", "surrogateescape") + b"\n"
    if isinstance(result, str) and result.startswith("prepend:"):
        return result[len("prepend:"):].encode("utf-8", "surrogateescape") + b"\n" + original + b"\n"
    return original + b"\n"
