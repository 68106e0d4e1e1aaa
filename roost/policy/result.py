"""Results of policy checks: PolicyResult for the SMTP daemon, Verdict inside the evaluator.

PolicyResult.reply is None when the command may go on, else the reply to send; `actions`
are the message actions met on the way (("HOLD", text), ("DISCARD", text), ("FILTER",
nexthop), ("REDIRECT", address), ("PREPEND", header), ("BCC", address)) which the daemon
hands to cleanup; `log` is the Postfix log text of a rejection (`NOQUEUE: reject: RCPT from
...`) that the daemon writes as an info line.

Invariants: frozen values; a Verdict is OK (permit: stop this list), DUNNO (go on) or a
Reject carrying the final reply.
Security: reply texts carry client-supplied names; Reply itself neutralises CR/LF.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.proto.smtp.reply import Reply


@dataclass(frozen=True)
class PolicyResult:
    reply: Reply | None = None
    actions: tuple = ()
    log: str | None = None

    @property
    def accepted(self) -> bool:
        return self.reply is None


@dataclass(frozen=True)
class Reject:
    reply: Reply


OK = "OK"        # permit: the current restriction list ends with success
DUNNO = "DUNNO"  # no decision: the next restriction is evaluated
Verdict = object  # OK | DUNNO | Reject
