"""SMTP access policy: Postfix's smtpd restrictions, as a pure decision the daemon asks at
each command (postconf(5) smtpd_*_restrictions, SMTPD_ACCESS_README, ADDRESS_CLASS_README).

    policy = SmtpPolicy(settings, resolver=Resolver(), log=logger)
    result = await policy.check_rcpt(state)     # PolicyResult(reply | None, actions, log)

When each list runs (Postfix 3.7, checked against it):
  smtpd_delay_reject = yes (default): nothing is rejected before RCPT; at each RCPT the
    client, HELO and sender lists run again, then smtpd_relay_restrictions and
    smtpd_recipient_restrictions (relay first when smtpd_relay_before_recipient_restrictions,
    the default from compatibility_level 3.6), then an armed defer_if_permit, then the
    implicit recipient validation (smtpd_reject_unlisted_recipient, default yes) unless a
    reject_unlisted_recipient already ran; smtpd_reject_unlisted_sender likewise after the
    sender list.
  smtpd_delay_reject = no: client list at CONNECT, HELO list at HELO, sender list at MAIL.
    A client rejected at CONNECT gets, from the daemon, `503 5.7.0 Error: access denied for
    name[addr]` (access_denied_reply) for every later command but QUIT, as Postfix answers.
  smtpd_data_restrictions at DATA (`<DATA>: Data command rejected`),
  smtpd_end_of_data_restrictions after the final dot (`<END-OF-MESSAGE>: End-of-data rejected`).
After a DISCARD action (PolicyResult.actions) the daemon sets SmtpState.discard for the
rest of the transaction: Postfix then accepts every later command of that message without
checking anything (observed with Postfix 3.7).
A configuration Postfix's smtpd refuses to run with (no working relay restriction) is in
`policy.fatal`; the daemon must refuse to serve (log it as fatal) as Postfix's smtpd exits.

The daemon writes `PolicyResult.log` (the `NOQUEUE: reject: ...` line) as an info line; the
policy itself writes warnings, `reject_warning:`, `hold:`/`warn:` lines through `log`.
Also the daemon's, as Postfix's smtpd does it (observed): SmtpState.queue_id is set from the
first accepted RCPT of a transaction (log lines then start with the ID, not NOQUEUE);
SmtpState.recipient carries the recipient at DATA and END-OF-MESSAGE (logged as `to=` when
there is exactly one); smtpd_reject_footer follows every 4XX/5XX reply, policy or not; a
421 reply closes the connection.

Invariants: no I/O besides DNS (the resolver) and table reads (roost.tables, cached and
reload-watching: a rebuilt table is seen within a second without a restart).
Security: every decision fails closed: table errors and configuration errors
defer (451 4.3.5 Server configuration error), unknown restrictions never permit.
"""

from __future__ import annotations

from roost.policy import access, address, client, helo, login, relay, server_access  # noqa: F401  (registers)
from roost.policy.check import Check, Scope
from roost.policy.parse import missing_working_relay_restriction, parse_restrictions
from roost.policy.recipients import PASSWD_TABLES, PasswdTable, unlisted_reply
from roost.policy.result import DUNNO, PolicyResult, Reject
from roost.policy.state import SmtpState
from roost.proto.smtp.reply import Reply
from roost.resolve.address import internal_form
from roost.resolve.classes import AddressResolver, parent_style
from roost.resolve.domains import MatchList
from roost.tables.base import LookupTable, TableError
from roost.tables.registry import open_table

__all__ = ["PolicyResult", "SmtpPolicy", "SmtpState", "access_denied_reply"]

LISTS = {
    "client": "smtpd_client_restrictions", "helo": "smtpd_helo_restrictions",
    "sender": "smtpd_sender_restrictions", "relay": "smtpd_relay_restrictions",
    "recipient": "smtpd_recipient_restrictions", "data": "smtpd_data_restrictions",
    "end_of_data": "smtpd_end_of_data_restrictions", "etrn": "smtpd_etrn_restrictions",
}


def access_denied_reply(state: SmtpState) -> Reply:
    """What Postfix answers every command after a CONNECT-time rejection."""
    return Reply(503, "5.7.0", f"Error: access denied for {state.namaddr}")


