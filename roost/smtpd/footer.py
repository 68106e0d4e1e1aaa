"""smtpd_reject_footer (postconf(5)): text appended to every 4XX/5XX reply of the SMTP server.

A leading `\\c` continues the reply's last line instead of starting a new one; `\\n` starts a
new reply line. Only four session attributes are expanded, `$name` or `${name}`:
client_address, client_port, localtime (`Mmm dd hh:mm:ss`, as the maillog) and server_name
($myhostname); any other `$name` becomes empty, as Postfix 3.7 answers (observed; main.cf
parameters are NOT expanded). Checked against Debian Postfix in tests/net/test_smtpd_oracle.py.

Invariants: pure apart from the clock for $localtime; a reply below 400 is returned as is.
Security: the footer is the administrator's text; the client address/port come from the
socket, never from client input; Reply itself keeps CR/LF out of a line.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from roost.proto.smtp.reply import Reply

_NAME = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class RejectFooter:
    joiner: str   # "\n" (a new reply line) or "" (after "\c": the same line)
    text: str

    @classmethod
    def parse(cls, value: str) -> "RejectFooter | None":
        if not value:
            return None
        joiner = "\n"
        if value.startswith("\\c"):
            joiner, value = "", value[2:]
        return cls(joiner, value.replace("\\n", "\n"))

    def apply(self, reply: Reply, *, client_address: str, client_port, server_name: str) -> Reply:
        if reply.code < 400:
            return reply
        values = {"client_address": client_address or "", "client_port": str(client_port or ""),
                  "server_name": server_name}

        def value(match) -> str:
            name = match.group(1) or match.group(2)
            if name == "localtime":
                return time.strftime("%b %e %H:%M:%S")
            return values.get(name, "")
        text = _NAME.sub(value, self.text) if "$" in self.text else self.text
        return Reply(reply.code, reply.enhanced, reply.text + self.joiner + text)
