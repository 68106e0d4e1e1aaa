"""A test driver for the SMTP machine: answers every event like a permissive server would."""

from __future__ import annotations

from roost.proto.smtp import events as E
from roost.proto.smtp import reply as R
from roost.proto.smtp.machine import MachineSettings, SmtpServerMachine


class Driver:
    def __init__(self, settings: MachineSettings | None = None, *, lmtp_replies=None, **kwargs):
        self.machine = SmtpServerMachine(settings or MachineSettings(hostname="mx.test", **kwargs))
        self.output = bytearray()
        self.events: list = []
        self.content = bytearray()
        self.messages: list[bytes] = []
        self.lmtp_replies = lmtp_replies

    def feed(self, data: bytes, step: int | None = None) -> "Driver":
        pieces = [data] if not step else [data[i:i + step] for i in range(0, len(data), step)]
        for piece in pieces:
            self.machine.receive(piece)
            self.pump()
        return self

    def eof(self) -> "Driver":
        self.machine.receive_eof()
        self.pump()
        return self

    def pump(self) -> None:
        m = self.machine
        while (event := m.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, E.DataContent):
                self.content += event.data
                continue
            if isinstance(event, (E.BdatStart, E.ConnectionClosed)):
                continue
            self.output += m.reply(self.answer(event))

    def answer(self, event):
        m = self.machine
        if isinstance(event, E.ProtocolError):
            return event.reply
        if isinstance(event, E.Helo):
            return m.helo_reply(event)
        if isinstance(event, E.Mail):
            return R.MAIL_OK
        if isinstance(event, E.Rcpt):
            return R.RCPT_OK
        if isinstance(event, E.Data):
            return R.START_DATA
        if isinstance(event, (E.DataEnd, E.BdatEnd)) and (isinstance(event, E.DataEnd) or event.last):
            self.messages.append(bytes(self.content))
            self.content.clear()
            if self.lmtp_replies is not None:
                return self.lmtp_replies(m.recipients)
            return R.queued("QID")
        if isinstance(event, E.BdatEnd):
            return R.chunk_ok(event.size)
        if isinstance(event, E.Quit):
            return R.BYE
        if isinstance(event, E.Vrfy):
            return R.Reply(252, "2.0.0", f"<{event.address}>")
        if isinstance(event, E.Etrn):
            return R.Reply(459, None, f"<{event.domain}>: service unavailable")
        if isinstance(event, E.StartTls):
            return R.READY_TLS
        if isinstance(event, E.Auth):
            return R.AUTH_OK if event.initial_response is not None else R.Reply(334, None, "")
        if isinstance(event, E.AuthResponse):
            return R.AUTH_ABORTED if event.text == "*" else R.AUTH_OK
        return R.OK

    def replies(self) -> list[str]:
        """Reply lines as text, multi-line replies joined with newlines."""
        out, current = [], []
        for line in bytes(self.output).decode("utf-8", "replace").split("\r\n")[:-1]:
            current.append(line)
            if len(line) < 4 or line[3] != "-":
                out.append("\n".join(current))
                current = []
        return out
