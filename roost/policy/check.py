"""The restriction-list evaluator: one Check per SMTP command, one Scope per list.

Semantics (postconf(5) and SMTPD_ACCESS_README, checked against Postfix 3.7): the items of a
list are tried in order; each answers OK (permit: the *list* ends with success, the next
list still runs), DUNNO (try the next item) or a rejection (the command fails). Reaching the
end of a list is DUNNO. Generic restrictions handled here:
  permit / reject / defer      reject: `$reject_code 5.7.1 <name>: Class rejected: Access denied`
                               defer:  `$defer_code 4.3.2 <name>: Class rejected: Try again later`
  defer_if_permit              remember `450 4.7.0 <name>: Class rejected: defer_if_permit
                               requested`; sent if the whole command ends up permitted
  defer_if_reject              a later 5XX rejection in this list becomes `450 4.7.0 ...
                               defer_if_reject requested`
  warn_if_reject               the next restriction's rejection is only logged
                               (`reject_warning:`) and evaluation goes on
  restriction classes          (smtpd_restriction_classes) evaluated as a nested list
  unknown names / bad args     warning, then `451 4.3.5 Server configuration error`
Every reply goes through `reject`, which applies soft_bounce (5XX → 4XX) and keeps the
enhanced code's class equal to the reply's. smtpd_reject_footer is the daemon's: Postfix
appends it to every 4XX/5XX reply, policy or not (observed).

Invariants: evaluation depth is bounded (MAX_DEPTH) so access-table results that name
restriction classes cannot loop; TableError anywhere becomes Postfix's
`451 4.3.5 <name>: Class rejected: Server configuration error` (for the subject of the
check that failed) plus a warning.
Security: configuration errors fail closed (a 4XX reply), never open.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from roost.policy.parse import Item, parse_restrictions
from roost.policy.result import DUNNO, OK, Reject
from roost.proto.smtp.reply import Reply
from roost.resolve.address import external_form
from roost.tables.base import TableError

MAX_DEPTH = 20
MAX_SLEEP = 300  # seconds; Postfix's smtpd_timeout default bounds a sane pause
CONFIG_ERROR = Reply(451, "4.3.5", "Server configuration error")

Handler = Callable[["Check", Item, "Scope"], Awaitable[object]]
HANDLERS: dict[str, Handler] = {}


def restriction(*names: str):
    """Register the coroutine that evaluates the restrictions `names`."""
    def register(function: Handler) -> Handler:
        for name in names:
            HANDLERS[name] = function
        return function
    return register


@dataclass(frozen=True)
class Scope:
    """The list being evaluated: its kind and how its replies name the subject."""
    kind: str          # client, helo, sender, recipient, relay, data, end_of_data, etrn
    reply_name: str    # "unknown[1.2.3.4]", the HELO name, an address, "DATA"...
    reply_class: str   # "Client host", "Helo command", "Sender address", ...

    def text(self, detail: str) -> str:
        return f"<{self.reply_name}>: {self.reply_class} rejected: {detail}"


@dataclass
class Check:
    """The evaluation of one SMTP command (`stage`: CONNECT, HELO, MAIL, RCPT, DATA,
    END-OF-MESSAGE, ETRN)."""
    policy: object     # roost.policy.SmtpPolicy
    state: object      # roost.policy.state.SmtpState
    stage: str
    actions: list = field(default_factory=list)
    defer_if_permit: Reply | None = None
    defer_if_reject: Reply | None = None
    warn_if_reject: bool = False
    depth: int = 0
    recipient_checked: bool = False
    discarded: bool = False   # a DISCARD action was met: nothing else is checked
    log_lines: list = field(default_factory=list)   # (level, text) written by the policy
    _resolved: dict = field(default_factory=dict)

    def resolve(self, address: str):
        """roost.resolve's answer for an internal-form address, once per command."""
        found = self._resolved.get(address)
        if found is None:
            found = self._resolved[address] = self.policy.addresses.resolve(address)
        return found

    @property
    def settings(self):
        return self.policy.settings

    # ------------------------------------------------------------------ replies
    def make_reply(self, code: int, dsn: str, text: str) -> Reply:
        if self.settings.bool("soft_bounce") and code >= 500:
            code -= 100
        dsn = f"{str(code)[0]}{dsn[1:]}" if dsn and dsn[0] != str(code)[0] else dsn
        return Reply(code, dsn, text)

    def reject(self, code: int, dsn: str, text: str) -> object:
        reply = self.make_reply(code, dsn, text)
        if self.warn_if_reject:
            self.log_reply("reject_warning", reply)
            return DUNNO
        if self.defer_if_reject is not None and reply.code >= 500:
            reply = self.defer_if_reject
        return Reject(reply)

    def tempfail(self, action_parameter: str, code: int, dsn: str, text: str) -> object:
        """A DNS lookup failed temporarily: apply *_tempfail_action (default defer_if_permit)."""
        action = (self.settings.get(action_parameter) or "defer_if_permit").strip()
        if action == "defer_if_permit":
            if self.defer_if_permit is None:
                self.defer_if_permit = self.make_reply(450, "4" + dsn[1:], text)
            return DUNNO
        if action == "defer":
            return self.reject(450, "4" + dsn[1:], text)
        if action == "reject":
            return self.reject(code, dsn, text)
        return DUNNO

    def config_error(self, warning: str) -> object:
        self.warn(warning)
        return Reject(CONFIG_ERROR)

    def warn(self, text: str) -> None:
        self.log_lines.append(("warning", text))

    def log_reply(self, what: str, reply: Reply) -> None:
        self.log_lines.append(("info", self.log_text(what, reply)))

    def log_text(self, what: str, reply: Reply, detail: str | None = None) -> str:
        """`NOQUEUE: reject: RCPT from host[addr]: 554 5.7.1 ...; from=<> to=<> proto=ESMTP helo=<>`."""
        state = self.state
        head = f"{state.queue_id or 'NOQUEUE'}: {what}: {self.stage} from {state.namaddr}: "
        if detail is None:
            first_line = reply.text.splitlines()[0] if reply.text else ""
            detail = f"{reply.code} {reply.enhanced} {first_line}"
        body = detail
        parts = [head + body]
        if state.sender is not None:
            parts.append(f"from=<{external_form(self.policy.internal(state.sender))}>")
        if state.recipient is not None and (self.stage not in ("DATA", "END-OF-MESSAGE") or state.recipient_count == 1):
            parts.append(f"to=<{external_form(self.policy.internal(state.recipient))}>")
        parts.append(f"proto={state.protocol}")
        if state.helo_name is not None:
            parts.append(f"helo=<{state.helo_name}>")
        return parts[0] + "; " + " ".join(parts[1:])

    # ------------------------------------------------------------------ lists
    async def run(self, items: tuple[Item, ...], scope: Scope) -> object:
        """Evaluate one restriction list; defer_if_reject is reset per list as in Postfix."""
        saved_defer_if_reject = self.defer_if_reject
        self.defer_if_reject = None
        try:
            return await self._run(items, scope)
        finally:
            self.defer_if_reject = saved_defer_if_reject

    async def _run(self, items: tuple[Item, ...], scope: Scope) -> object:
        # A nested list (an access-table result, a class) inherits warn_if_reject from the
        # restriction that produced it.
        inherited = self.warn_if_reject
        warn_next = False
        for item in items:
            if item.name == "warn_if_reject" and item.error is None:
                warn_next = True
                continue
            self.warn_if_reject = warn_next or inherited
            try:
                verdict = await self.apply(item, scope)
            except TableError as error:
                # Postfix: an unusable table is a configuration error (observed with 3.7:
                # "451 4.3.5 <a@b>: Sender address rejected: Server configuration error").
                target = getattr(error, "scope", None) or scope
                self.warn(f"{error}")
                verdict = self.reject(451, "4.3.5", target.text("Server configuration error"))
            finally:
                self.warn_if_reject = inherited
            warn_next = False
            if self.discarded:
                return OK
            if verdict is DUNNO:
                continue
            return verdict
        return DUNNO

    async def run_text(self, value: str, scope: Scope) -> object:
        """A restriction list given as text (an access-table result or a class)."""
        if self.depth >= MAX_DEPTH:
            return self.config_error(f"restriction list nesting too deep: {value[:80]}")
        self.depth += 1
        try:
            items = parse_restrictions(value, self.policy.restriction_classes, scope.kind)
            return await self._run(items, scope)
        finally:
            self.depth -= 1

    async def apply(self, item: Item, scope: Scope) -> object:
        if item.error is not None:
            return self.config_error(item.error)
        if item.is_class:
            return await self.run_text(self.settings.get(item.name), scope)
        handler = HANDLERS.get(item.name)
        if handler is None:
            return self.config_error(f'unsupported smtpd restriction: "{item.name}"')
        return await handler(self, item, scope)


