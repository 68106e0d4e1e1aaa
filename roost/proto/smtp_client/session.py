"""The SMTP / LMTP client conversation for one message on one connection, sans I/O.

Drives RFC 5321 §3.3 / §4.1 (greeting, EHLO with HELO fallback §4.1.4... MAIL, RCPT, DATA,
QUIT), RFC 2033 (LMTP: LHLO, one reply per accepted recipient after the content, §4.2),
RFC 3207 (STARTTLS: after 220 the driver starts TLS and the client forgets what it knew,
§4.2, and says EHLO again), RFC 4954 (AUTH), RFC 2920 (PIPELINING: MAIL, every RCPT and DATA
in one write, replies read in order; §3.1 "." after a 354 with no accepted recipient),
RFC 1870 (SIZE: refuse before MAIL when the message exceeds the server's limit), RFC 6152
(BODY=8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN: RET, ENVID, NOTIFY, ORCPT as xtext §4).

Use: `session = ClientSession(envelope, options)`; then loop: write `session.data_to_send()`,
read from the socket into `session.receive(data)` (or `receive_eof()`, `timed_out()`), and act
on `session.next_event()`: NeedTls → start TLS, then `tls_started()`/`tls_failed(reason)`;
NeedContent → `send_content(chunk)`... `end_content()`. `session.finished` once every
recipient has an Outcome (`session.outcomes`, by recipient index); `session.stage` names what
is being waited for (the driver picks the timeout: smtp_<stage>_timeout).

Texts are Postfix's: `host mx[ip] said: 550 5.1.1 ... (in reply to RCPT TO command)`,
`conversation with mx[ip] timed out while sending RCPT TO`, `lost connection with ...`.

Invariants: receive/receive_eof/timed_out never raise, whatever the bytes; after `finished`
no more commands are produced except QUIT (or RSET with keep_alive); each recipient gets exactly one Outcome.
Security: addresses are written inside <> after refusing CR/LF/NUL and `<>`; server text is
sanitised by the reply parser before it reaches logs and bounces.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from roost.proto.smtp_client.data import DataEncoder
from roost.proto.smtp_client.replies import ReplyParser, ServerReply, parse_ehlo_keywords
from roost.proto.smtp_client.sasl_client import ClientMechanism, choose_mechanism

SENT, DEFERRED, BOUNCED = "sent", "deferred", "bounced"

# What the client was doing when the conversation broke (Postfix's smtp_chat wording).
WHILE = {
    "greeting": "receiving the initial server greeting",
    "ehlo": "performing the EHLO handshake", "helo": "performing the HELO handshake",
    "lhlo": "performing the LHLO handshake", "starttls": "performing the STARTTLS handshake",
    "auth": "performing SASL authentication",
    "mail": "sending MAIL FROM", "rcpt": "sending RCPT TO", "data": "sending DATA command",
    "content": "sending message body",
    "dot": "sending end of data -- message may be sent more than once",
    "dot_ignored": "sending end of data -- message may be sent more than once",
    "quit": "performing the QUIT", "rset": "performing the RSET",
}
IN_REPLY_TO = {"ehlo": "EHLO", "helo": "HELO", "lhlo": "LHLO", "starttls": "STARTTLS",
               "mail": "MAIL FROM", "rcpt": "RCPT TO", "data": "DATA", "dot": "end of DATA"}
_UNSAFE = set("\r\n\0<>")


@dataclass(frozen=True)
class RcptSpec:
    address: str
    notify: str | None = None
    orcpt: str | None = None      # "rfc822;user@example.org" (decoded)


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: tuple[RcptSpec, ...]
    size: int | None = None
    body: str | None = None       # "8BITMIME" | "7BIT" | None
    smtputf8: bool = False        # the sender asked for SMTPUTF8 (RFC 6531 §3.4)
    utf8_required: bool = False   # ... and the envelope or header really is UTF-8
    ret: str | None = None        # "FULL" | "HDRS"
    envid: str | None = None


@dataclass(frozen=True)
class SessionOptions:
    peer: str                     # "mx.example.org[192.0.2.1]" for texts
    helo_name: str
    lmtp: bool = False
    tls_level: str = "none"       # none | may | encrypt (verify/secure: encrypt + driver checks)
    tls_possible: bool = True     # the driver can start TLS (has an ssl context)
    tls_active: bool = False      # connection is already TLS (wrapper mode)
    auth: tuple[str, str] | None = None            # (username, password) for this nexthop
    mechanism_filter: tuple[str, ...] = ()
    security_options: tuple[str, ...] = ("noplaintext", "noanonymous")
    tls_security_options: tuple[str, ...] = ("noplaintext", "noanonymous")
    always_send_ehlo: bool = True
    never_send_ehlo: bool = False
    skip_5xx_greeting: bool = True
    line_limit: int = 0           # smtp_line_length_limit: longer lines get CRLF SPACE inserted


@dataclass(frozen=True)
class Outcome:
    status: str                   # sent | deferred | bounced
    dsn: str
    text: str                     # Postfix's status text for the log and the bounce
    reply: str | None = None      # the server's reply (DSN Diagnostic-Code), when there was one
    retry_elsewhere: bool = False  # a soft failure another server of the destination may not have


@dataclass(frozen=True)
class NeedTls:
    pass


@dataclass(frozen=True)
class NeedContent:
    pass


@dataclass(frozen=True)
class ResumeState:
    """What a cached connection already knows (its EHLO keywords, TLS, AUTH)."""
    extensions: dict
    tls_active: bool
    authenticated: bool


@dataclass
class _Pending:
    stage: str
    index: int | None = None      # recipient index for rcpt / LMTP dot replies


def xtext(value: str) -> str:
    """RFC 3461 §4: xtext, `+HH` for `+`, `=`, and anything outside `!`..`~`."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else "".join(
        f"+{b:02X}" for b in c.encode("utf-8")) for c in value)