class SmtpPolicy:
    """One per listener Settings (per worker); cheap to call per command."""

    def __init__(self, settings, *, resolver, log) -> None:
        self.settings = settings
        self.resolver = resolver
        self.log = log
        self.default_type = settings.get("default_database_type") or "hash"
        self._passwd = PasswdTable()
        self._tables: dict[str, LookupTable] = {}
        self.addresses = AddressResolver(settings, self.table)
        self.restriction_classes = frozenset(settings.list("smtpd_restriction_classes"))
        self.lists = {kind: parse_restrictions(settings.get(name), self.restriction_classes, kind)
                      for kind, name in LISTS.items()}
        self.mynetworks = MatchList.build("mynetworks", settings.list("mynetworks"),
                                          parent_style(settings, "mynetworks"), self.table)
        self.mx_backup_networks = MatchList.build("permit_mx_backup_networks",
                                                  settings.list("permit_mx_backup_networks"),
                                                  parent_style(settings, "permit_mx_backup_networks"), self.table)
        self.fatal = missing_working_relay_restriction(self.lists["relay"], self.lists["recipient"])
        self.delay_reject = settings.bool("smtpd_delay_reject")
        self.relay_first = settings.bool("smtpd_relay_before_recipient_restrictions")
        self.reject_unlisted_recipient = settings.bool("smtpd_reject_unlisted_recipient")
        self.reject_unlisted_sender = settings.bool("smtpd_reject_unlisted_sender")
        self._table_lists: dict[str, list[LookupTable]] = {}

    def needs(self, stage: str) -> bool:
        """False when check_<stage> answers an empty PolicyResult whatever the session state
        (the caller may skip building the state): CONNECT/HELO/MAIL under smtpd_delay_reject,
        DATA/END-OF-MESSAGE without restrictions."""
        if stage in ("connect", "helo", "mail"):
            return not self.delay_reject
        if stage in ("data", "end_of_data"):
            return bool(self.lists[stage])
        return True

    def problems(self) -> list[tuple[str, str]]:
        """(parameter, message) for every unusable restriction in the lists and classes, and
        Postfix's fatal start-up error: what `roost check` should report with file:line."""
        found = [(LISTS[kind], item.error) for kind, items in self.lists.items() for item in items if item.error]
        for name in sorted(self.restriction_classes):
            found += [(name, item.error) for item in parse_restrictions(self.settings.get(name),
                                                                         self.restriction_classes) if item.error]
        if self.fatal:
            found.append(("smtpd_relay_restrictions", self.fatal))
        return found

    # ------------------------------------------------------------------ helpers
    def table(self, reference: str) -> LookupTable:
        """The table `reference` names. Kept per reference: domain lists ask for their table
        at every address, and the shared roost.tables cache costs a lock, a Diagnostics and
        an options object per ask (the table object reloads its own file when rebuilt)."""
        found = self._tables.get(reference)
        if found is None:
            if reference.strip() in PASSWD_TABLES:
                found = self._passwd
            else:
                found = open_table(reference, default_type=self.default_type)
            self._tables[reference] = found
        return found

    def tables(self, parameter: str) -> list[LookupTable]:
        found = self._table_lists.get(parameter)
        if found is None:
            found = [self.table(reference) for reference in self.settings.list(parameter)
                     if ":" in reference or reference.startswith("/")]
            self._table_lists[parameter] = found
        return found

    @staticmethod
    def internal(address: str) -> str:
        return internal_form(address)

    def _scope(self, kind: str, state: SmtpState) -> Scope:
        if kind == "client":
            return Scope(kind, state.namaddr, "Client host")
        if kind == "helo":
            return Scope(kind, state.helo_name or "", "Helo command")
        if kind == "sender":
            return Scope(kind, self.internal(state.sender or ""), "Sender address")
        if kind in ("recipient", "relay"):
            return Scope(kind, self.internal(state.recipient or ""), "Recipient address")
        if kind == "data":
            return Scope(kind, "DATA", "Data command")
        if kind == "end_of_data":
            return Scope(kind, "END-OF-MESSAGE", "End-of-data")
        return Scope(kind, state.recipient or "", "Etrn command")

    def _finish(self, check: Check, verdict: object) -> PolicyResult:
        for level, text in check.log_lines:
            getattr(self.log, level)(text)
        if isinstance(verdict, Reject):
            return PolicyResult(verdict.reply, tuple(check.actions), check.log_text("reject", verdict.reply))
        return PolicyResult(None, tuple(check.actions), None)

    async def _lists(self, check: Check, kinds: tuple[str, ...]) -> object:
        for kind in kinds:
            if check.discarded:
                return DUNNO
            if kind == "sender" and check.state.sender is None:
                continue
            items = self.lists[kind]
            if kind == "helo" and check.state.helo_name is None and not items:
                continue
            if items:  # an empty list is DUNNO: no scope to build, nothing to run
                verdict = await check.run(items, self._scope(kind, check.state))
                if isinstance(verdict, Reject):
                    return verdict
            if kind == "sender" and check.stage == "RCPT":
                verdict = self._unlisted_sender(check)
                if verdict is not None:
                    return verdict
        return DUNNO

    def _unlisted_sender(self, check: Check) -> object | None:
        sender = check.state.sender
        if not self.reject_unlisted_sender or not sender:
            return None
        return self._implicit_unlisted(check, self.internal(sender), sender=True)

    def _implicit_unlisted(self, check: Check, address: str, *, sender: bool) -> object | None:
        """smtpd_reject_unlisted_{recipient,sender}: a Reject, or None when the address is known.
        An unusable table defers as Postfix does (`451 4.3.0 <x>: Temporary lookup failure`)."""
        try:
            reply = unlisted_reply(check, address, sender=sender)
        except TableError as error:
            check.warn(str(error))
            return check.reject(451, "4.3.0", f"<{address}>: Temporary lookup failure")
        return None if reply is None else check.reject(*reply)

    # ------------------------------------------------------------------ stages
    async def check_connect(self, state: SmtpState) -> PolicyResult:
        if self.delay_reject:
            return PolicyResult()
        check = Check(self, state, "CONNECT")
        return self._finish(check, await self._lists(check, ("client",)))

    async def check_helo(self, state: SmtpState) -> PolicyResult:
        if self.delay_reject:
            return PolicyResult()
        check = Check(self, state, "HELO")
        return self._finish(check, await self._lists(check, ("helo",)))

    async def check_mail(self, state: SmtpState) -> PolicyResult:
        if self.delay_reject or state.discard:
            return PolicyResult()
        check = Check(self, state, "MAIL")
        verdict = await self._lists(check, ("sender",))
        if not isinstance(verdict, Reject) and self.reject_unlisted_sender and state.sender:
            verdict = self._unlisted_sender(check) or verdict
        return self._finish(check, verdict)

    async def check_rcpt(self, state: SmtpState) -> PolicyResult:
        if state.discard:
            return PolicyResult()
        check = Check(self, state, "RCPT")
        if self.fatal:
            self.log.fatal(self.fatal)
            return self._finish(check, Reject(Reply(451, "4.3.5", "Server configuration error")))
        early = ("client", "helo", "sender") if self.delay_reject else ()
        order = ("relay", "recipient") if self.relay_first else ("recipient", "relay")
        verdict = await self._lists(check, early + order)
        if not isinstance(verdict, Reject) and check.defer_if_permit is not None:
            verdict = Reject(check.defer_if_permit)
        if (not isinstance(verdict, Reject) and self.reject_unlisted_recipient
                and not check.recipient_checked and state.recipient and not check.discarded):
            verdict = self._implicit_unlisted(check, self.internal(state.recipient), sender=False) or verdict
        return self._finish(check, verdict)

    async def check_data(self, state: SmtpState) -> PolicyResult:
        return await self._single(state, "DATA", "data")

    async def check_end_of_data(self, state: SmtpState) -> PolicyResult:
        return await self._single(state, "END-OF-MESSAGE", "end_of_data")

    async def check_etrn(self, state: SmtpState, domain: str) -> PolicyResult:
        check = Check(self, state, "ETRN")
        verdict = await check.run(self.lists["etrn"], Scope("etrn", domain, "Etrn command"))
        return self._finish(check, verdict)

    async def _single(self, state: SmtpState, stage: str, kind: str) -> PolicyResult:
        if state.discard:
            return PolicyResult()
        check = Check(self, state, stage)
        verdict = await self._lists(check, (kind,))
        if not isinstance(verdict, Reject) and check.defer_if_permit is not None:
            verdict = Reject(check.defer_if_permit)
        return self._finish(check, verdict)

    def verify_recipient(self, state: SmtpState) -> Reply | None:
        """The implicit recipient validation alone (for VRFY and the like)."""
        if not state.recipient:
            return None
        check = Check(self, state, "VRFY")
        reply = unlisted_reply(check, self.internal(state.recipient), sender=False)
        return None if reply is None else check.make_reply(*reply)