# ---------------------------------------------------------------------- generic restrictions

@restriction("permit")
async def _permit(check: Check, item: Item, scope: Scope) -> object:
    return OK


@restriction("reject")
async def _reject(check: Check, item: Item, scope: Scope) -> object:
    return check.reject(check.settings.int("reject_code"), "5.7.1", scope.text("Access denied"))


@restriction("defer")
async def _defer(check: Check, item: Item, scope: Scope) -> object:
    return check.reject(check.settings.int("defer_code"), "4.3.2", scope.text("Try again later"))


@restriction("defer_if_permit")
async def _defer_if_permit(check: Check, item: Item, scope: Scope) -> object:
    if check.defer_if_permit is None:
        check.defer_if_permit = check.make_reply(check.settings.int("defer_code"), "4.7.0",
                                                 scope.text("defer_if_permit requested"))
    return DUNNO


@restriction("defer_if_reject")
async def _defer_if_reject(check: Check, item: Item, scope: Scope) -> object:
    if check.defer_if_reject is None:
        check.defer_if_reject = check.make_reply(check.settings.int("defer_code"), "4.7.0",
                                                 scope.text("defer_if_reject requested"))
    return DUNNO


@restriction("reject_unauth_pipelining")
async def _unauth_pipelining(check: Check, item: Item, scope: Scope) -> object:
    if not check.state.pipelined:
        return DUNNO
    return check.reject(503, "5.5.0", scope.text("Improper use of SMTP command pipelining"))


@restriction("reject_plaintext_session")
async def _plaintext(check: Check, item: Item, scope: Scope) -> object:
    if check.state.tls:
        return DUNNO
    return check.reject(check.settings.int("plaintext_reject_code") or 450, "4.7.1",
                        "Session encryption is required")


@restriction("sleep")
async def _sleep(check: Check, item: Item, scope: Scope) -> object:
    """`sleep N`: pause, then go on (stops zombie clients that do not wait for replies);
    an asyncio pause, so other sessions of the worker keep running."""
    if not (item.argument or "").isdigit():
        return check.config_error(f'restriction sleep: bad argument "{item.argument}": need a number')
    await asyncio.sleep(min(int(item.argument), MAX_SLEEP))
    return DUNNO
