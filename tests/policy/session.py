"""A minimal SMTP session driver around SmtpPolicy, for the differential tests.

`PolicySession(policy, settings, source).replies(commands)` answers a command list the way
Postfix's smtpd does for the parts that are not policy (command order errors, HELO/EHLO,
AUTH PLAIN with the oracle's fixed password, DATA followed by one short message), asking
the policy at CONNECT, HELO, MAIL, RCPT, DATA and end of data, and returns one reply text per
command in the oracle's format ("554 5.7.1 <x@y>: Relay access denied").

This stands in for roost's smtpd until it exists; `roost_replies` in the matrix tests can
then be pointed at a running roost instead (see tests/interop/test_restrictions_matrix.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses

from roost.policy import SmtpPolicy, SmtpState, access_denied_reply
from roost.proto.smtp.reply import Reply
from tests.conftest import RecordingLog
from tests.policy.postfix_oracle import PASSWORD

QUEUE_ID = "0123456789A"


def reply_text(reply: Reply) -> str:
    return "\n".join(line.decode().rstrip("\r\n") for line in reply.lines())


def _path(argument: str) -> str:
    text = argument.strip()
    if text.startswith("<"):
        end = text.find(">")
        return text[1:end] if end > 0 else text[1:]
    return text.split()[0] if text.split() else ""


class PolicySession:
    def __init__(self, policy: SmtpPolicy, settings, source: str):
        self.policy = policy
        self.settings = settings
        self.state = SmtpState(client_address=source, client_name="unknown", reverse_client_name="unknown")
        self.denied: Reply | None = None
        self.log = policy.log

    def _set(self, **changes) -> None:
        self.state = dataclasses.replace(self.state, **changes)

    async def run(self, commands: list[str]) -> list[str]:
        connect = await self.policy.check_connect(self.state)
        if connect.reply is not None:
            self.denied = access_denied_reply(self.state)
            self.log.info(connect.log)
        replies: list[str] = []
        for command in commands:
            if replies and replies[-1].split("\n")[-1].startswith(("421", "221", "(closed)")):
                replies.append("(closed)")  # 421: the server closes the connection (RFC 5321 §3.8)
                continue
            replies.append(self._footer(await self.command(command)))
        return replies

    def _footer(self, reply: str) -> str:
        """smtpd_reject_footer after every 4XX/5XX reply, as Postfix's smtpd adds it."""
        footer = self.settings.get("smtpd_reject_footer")
        if not footer or reply[:1] not in "45":
            return reply
        code, enhanced = reply[:3], reply[4:].split(" ", 1)[0]
        return reply_text(Reply(int(code), enhanced if enhanced[:1] == reply[0] else None,
                                reply[4 + len(enhanced) + 1:] + "\n" + footer)) if "\n" not in reply else reply

    def replies(self, commands: list[str]) -> list[str]:
        return asyncio.run(self.run(commands))

    async def _policy(self, result) -> Reply | None:
        if result.reply is not None and result.log:
            self.log.info(result.log)
        if any(action[0] == "DISCARD" for action in result.actions):
            self._set(discard=True)
        return result.reply

    async def command(self, line: str) -> str:
        verb, _, argument = line.partition(" ")
        verb = verb.upper()
        if verb == "QUIT":
            return "221 2.0.0 Bye"
        if self.denied is not None:
            return reply_text(self.denied)
        if verb in ("HELO", "EHLO"):
            helo = argument.strip()
            self._set(helo_name=helo, protocol="ESMTP" if verb == "EHLO" else "SMTP", sender=None, recipient=None,
                      recipient_count=0, discard=False, queue_id=None)
            refused = await self._policy(await self.policy.check_helo(self.state))
            if refused is not None:
                self._set(helo_name=None)
                return reply_text(refused)
            hostname = self.settings.get("myhostname")
            return f"250-{hostname}\n250 8BITMIME" if verb == "EHLO" else f"250 {hostname}"
        if verb == "RSET":
            self._set(sender=None, recipient=None, recipient_count=0, discard=False, queue_id=None)
            return "250 2.0.0 Ok"
        if verb == "NOOP":
            return "250 2.0.0 Ok"
        if verb == "AUTH":
            return self._auth(argument)
        if verb == "MAIL":
            if self.settings.bool("smtpd_helo_required") and self.state.helo_name is None:
                return "503 5.5.1 Error: send HELO/EHLO first"
            if self.state.sender is not None:
                return "503 5.5.1 Error: nested MAIL command"
            candidate = dataclasses.replace(self.state, sender=_path(argument.partition(":")[2]))
            refused = await self._policy(await self.policy.check_mail(candidate))
            if refused is not None:
                return reply_text(refused)
            self.state = candidate
            return "250 2.1.0 Ok"
        if verb == "RCPT":
            if self.state.sender is None:
                return "503 5.5.1 Error: need MAIL command"
            candidate = dataclasses.replace(self.state, recipient=_path(argument.partition(":")[2]))
            result = await self.policy.check_rcpt(candidate)
            refused = await self._policy(result)
            if refused is not None:
                return reply_text(refused)
            self._set(recipient=candidate.recipient, recipient_count=self.state.recipient_count + 1,
                      queue_id=QUEUE_ID)
            return "250 2.1.5 Ok"
        if verb == "DATA":
            if self.state.sender is None:
                return "503 5.5.1 Error: need RCPT command"
            if self.state.recipient_count == 0:
                return "554 5.5.1 Error: no valid recipients"
            refused = await self._policy(await self.policy.check_data(self.state))
            if refused is not None:
                return reply_text(refused)
            first = "354 End data with <CR><LF>.<CR><LF>"
            refused = await self._policy(await self.policy.check_end_of_data(self.state))
            self._set(sender=None, recipient=None, recipient_count=0, discard=False, queue_id=None)
            if refused is not None:
                return first + "\n" + reply_text(refused)
            return first + f"\n250 2.0.0 Ok: queued as {QUEUE_ID}"
        return "500 5.5.2 Error: command not recognized"

    def _auth(self, argument: str) -> str:
        if not self.settings.bool("smtpd_sasl_auth_enable"):
            return "503 5.5.1 Error: authentication not enabled"
        if self.state.sasl_username:
            return "503 5.5.1 Error: already authenticated"
        if self.state.sender is not None:
            return "503 5.5.1 Error: MAIL transaction in progress"
        mechanism, _, initial = argument.partition(" ")
        try:
            _, user, password = base64.b64decode(initial).decode().split("\0")
        except ValueError:
            return "501 5.5.2 Cannot decode response"
        if mechanism.upper() != "PLAIN" or password != PASSWORD:
            return "535 5.7.8 Error: authentication failed: authentication failure"
        self._set(sasl_method="PLAIN", sasl_username=user)
        return "235 2.7.0 Authentication successful"


def make_policy(settings, resolver=None, log=None) -> SmtpPolicy:
    from roost.net.dns import FakeResolver
    return SmtpPolicy(settings, resolver=resolver or FakeResolver({}), log=log or RecordingLog())
