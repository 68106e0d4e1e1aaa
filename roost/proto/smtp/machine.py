"""The ESMTP / LMTP server protocol machine, sans-IO: client bytes in, events out, replies out.

RFC 5321 (§4.1.1 commands, §4.1.4 command order, §4.5.3.1 limits), RFC 1869/5321 §2.2 (EHLO),
RFC 2920 (PIPELINING: commands are parsed from one buffer; the caller flushes replies when
`buffered` is empty), RFC 3030 (CHUNKING/BDAT), RFC 3207 (STARTTLS: after `220` every byte
already received is discarded and the session starts over, §4.2), RFC 4954 (AUTH exchange),
RFC 2033 (LMTP: LHLO, one reply per accepted recipient after the data). Sequence checks and
reply texts are Postfix 3.7 smtpd(8)'s; policy (who may relay, who exists) is not decided
here: the caller answers Helo/Mail/Rcpt/Data/... with a reply, the machine updates its state
from the reply code.

Use: `m.receive(bytes)`, then `m.next_event()` until it returns None; answer each command
event with `m.reply(reply)` (returns the bytes to send). `m.receive_eof()` at EOF.

Invariants: `receive`/`next_event` never raise on any input; buffered command input is bounded
by line_length_limit (longer lines are cut, the rest of the line skipped, as Postfix does);
DATA content is never buffered beyond a few bytes; BDAT chunks are consumed even when refused
(RFC 3030 §2), so a refused chunk is never run as commands.
Security: STARTTLS discards pipelined plaintext (CVE-2011-0411 class); only `<CRLF>.<CRLF>`
ends DATA (SMTP smuggling); control characters in commands are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.proto.smtp import events as E
from roost.proto.smtp import reply as R
from roost.proto.smtp.command import (Features, parse_bdat, parse_mail_params, parse_path,
                                      parse_rcpt_params, split_verb)
from roost.proto.smtp.data import DataDecoder
from roost.proto.smtp.reply import Reply

# Postfix's EHLO keyword order (smtpd.c announces them in this order).
KEYWORD_ORDER = ("PIPELINING", "SIZE", "VRFY", "ETRN", "STARTTLS", "AUTH", "ENHANCEDSTATUSCODES",
                 "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING")
# Commands allowed before STARTTLS when TLS is mandatory (smtpd_tls_security_level = encrypt).
_ALLOWED_BEFORE_TLS = frozenset({"HELO", "EHLO", "LHLO", "STARTTLS", "NOOP", "QUIT", "RSET"})
_COMMAND, _DATA, _BDAT, _BDAT_DISCARD, _AUTH, _CLOSED = range(6)


@dataclass(frozen=True)
class MachineSettings:
    hostname: str = "localhost"
    lmtp: bool = False
    message_size_limit: int = 10240000
    line_length_limit: int = 2048
    strict_rfc821_envelopes: bool = False
    helo_required: bool = False
    recipient_limit: int = 1000
    vrfy_enabled: bool = True  # not disable_vrfy_command
    etrn_enabled: bool = True
    starttls_available: bool = False  # a certificate and smtpd_tls_security_level may/encrypt
    tls_required: bool = False  # smtpd_tls_security_level = encrypt
    tls_active: bool = False  # wrapper mode: TLS from the first byte
    auth_enabled: bool = False  # smtpd_sasl_auth_enable
    tls_auth_only: bool = False
    auth_mechanisms: tuple = ()  # offered without TLS (after smtpd_sasl_security_options)
    auth_mechanisms_tls: tuple = ()  # offered with TLS (smtpd_sasl_tls_security_options)
    smtputf8_enable: bool = True
    discard_ehlo_keywords: frozenset = field(default_factory=frozenset)  # upper case
    bare_newline: str = "normalize"  # smtpd_forbid_bare_newline: no | normalize | reject
    bare_newline_code: int = 550
    forbidden_commands: frozenset = frozenset({"CONNECT", "GET", "POST"})  # smtpd_forbidden_commands
    forbid_non_letter_commands: bool = True  # its default regexp:{{/^[^A-Z]/ Bogus}}


class SmtpServerMachine:
    def __init__(self, settings: MachineSettings):
        self.settings = settings
        self.tls_active = settings.tls_active
        self.helo_name: str | None = None
        self.last_argument = ""
        self.helo_verb: str | None = None
        self.authenticated = False
        self.sender: str | None = None  # None: no transaction
        self.recipients = 0  # accepted RCPTs in this transaction
        self.error_count = 0
        self.stats: dict[str, list[int]] = {}  # verb -> [ok, total], in first-use order
        self.closed = False
        self._buffer = bytearray()
        self._skip_line = False
        self._mode = _COMMAND
        self._pending: object | None = None  # the command awaiting reply()
        self._pending_verb = ""
        self._pending_fatal = False
        self._decoder: DataDecoder | None = None
        self._chunk_left = 0
        self._chunk = None  # (size, last) of the BDAT being read
        self._bdat_total = 0
        self._bdat_active = False
        self._bdat_error: Reply | None = None
        self._discard_reply: Reply | None = None
        self._discard_last = False
        self._eof = False
        self._last_command = "CONNECT"

    # --- input ----------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        if not self.closed:
            self._buffer += data

    def receive_eof(self) -> None:
        self._eof = True

    @property
    def buffered(self) -> int:
        """Client bytes received but not yet consumed (non-zero: the client pipelined)."""
        return len(self._buffer)

    def peek(self, limit: int = 100) -> bytes:
        """The first `limit` unconsumed client bytes (for Postfix's pipelining log line)."""
        return bytes(self._buffer[:limit])

    @property
    def in_data(self) -> bool:
        return self._mode in (_DATA, _BDAT, _BDAT_DISCARD)

    @property
    def last_command(self) -> str:
        """Postfix's "after X" word for lost-connection and timeout log lines."""
        return self._last_command

    # --- features -------------------------------------------------------------------------
    def _offered(self, keyword: str) -> bool:
        s = self.settings
        if keyword in s.discard_ehlo_keywords:
            return False
        if keyword == "VRFY":
            return s.vrfy_enabled and not s.lmtp
        if keyword == "ETRN":
            return s.etrn_enabled and not s.lmtp
        if keyword == "STARTTLS":
            return s.starttls_available and not self.tls_active
        if keyword == "AUTH":
            return bool(self.auth_mechanisms())
        if keyword == "SMTPUTF8":
            return s.smtputf8_enable
        return True

    def auth_mechanisms(self) -> tuple:
        s = self.settings
        if not s.auth_enabled or s.lmtp or (s.tls_auth_only and not self.tls_active):
            return ()
        return s.auth_mechanisms_tls if self.tls_active else s.auth_mechanisms

    def ehlo_keywords(self) -> list[str]:
        out = []
        for keyword in KEYWORD_ORDER:
            if not self._offered(keyword):
                continue
            if keyword == "SIZE":
                limit = self.settings.message_size_limit
                out.append(f"SIZE {limit}" if limit else "SIZE")
            elif keyword == "AUTH":
                out.append("AUTH " + " ".join(self.auth_mechanisms()))
            else:
                out.append(keyword)
        return out

    def helo_reply(self, event: E.Helo) -> Reply:
        """The positive reply to HELO (`250 host`) or EHLO/LHLO (`250-host` + keywords). A
        function of the settings, the TLS state and the verb only: each distinct reply is
        made (and formatted for the wire, Reply.to_bytes) once per process."""
        settings = self.settings
        replies = settings.__dict__.get("_helo_replies")
        if replies is None:  # kept on the (immutable) settings, as Reply keeps its wire form
            replies = {}
            object.__setattr__(settings, "_helo_replies", replies)
        key = (self.tls_active, event.verb == "HELO")
        reply = replies.get(key)
        if reply is None:
            if event.verb == "HELO":
                reply = Reply(250, None, settings.hostname)
            else:
                reply = Reply(250, None, "\n".join([settings.hostname, *self.ehlo_keywords()]))
            replies[key] = reply
        return reply

    def _features(self) -> Features:
        # a function of the settings and the TLS state only: made again when either changes
        cached = self._features_cache
        if cached is not None and cached[0] is self.settings and cached[1] == self.tls_active:
            return cached[2]
        features = Features(size_limit=self.settings.message_size_limit,
                            eightbitmime=self._offered("8BITMIME"), dsn=self._offered("DSN"),
                            smtputf8=self._offered("SMTPUTF8"))
        self._features_cache = (self.settings, self.tls_active, features)
        return features

    _features_cache: tuple | None = None

    # --- events ---------------------------------------------------------------------------
    def next_event(self) -> E.Event | None:
        """The next event, or None when more input is needed (or a reply is awaited)."""
        if self.closed or self._pending is not None:
            return None
        try:
            if self._mode == _DATA:
                return self._data_event()
            if self._mode in (_BDAT, _BDAT_DISCARD):
                return self._chunk_event()
            return self._line_event()
        except Exception:  # last line of defence: a parser bug must not kill the session
            return self._error(R.Reply(451, "4.3.0", "Error: internal error"), "unknown", fatal=True)

    def _eof_event(self) -> E.Event | None:
        if self._eof and not self.closed:
            self.closed = True
            if self._mode in (_DATA, _BDAT):  # Postfix counts the lost DATA/BDAT as failed
                self._count("data" if self._mode == _DATA else "bdat", False)
            return E.ConnectionClosed(self._last_command)
        return None

    def _data_event(self) -> E.Event | None:
        if not self._buffer:
            return self._eof_event()
        content, leftover = self._decoder.feed(bytes(self._buffer))
        self._buffer.clear()
        if leftover is not None:
            self._buffer += leftover
            self._mode = _COMMAND
            decoder = self._decoder
            if content:
                self._queued_end = decoder
                return E.DataContent(content, decoder.crlf_only)
            return self._finish_data(decoder)
        if content:
            return E.DataContent(content, self._decoder.crlf_only)
        return self._eof_event()

    def _finish_data(self, decoder: DataDecoder) -> E.Event:
        self._decoder = None
        self._set_pending("data", "DATA_END")
        return E.DataEnd(decoder.size, decoder.bare_newline_seen)

    _queued_end: DataDecoder | None = None

    def _chunk_event(self) -> E.Event | None:
        if self._chunk_left:
            if not self._buffer:
                return self._eof_event()
            take = min(self._chunk_left, len(self._buffer))
            piece = bytes(self._buffer[:take])
            del self._buffer[:take]
            self._chunk_left -= take
            self._bdat_total += take if self._mode == _BDAT else 0
            if self._mode == _BDAT:
                return E.DataContent(piece)
            if self._chunk_left:
                return self._chunk_event()
        size, last = self._chunk
        discarded = self._mode == _BDAT_DISCARD
        self._mode = _COMMAND
        self._chunk = None
        if discarded:
            self._discard_last = last
            return self._error(self._discard_reply, "bdat")
        self._set_pending("bdat", ("BDAT_END", last))
        return E.BdatEnd(size, last, self._bdat_total)

    def _line_event(self) -> E.Event | None:
        if self._queued_end is not None:
            decoder, self._queued_end = self._queued_end, None
            return self._finish_data(decoder)
        limit = self.settings.line_length_limit
        newline = self._buffer.find(b"\n")
        if self._skip_line:  # the tail of an over-long line: drop it
            if newline < 0:
                self._buffer.clear()
                return self._eof_event()
            del self._buffer[:newline + 1]
            self._skip_line = False
            newline = self._buffer.find(b"\n")
        if newline < 0 or newline > limit:
            if len(self._buffer) <= limit:
                return self._eof_event()
            line = bytes(self._buffer[:limit])  # Postfix keeps line_length_limit bytes
            del self._buffer[:limit]
            self._skip_line = True
            bare_lf = False
        else:
            line = bytes(self._buffer[:newline])
            del self._buffer[:newline + 1]
            bare_lf = not line.endswith(b"\r")
            if not bare_lf:
                line = line[:-1]
        if bare_lf and not self._skip_line and self.settings.bare_newline == "reject":
            return self._error(R.bare_newline(self.settings.hostname, self.settings.bare_newline_code),
                               "unknown", fatal=True)
        pipelined = bool(self._buffer)
        if self._mode == _AUTH:
            self._set_pending("auth", "AUTH_STEP")
            return E.AuthResponse(line.decode("utf-8", "replace"))
        return self._command(line, pipelined)

    # --- commands -------------------------------------------------------------------------
    def _error(self, reply: Reply, verb: str, fatal: bool = False) -> E.ProtocolError:
        self._set_pending(verb, "ERROR")
        self._pending_fatal = fatal or reply.code in (421, 521)
        return E.ProtocolError(reply, verb, self._pending_fatal)

    def _set_pending(self, verb: str, what) -> None:
        self._pending = what
        self._pending_verb = verb

    def _command(self, line: bytes, pipelined: bool) -> E.Event:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return self._error(R.BAD_UTF8, "unknown")
        if not text.strip(" \t\r\n"):
            return self._error(R.BAD_SYNTAX, "unknown")
        verb, argument = split_verb(text)
        self.last_argument = argument  # for the daemon's log lines (e.g. the refused SASL mechanism)
        if verb in self.settings.forbidden_commands or (
                self.settings.forbid_non_letter_commands and not text.lstrip(" \t")[:1].isalpha()):
            self._last_command = "UNKNOWN"
            return self._error(R.FORBIDDEN_COMMAND, "unknown", fatal=True)  # not SMTP: hang up
        handler = _HANDLERS_LMTP.get(verb) if self.settings.lmtp else _HANDLERS.get(verb)
        if handler is None:
            self._last_command = "UNKNOWN"
            return self._error(R.NOT_RECOGNIZED, "unknown")
        self._last_command = verb if verb != "LHLO" else "LHLO"
        name = verb.lower()
        if self.settings.tls_required and not self.tls_active and verb not in _ALLOWED_BEFORE_TLS:
            return self._error(R.MUST_STARTTLS, name)
        result = handler(self, argument, pipelined)
        if isinstance(result, Reply):
            return self._error(result, name)
        if result is None:  # a refused BDAT chunk is being skipped
            return self._chunk_event()
        if isinstance(result, E.BdatStart):
            return result  # no reply until the chunk is read
        self._set_pending(name, result)
        return result

    def _helo(self, verb: str, argument: str, pipelined: bool):
        if not argument:
            return {"HELO": R.HELO_SYNTAX, "EHLO": R.EHLO_SYNTAX}.get(verb, R.LHLO_SYNTAX)
        return E.Helo(verb, argument.split()[0], pipelined)  # a new HELO resets the transaction

    def _cmd_helo(self, argument, pipelined):
        return self._helo("HELO", argument, pipelined)

    def _cmd_ehlo(self, argument, pipelined):
        return self._helo("EHLO", argument, pipelined)

    def _cmd_lhlo(self, argument, pipelined):
        return self._helo("LHLO", argument, pipelined)

    def _need_helo(self) -> Reply | None:
        # RFC 2033 §4.1 wants LHLO first, but Dovecot's lmtp (the LMTP server roost stands in
        # for) takes MAIL without it; smtpd_helo_required applies to SMTP only
        if self.helo_name is None and self.settings.helo_required and not self.settings.lmtp:
            return R.SEND_HELO_FIRST
        return None

    def _cmd_mail(self, argument, pipelined):
        problem = self._need_helo()
        if problem:
            return problem
        if self.sender is not None:
            return R.NESTED_MAIL
        if argument[:5].upper() != "FROM:" or not argument[5:].strip(" \t"):
            return R.MAIL_SYNTAX
        parsed = parse_path(argument[5:], self.settings.strict_rfc821_envelopes)
        if parsed is None:
            return R.BAD_SENDER_SYNTAX
        address, words = parsed
        params = parse_mail_params(words, self._features())
        if isinstance(params, Reply):
            return params
        if not address.isascii() and not params.smtputf8:
            return R.SMTPUTF8_REQUIRED  # RFC 6531 §3.4
        return E.Mail(address, params, pipelined)

    def _cmd_rcpt(self, argument, pipelined):
        if self.sender is None:
            return R.NEED_MAIL
        if argument[:3].upper() != "TO:" or not argument[3:].strip(" \t"):
            return R.RCPT_SYNTAX
        parsed = parse_path(argument[3:], self.settings.strict_rfc821_envelopes)
        if parsed is None or parsed[0] == "":
            return R.BAD_RECIPIENT_SYNTAX
        address, words = parsed
        params = parse_rcpt_params(words, self._features())
        if isinstance(params, Reply):
            return params
        limit = self.settings.recipient_limit
        if limit and self.recipients >= limit:  # RFC 5321 §4.5.3.1.8
            return R.TOO_MANY_RECIPIENTS
        if not address.isascii() and not self._smtputf8:
            return R.SMTPUTF8_REQUIRED
        return E.Rcpt(address, params, pipelined)

    _smtputf8 = False

    def _transaction_ready(self) -> Reply | None:
        if self.sender is None:
            return R.NEED_RCPT
        if not self.recipients:
            return R.NO_VALID_RECIPIENTS
        return None

    def _cmd_data(self, argument, pipelined):
        problem = self._transaction_ready()
        if problem:
            return problem
        if argument:
            return R.DATA_SYNTAX
        return E.Data(pipelined)

    def _cmd_bdat(self, argument, pipelined):
        parsed = parse_bdat(argument)
        if parsed is None:
            return R.BDAT_SYNTAX
        if "CHUNKING" in self.settings.discard_ehlo_keywords:
            return R.NOT_RECOGNIZED
        size, last = parsed
        self._chunk = (size, last)
        self._chunk_left = size
        problem = self._bdat_error or self._transaction_ready()
        if problem:  # RFC 3030 §2: read and drop the chunk, then answer the error
            self._discard_reply = problem
            self._mode = _BDAT_DISCARD
            return None
        first = not self._bdat_active
        self._bdat_active = True
        self._mode = _BDAT
        return E.BdatStart(size, last, first)

    def _cmd_rset(self, argument, pipelined):
        return R.RSET_SYNTAX if argument else E.Rset(pipelined)

    def _cmd_noop(self, argument, pipelined):
        return E.Noop(pipelined)

    def _cmd_quit(self, argument, pipelined):
        return E.Quit(pipelined)  # Postfix ignores QUIT arguments

    def _cmd_vrfy(self, argument, pipelined):
        if not self.settings.vrfy_enabled or "VRFY" in self.settings.discard_ehlo_keywords:
            return R.VRFY_DISABLED
        if not argument:
            return R.VRFY_SYNTAX
        words = argument.split()
        if len(words) > 1 and words[-1].upper() == "SMTPUTF8":
            words = words[:-1]
        target = " ".join(words)
        address = target[1:-1] if target.startswith("<") and target.endswith(">") else target
        return E.Vrfy(argument, address, pipelined)

    def _cmd_etrn(self, argument, pipelined):
        if self.helo_name is None:
            return R.ETRN_SEND_HELO_FIRST
        if self.sender is not None:
            return R.ETRN_IN_TRANSACTION
        if not argument:
            return R.ETRN_SYNTAX
        return E.Etrn(argument.lstrip("@#") if argument[0] in "@#" else argument, pipelined)

    def _cmd_starttls(self, argument, pipelined):
        if argument:
            return R.STARTTLS_SYNTAX
        if self.tls_active:
            return R.TLS_ALREADY_ACTIVE
        if not self._offered("STARTTLS"):
            return R.NOT_IMPLEMENTED
        if self.sender is not None:
            return R.TRANSACTION_IN_PROGRESS
        return E.StartTls(pipelined)

    def _cmd_auth(self, argument, pipelined):
        if not self.auth_mechanisms():  # Postfix takes AUTH before HELO/EHLO too
            return R.AUTH_NOT_ENABLED
        if self.authenticated:
            return R.ALREADY_AUTHENTICATED
        if self.sender is not None:
            return R.TRANSACTION_IN_PROGRESS
        words = argument.split()
        if not 1 <= len(words) <= 2:
            return R.AUTH_SYNTAX
        mechanism = words[0].upper()
        if mechanism not in (m.upper() for m in self.auth_mechanisms()):
            return R.AUTH_INVALID_MECHANISM
        return E.Auth(mechanism, words[1] if len(words) == 2 else None, pipelined)

    # --- replies --------------------------------------------------------------------------
    def reply(self, reply: Reply | list | tuple, *, enhanced_codes: bool = True) -> bytes:
        """Answer the pending command (or error) and update the state from the reply code.
        LMTP: after DataEnd / the last BdatEnd pass one reply per accepted recipient."""
        if type(reply) is Reply:  # one reply: the same steps as below, without the lists
            pending, verb = self._pending, self._pending_verb
            self._pending = None
            code = reply.code
            positive = code < 400
            if code != 334 and code != 354:  # AUTH and DATA count when they complete
                self._count(verb, positive)
            if not positive:
                self.error_count += 1
            self._apply(pending, reply)
            if code == 421 or code == 521 or (pending == "ERROR" and self._pending_fatal):
                self.closed = True
            return reply.to_bytes(enhanced_codes)
        replies = list(reply) if isinstance(reply, (list, tuple)) else [reply]
        pending, verb = self._pending, self._pending_verb
        self._pending = None
        first = replies[0]
        positive = all(r.code < 400 for r in replies) if replies else True
        if first.code not in (334, 354):  # AUTH and DATA count when they complete
            self._count(verb, positive)
        if not positive:
            self.error_count += 1
        self._apply(pending, first)
        if any(r.code in (421, 521) for r in replies) or (pending == "ERROR" and self._pending_fatal):
            self.closed = True
        return b"".join(r.to_bytes(enhanced_codes) for r in replies)

    def close(self, reply: Reply | None = None) -> bytes:
        """End the session from the server side (timeout, too many errors, shutdown)."""
        self.closed = True
        self._pending = None
        return reply.to_bytes() if reply else b""

    def _count(self, verb: str, ok: bool) -> None:
        entry = self.stats.get(verb)
        if entry is None:
            entry = self.stats[verb] = [0, 0]
        entry[1] += 1
        entry[0] += ok

    def _reset_transaction(self) -> None:
        self.sender = None
        self._smtputf8 = False
        self.recipients = 0
        self._bdat_active = False
        self._bdat_total = 0
        self._bdat_error = None

    def _apply(self, pending, first: Reply) -> None:
        ok = first.code < 400
        if isinstance(pending, E.Helo) and ok:
            self._reset_transaction()
            self.helo_name, self.helo_verb = pending.name, pending.verb
        elif isinstance(pending, E.Mail) and ok:
            self.sender = pending.address
            self._smtputf8 = pending.params.smtputf8
        elif isinstance(pending, E.Rcpt) and ok:
            self.recipients += 1
        elif isinstance(pending, E.Data) and first.code == 354:
            self._decoder = DataDecoder()
            self._mode = _DATA
        elif pending == "DATA_END":
            self._reset_transaction()
        elif isinstance(pending, tuple) and pending[0] == "BDAT_END":
            if pending[1]:
                self._reset_transaction()
            elif not ok:
                self._bdat_error = first  # later chunks of this transaction are dropped
        elif isinstance(pending, E.Rset) and ok:
            self._reset_transaction()
        elif isinstance(pending, E.Quit):
            self.closed = True
        elif isinstance(pending, E.StartTls) and first.code == 220:
            self._buffer.clear()  # RFC 3207 §4.2: nothing sent before the handshake counts
            self._skip_line = False
            self.tls_active = True
            self.helo_name = self.helo_verb = None
            self._reset_transaction()
        elif isinstance(pending, E.Auth) or pending == "AUTH_STEP":
            if first.code == 334:
                self._mode = _AUTH
            else:
                self._mode = _COMMAND
                if first.code == 235:
                    self.authenticated = True
        elif pending == "ERROR" and self._discard_last:
            self._discard_last = False
            self._reset_transaction()  # a refused LAST chunk still ends the transaction


_HANDLERS = {
    "HELO": SmtpServerMachine._cmd_helo, "EHLO": SmtpServerMachine._cmd_ehlo,
    "MAIL": SmtpServerMachine._cmd_mail, "RCPT": SmtpServerMachine._cmd_rcpt,
    "DATA": SmtpServerMachine._cmd_data, "BDAT": SmtpServerMachine._cmd_bdat,
    "RSET": SmtpServerMachine._cmd_rset, "NOOP": SmtpServerMachine._cmd_noop,
    "QUIT": SmtpServerMachine._cmd_quit, "VRFY": SmtpServerMachine._cmd_vrfy,
    "ETRN": SmtpServerMachine._cmd_etrn, "STARTTLS": SmtpServerMachine._cmd_starttls,
    "AUTH": SmtpServerMachine._cmd_auth,
}
_HANDLERS_LMTP = {**{k: v for k, v in _HANDLERS.items() if k not in ("HELO", "EHLO", "ETRN", "AUTH")},
                  "LHLO": SmtpServerMachine._cmd_lhlo}
