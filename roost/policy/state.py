"""What the SMTP client has said so far, as the policy sees it (the SMTP daemon builds it).

One frozen SmtpState per command; the daemon makes a new one with `dataclasses.replace` as
the session goes on. Addresses are the path contents without `<>` (`""` is the null sender);
the policy turns them into Postfix's internal form itself (roost.resolve.address), so a
daemon may pass either the raw path (`"u@ext"@local`, `@a:u@b`) or the internal form.

Invariants: immutable; `client_name` is "unknown" unless the reverse name was verified by a
forward lookup (Postfix's name/reverse_name split).
Security: every field except the SASL ones is client-controlled text; the policy only
compares and looks it up, never executes it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SmtpState:
    client_address: str
    client_port: int | None = None
    client_name: str = "unknown"           # verified reverse name or "unknown"
    reverse_client_name: str = "unknown"   # PTR name or "unknown"
    helo_name: str | None = None
    protocol: str = "SMTP"                 # "SMTP" | "ESMTP" | "LMTP"
    sender: str | None = None              # None before MAIL; "" for the null sender
    recipient: str | None = None           # the RCPT TO address being checked
    sasl_method: str | None = None
    sasl_username: str | None = None
    tls: bool = False
    recipient_count: int = 0
    message_size: int | None = None
    pipelined: bool = False                # sent ahead of time where that is not allowed (before
                                           # PIPELINING was announced): reject_unauth_pipelining
    queue_id: str | None = None
    instance: str = ""
    discard: bool = False                  # this transaction met a DISCARD action: Postfix skips
                                           # every later check until the transaction ends

    @property
    def namaddr(self) -> str:
        """`name[address]` as Postfix writes the client in replies and logs."""
        return f"{self.client_name}[{self.client_address}]"