def _soft(dsn: str) -> str:
    return "4" + dsn[1:]


def _failure(reply: ServerReply) -> tuple[str, str]:
    """(status, dsn) for a reply that refuses: 5xx bounces, 4xx defers, and anything else
    where a refusal or success was due (1xx, 3xx) is a protocol error that defers."""
    if reply.code >= 500:
        return BOUNCED, reply.dsn
    if reply.code >= 400:
        return DEFERRED, reply.dsn
    return DEFERRED, "4.5.0"


class ClientSession:
    """`resume`: continue on a cached connection (no greeting, straight to MAIL);
    `keep_alive`: end with RSET instead of QUIT so the connection can be cached
    (`reusable` once the server said 250 to it; Postfix's connection cache does the same)."""

    def __init__(self, envelope: Envelope, options: SessionOptions, *, resume: ResumeState | None = None,
                 keep_alive: bool = False) -> None:
        self.envelope = envelope
        self.options = options
        self.outcomes: dict[int, Outcome] = {}
        self.extensions: dict[str, str] = {}
        self.tls_active = options.tls_active
        self.stage = "greeting"
        self.finished = False
        self.closed = False
        self._parser = ReplyParser()
        self._out = bytearray()
        self._events: deque = deque()
        self._expect: deque[_Pending] = deque([_Pending("greeting")])
        self._accepted: list[int] = []
        self._helo_kind = "lhlo" if options.lmtp else "ehlo"
        self._mechanism: ClientMechanism | None = None
        self._encoder: DataEncoder | None = None
        self._rcpt_queue: list[int] = []
        self._pipelined = False
        self._mail_failed = False
        self.authenticated = False
        self.keep_alive = keep_alive
        self.replies = 0   # server replies handled (a resumed session with none never got through)
        self.reusable = False
        self._established = False
        for index, rcpt in enumerate(envelope.recipients):
            if _UNSAFE & set(rcpt.address):
                self.outcomes[index] = Outcome(BOUNCED, "5.1.3", f"bad address syntax: {rcpt.address!r}")
        if _UNSAFE & set(envelope.sender):
            self._fail_all(BOUNCED, "5.1.7", f"bad sender address syntax: {envelope.sender!r}")
        if resume is not None:
            self._expect.clear()
            self.extensions = dict(resume.extensions)
            self.tls_active = resume.tls_active
            self.authenticated = resume.authenticated
            self._transaction()

    def resume_state(self) -> ResumeState:
        return ResumeState(dict(self.extensions), self.tls_active, self.authenticated)

    # ------------------------------------------------------------------ driver interface
    def data_to_send(self) -> bytes:
        data, self._out = bytes(self._out), bytearray()
        return data

    def next_event(self):
        return self._events.popleft() if self._events else None

    @property
    def expecting_reply(self) -> bool:
        return bool(self._expect)

    def receive(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            for reply in self._parser.feed(data):
                if self.closed or not self._expect:
                    if self.finished:
                        self.closed = True
                    elif not self.closed:
                        self._protocol_error("unexpected reply without a command")
                    return
                self._handle(self._expect.popleft(), reply)
            if self._parser.error and not self.closed:
                self._protocol_error(self._parser.error)
        except Exception as exc:  # a bug here must not kill the agent: defer, say why
            self._break(DEFERRED, "4.3.0", f"internal error talking to {self.options.peer}: {exc!r}")

    def receive_eof(self) -> None:
        if self.closed:
            return
        if self.finished and (not self._expect or self._expect[0].stage == "quit"):
            self.closed = True
            return
        self._break(DEFERRED, "4.4.2", f"lost connection with {self.options.peer} while {WHILE[self.stage]}")

    def timed_out(self) -> None:
        if self.closed:
            return
        if self.finished:
            self.closed = True
            return
        self._break(DEFERRED, "4.4.2",
                    f"conversation with {self.options.peer} timed out while {WHILE[self.stage]}")

    def tls_started(self) -> None:
        """TLS is up: RFC 3207 §4.2, discard what the server said and greet again."""
        self.tls_active = True
        self.extensions = {}
        self._command(self._helo_kind, f"{self._helo_kind.upper()} {self.options.helo_name}")

    def tls_failed(self, reason: str) -> None:
        self._break(DEFERRED, "4.7.5", f"Cannot start TLS: handshake failure with {self.options.peer}: {reason}")

    def send_content(self, chunk: bytes) -> None:
        if self._encoder is not None and not self.closed:
            self._out += self._encoder.encode(chunk)

    def end_content(self) -> None:
        if self._encoder is None or self.closed:
            return
        self._out += self._encoder.finish()
        self._encoder = None
        if self.options.lmtp:
            for index in self._accepted:
                self._expect.append(_Pending("dot", index))
        else:
            self._expect.append(_Pending("dot"))
        self.stage = "dot"

    # ------------------------------------------------------------------ internals
    def _command(self, stage: str, line: str, index: int | None = None) -> None:
        self._out += line.encode("utf-8") + b"\r\n"
        self._expect.append(_Pending(stage, index))
        if len(self._expect) == 1:
            self.stage = stage

    def _said(self, reply: ServerReply, stage: str) -> str:
        return f"host {self.options.peer} said: {reply.text} (in reply to {IN_REPLY_TO[stage]} command)"

    def _settle(self, index: int, outcome: Outcome) -> None:
        self.outcomes.setdefault(index, outcome)

    def _open_indexes(self) -> list[int]:
        return [i for i in range(len(self.envelope.recipients)) if i not in self.outcomes]

    def _fail_all(self, status: str, dsn: str, text: str, reply: str | None = None) -> None:
        for index in self._open_indexes():
            self._settle(index, Outcome(status, dsn, text, reply, retry_elsewhere=status == DEFERRED))

    def _break(self, status: str, dsn: str, text: str, reply: str | None = None) -> None:
        """The connection is unusable: every open recipient gets this outcome."""
        self._fail_all(status, dsn, text, reply)
        self._expect.clear()
        self.finished = True
        self.closed = True

    def _protocol_error(self, reason: str) -> None:
        self._break(DEFERRED, "4.5.0",
                    f"conversation with {self.options.peer} failed while {WHILE[self.stage]}: {reason}")

    def _quit(self) -> None:
        self.finished = True
        if not self.closed:
            if self.keep_alive and self._established:
                self._command("rset", "RSET")   # RFC 5321 §4.1.1.5: the connection stays usable
            else:
                self._command("quit", "QUIT")
            self.stage = self._expect[0].stage if self._expect else "quit"

    def _on_rset(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code // 100 == 2:
            self.reusable = True
            self.closed = True
        else:
            self._command("quit", "QUIT")

    def _handle(self, pending: _Pending, reply: ServerReply) -> None:
        self.replies += 1
        handler = getattr(self, f"_on_{pending.stage}")
        handler(pending, reply)
        if self._expect:
            self.stage = self._expect[0].stage

    def _reply_failure(self, reply: ServerReply, stage: str) -> None:
        """A failing reply to a session command (not per recipient)."""
        status, dsn = _failure(reply)
        self._fail_all(status, dsn, self._said(reply, stage), reply.text)
        self._quit()

    # --- greeting and hello (RFC 5321 §3.1, §4.1.1.1)
    def _on_greeting(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code != 220:
            text = f"host {self.options.peer} refused to talk to me: {reply.text}"
            if reply.code >= 500 and not self.options.skip_5xx_greeting:
                self._fail_all(BOUNCED, reply.dsn, text, reply.text)
            else:
                self._fail_all(DEFERRED, _soft(reply.dsn), text, reply.text)
            self._quit()
            return
        if self.options.lmtp:
            self._command("lhlo", f"LHLO {self.options.helo_name}")
        elif self.options.never_send_ehlo:
            self._helo_kind = "helo"
            self._command("helo", f"HELO {self.options.helo_name}")
        else:
            self._command("ehlo", f"EHLO {self.options.helo_name}")

    def _on_ehlo(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code != 250:
            if reply.code >= 500:   # RFC 5321 §4.1.4: fall back to HELO
                self._helo_kind = "helo"
                self._command("helo", f"HELO {self.options.helo_name}")
                return
            self._reply_failure(reply, "ehlo")
            return
        self.extensions = parse_ehlo_keywords(reply)
        self._after_hello()

    def _on_lhlo(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code != 250:
            self._reply_failure(reply, "lhlo")
            return
        self.extensions = parse_ehlo_keywords(reply)
        self._after_hello()

    def _on_helo(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code != 250:
            self._reply_failure(reply, "helo")
            return
        self.extensions = {}
        self._after_hello()

    def _after_hello(self) -> None:
        level = self.options.tls_level
        if not self.tls_active and level != "none":
            offered = "STARTTLS" in self.extensions
            if offered and self.options.tls_possible:
                self._command("starttls", "STARTTLS")
                return
            if level != "may":
                self._fail_all(DEFERRED, "4.7.4", f"TLS is required, but was not offered by host {self.options.peer}")
                self._quit()
                return
        if self.options.auth and "AUTH" in self.extensions and not self.authenticated:
            self._start_auth()
            return
        self._transaction()

    # --- STARTTLS (RFC 3207 §4)
    def _on_starttls(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code == 220:
            if self._expect or self._parser.pending:   # RFC 3207 §5: no plaintext may follow
                self._protocol_error("server sent data after the STARTTLS reply")
                return
            self._events.append(NeedTls())
            return
        if self.options.tls_level == "may":
            self.tls_active = False
            self.options = _replace(self.options, tls_level="none")
            self._after_hello()
            return
        self._fail_all(DEFERRED, _soft(reply.dsn), self._said(reply, "starttls"), reply.text)
        self._quit()

    # --- AUTH (RFC 4954 §4)
    def _start_auth(self) -> None:
        options = self.options.tls_security_options if self.tls_active else self.options.security_options
        name = choose_mechanism(self.extensions["AUTH"], self.options.mechanism_filter, options)
        if name is None:
            self._fail_all(DEFERRED, "4.7.0", f"SASL authentication failed; cannot authenticate to server "
                           f"{self.options.peer}: no mechanism available")
            self._quit()
            return
        username, password = self.options.auth
        self._mechanism = ClientMechanism(name, username, password)
        initial = self._mechanism.initial()
        line = f"AUTH {name}" + (f" {initial.decode('ascii')}" if initial is not None else "")
        self._command("auth", line)

    def _on_auth(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code == 334 and self._mechanism is not None:
            challenge = reply.lines[0] if reply.lines else ""
            self._command("auth", self._mechanism.answer(challenge).decode("ascii"))
            return
        if reply.code == 235:
            self.authenticated = True
            self._transaction()
            return
        # Postfix's smtp_sasl_auth_soft_bounce (default yes): an AUTH failure defers.
        self._fail_all(DEFERRED, _soft(reply.dsn) if reply.code >= 400 else "4.7.0",
                       f"SASL authentication failed; server {self.options.peer} said: {reply.text}", reply.text)
        self._quit()

    # --- the mail transaction (RFC 5321 §3.3)
    def _transaction(self) -> None:
        self._established = True
        env, ext = self.envelope, self.extensions
        limit = ext.get("SIZE", "")
        if env.size is not None and limit.isdigit() and 0 < int(limit) < env.size:   # RFC 1870 §6
            self._fail_all(BOUNCED, "5.3.4", f"message size {env.size} exceeds size limit {int(limit)}"
                           f" of server {self.options.peer}")
            self._quit()
            return
        # RFC 6531 §3.2: an all-ASCII message goes on without SMTPUTF8, as Postfix does
        if env.smtputf8 and env.utf8_required and "SMTPUTF8" not in ext:
            self._fail_all(BOUNCED, "5.6.7", f"SMTPUTF8 is required, but was not offered by host {self.options.peer}")
            self._quit()
            return
        if not self._open_indexes():
            self._quit()
            return
        params = []
        if env.size is not None and "SIZE" in ext:
            params.append(f"SIZE={env.size}")
        if env.body and env.body.upper() == "8BITMIME" and "8BITMIME" in ext:
            params.append("BODY=8BITMIME")
        if env.smtputf8 and "SMTPUTF8" in ext:
            params.append("SMTPUTF8")
        if "DSN" in ext:
            if env.ret:
                params.append(f"RET={env.ret}")
            if env.envid:
                params.append(f"ENVID={xtext(env.envid)}")
        pipelining = "PIPELINING" in ext or self.options.lmtp
        self._command("mail", f"MAIL FROM:<{env.sender}>" + "".join(" " + p for p in params))
        self._rcpt_queue = self._open_indexes()
        if pipelining:
            for index in self._rcpt_queue:
                self._send_rcpt(index)
            self._rcpt_queue = []
            self._command("data", "DATA")
            self._pipelined = True
        else:
            self._pipelined = False

    def _send_rcpt(self, index: int) -> None:
        rcpt = self.envelope.recipients[index]
        params = []
        if "DSN" in self.extensions:
            if rcpt.notify:
                params.append(f"NOTIFY={rcpt.notify.upper()}")
            if rcpt.orcpt:
                kind, _, address = rcpt.orcpt.partition(";")
                params.append(f"ORCPT={kind.strip()};{xtext(address.strip())}")
        self._command("rcpt", f"RCPT TO:<{rcpt.address}>" + "".join(" " + p for p in params), index)

    def _on_mail(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code // 100 != 2:
            status, dsn = _failure(reply)
            self._fail_all(status, dsn, self._said(reply, "mail"), reply.text)
            self._mail_failed = True
            if not self._pipelined:
                self._quit()
            return
        self._mail_failed = False
        if not self._pipelined:
            self._next_rcpt_or_data()

    def _next_rcpt_or_data(self) -> None:
        if self._rcpt_queue:
            self._send_rcpt(self._rcpt_queue.pop(0))
        elif self._accepted:
            self._command("data", "DATA")
        else:
            self._quit()

    def _on_rcpt(self, pending: _Pending, reply: ServerReply) -> None:
        index = pending.index
        if not self._mail_failed:
            if reply.code // 100 == 2:
                self._accepted.append(index)
            else:
                status, dsn = _failure(reply)
                self._settle(index, Outcome(status, dsn, self._said(reply, "rcpt"), reply.text,
                                            retry_elsewhere=status == DEFERRED))
        if not self._pipelined:
            self._next_rcpt_or_data()

    def _on_data(self, pending: _Pending, reply: ServerReply) -> None:
        if reply.code == 354:
            self._encoder = DataEncoder(self.options.line_limit)
            self.stage = "content"
            if self._accepted:
                self._events.append(NeedContent())
            else:   # RFC 2920 §3.1: no recipient was accepted, end the data at once
                self._out += self._encoder.finish()
                self._encoder = None
                self._expect.append(_Pending("dot_ignored"))
            return
        if self._accepted:
            status, dsn = _failure(reply)
            for index in self._accepted:
                self._settle(index, Outcome(status, dsn, self._said(reply, "data"), reply.text,
                                            retry_elsewhere=status == DEFERRED))
        self._quit()

    def _on_dot_ignored(self, pending: _Pending, reply: ServerReply) -> None:
        self._quit()

    def _on_dot(self, pending: _Pending, reply: ServerReply) -> None:
        targets = [pending.index] if pending.index is not None else list(self._accepted)
        for index in targets:
            if reply.code // 100 == 2:
                self._settle(index, Outcome(SENT, reply.dsn, reply.text, reply.text))
            else:
                status, dsn = _failure(reply)
                self._settle(index, Outcome(status, dsn, self._said(reply, "dot"), reply.text))
        if not any(p.stage == "dot" for p in self._expect):
            self._quit()

    def _on_quit(self, pending: _Pending, reply: ServerReply) -> None:
        self.closed = True


def _replace(options: SessionOptions, **changes) -> SessionOptions:
    from dataclasses import replace
    return replace(options, **changes)


__all__ = ["ClientSession", "ResumeState", "Envelope", "RcptSpec", "SessionOptions", "Outcome", "NeedTls",
           "NeedContent", "xtext", "SENT", "DEFERRED", "BOUNCED", "WHILE"]
