"""What header_checks(5) / body_checks actions do to a message in cleanup(8), and their
log lines (Postfix 3.7 formats, checked against Debian Postfix in test_differential):

    ID: reject: header Subject: x from host[addr]; from=<s> to=<r> proto=ESMTP helo=<h>: 5.7.1 text
    ID: warning: ... : text       ID: hold: ... : text      ID: discard: ... : text
    ID: info: ...   ID: replace: ...   ID: prepend: ...   ID: filter: ...   ID: redirect: ...   ID: bcc: ...

(`from local;` for mail without an SMTP client; from=<> is the envelope sender and to=<>
the last recipient, both after canonical mapping (as Postfix logs them);
` proto=.. helo=<..>` only with a client; `: text` only when there is one). REJECT
answers `550 5.7.1 message content rejected` or `550 X.Y.Z text`; HOLD is logged once,
when the message first goes on hold; after DISCARD nothing more is added to the message.

Invariants: an action only changes the message's state or returns an edit for the caller.
Security: action texts come from the administrator's tables; nothing is executed.
"""

from __future__ import annotations

from roost.cleanup.checks import CheckAction
from roost.proto.smtp.reply import Reply

DEFAULT_REJECT = "message content rejected"


class CheckActions:
    """Mixed into CleanupMessage (which provides service, client, status, _emit, ...)."""

    def _act(self, action: CheckAction, where: str, text: str):
        """Apply a header/body check action; returns "drop", "replace:TEXT", "prepend:TEXT" or None."""
        kind = action.action
        if kind in ("DUNNO", "OK", "PASS"):
            if kind == "PASS" and where == "body":
                self._body_checks_on = False
            return None
        if kind == "UNKNOWN":
            self.service.log.warning(f"{self.queue_id}: unknown command in header_checks or "
                                     f"body_checks: {action.raw.strip()}")
            return None
        if kind == "REJECT":
            reply = _reject_reply(action.text)
            self._log_action("reject", where, text, f"{reply.enhanced} {reply.text}")
            self._reject(reply, None)
            return None
        if kind == "WARN":
            self._log_action("warning", where, text, action.text)
            return None
        if kind == "INFO":
            self._log_action("info", where, text, action.text)
            return None
        if kind == "HOLD":
            if self.status == "queued":  # logged once, when the message first goes on hold
                self._log_action("hold", where, text, action.text)
                self.status = "held"
            return None
        if kind == "DISCARD":
            self._log_action("discard", where, text, action.text)
            self.status = "discarded"
            return None
        if kind in ("IGNORE", "STRIP"):
            return "drop"
        if kind == "REPLACE":
            self._log_action("replace", where, text, action.text)
            return "replace:" + action.text
        if kind == "PREPEND":
            self._log_action("prepend", where, text, action.text)
            return "prepend:" + action.text
        if kind == "FILTER":
            self._log_action("filter", where, text, action.text)
            self._filter = action.text
            return None
        if kind == "REDIRECT":
            self._log_action("redirect", where, text, action.text)
            self._redirect = self.service.rewriter.qualify(action.text)
            return None
        if kind == "BCC":
            self._log_action("bcc", where, text, action.text)
            self._bcc.append(self.service.rewriter.qualify(action.text))
            return None
        return None

    def _log_action(self, verb: str, where: str, text: str, detail: str) -> None:
        client = self.client
        origin = f"{client.name}[{client.address}]" if client is not None else "local"
        line = f"{self.queue_id}: {verb}: {where} {text[:200]} from {origin}; from=<{self.sender}>"
        if self._log_recipient is not None:  # Postfix: the last recipient, after canonical mapping
            line += f" to=<{self._log_recipient}>"
        if client is not None:
            line += f" proto={client.protocol}"
            if client.helo:
                line += f" helo=<{client.helo}>"
        if detail:
            line += f": {detail}"
        self.service.log.info(line)



def _reject_reply(text: str) -> Reply:
    """REJECT [optional text]: 550 5.7.1 by default; a text may start with its own x.y.z."""
    text = text.strip()
    enhanced = "5.7.1"
    first, _, rest = text.partition(" ")
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] == "5":
        enhanced, text = first, rest.strip()
    return Reply(550, enhanced, text or DEFAULT_REJECT)
