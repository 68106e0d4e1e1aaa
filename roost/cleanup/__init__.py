"""cleanup(8): turns what a client submitted into a durable queue file.

The contract the SMTP server, sendmail/pickup and LMTP code against (see service.py):

    service = CleanupService(settings, log)           # one per worker process
    message = service.open(origin="smtpd", client=ClientInfo(...), sender="a@b",
                           envelope={"RET": "HDRS", "ENVID": "x", "BODY": "8BITMIME", "SMTPUTF8": "", "SIZE": "123"})
    message.queue_id                                  # assigned at open; file in incoming/, mode 0600
    message.add_recipient("x@y", orcpt="rfc822;x@y", notify="SUCCESS,FAILURE")
    message.write(chunk)                              # content as received: CRLF lines, any split
    result = message.finish()                         # BLOCKING: end record + fsync file + dir
    message.abort()                                   # removes the file; idempotent

Modules: headers (streaming header splitter), received (Received/Date/Message-Id text),
addresses (RFC 5322 address lists in headers), rewrite (myorigin qualification,
canonical, virtual alias, bcc), checks (header_checks/body_checks actions), service.
Security: client text is data only; it reaches logs sanitized and headers as received.
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.proto.smtp.reply import Reply


@dataclass(frozen=True)
class ClientInfo:
    name: str
    address: str
    port: int | None
    helo: str | None
    protocol: str                 # "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "SMTP", "LMTP"... (RFC 3848)
    # Postfix's TLS lines for the Received header, joined by "\n" (cleanup adds the tabs), e.g.
    # "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n key-exchange X25519
    # server-signature RSA-PSS (2048 bits) server-digest SHA256)\n(No client certificate requested)";
    # None without TLS
    tls: str | None
    sasl_method: str | None
    sasl_username: str | None
    session_id: str = ""


@dataclass(frozen=True)
class CleanupResult:
    queue_id: str
    status: str                   # "queued" | "held" | "discarded" | "rejected"
    reply: Reply
    size: int
    nrcpt: int


from roost.cleanup.service import CleanupMessage, CleanupService  # noqa: E402

__all__ = ["ClientInfo", "CleanupResult", "CleanupService", "CleanupMessage"]
