"""Dovecot's quota rules: `quota_rule = *:storage=1G`, parsed, merged and checked at delivery.

Implements the quota plugin's rule syntax of Dovecot 2.3 (doc.dovecot.org "Quota
configuration"; behaviour checked against `doveadm quota get`, tests/store/test_quota_doveadm.py):

- `quota_rule`, `quota_rule2`, `quota_rule3`... in `plugin { }`; a userdb extra field of the
  same name replaces the configured rule of that name (userdb wins, per name).
- A rule is `MAILBOX:LIMIT=VALUE[:LIMIT=VALUE]...` or `MAILBOX:ignore`; MAILBOX `*` is the
  default rule (the quota root's limits), other names (wildcards `*` `?` allowed) apply to
  that mailbox only.
- Limits: `storage=` (default unit kilobytes, suffixes b k M G T, case-insensitive),
  `bytes=` (default unit bytes), `messages=` (a count). `0` means unlimited.
- Mailbox rules may be relative to the default rule: `+100M`, `50%`. The default rule may
  not use `+` ("Rule limit cannot have '+'") and no limit may be negative (`-`).
- `quota_grace` (default `10%%`, a percentage of the limit, or a size): a mail that starts
  while the user is within the limit may end up to the grace over it (the "last mail").

Invariants: a QuotaRule is immutable; `check` raises only roost.store.api.QuotaExceeded.
Parse errors raise QuotaConfigError with Dovecot's wording (the caller answers a temporary
failure, as Dovecot does when the quota root cannot be initialised).
Security: limits are parsed as integers only; nothing in a rule names a file.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Mapping

from roost.store.api import QuotaExceeded

DEFAULT_GRACE = "10%%"
QUOTA_EXCEEDED_MESSAGE = "Quota exceeded (mailbox for user is full)"
UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_VALUE = re.compile(r"([+-]?)(\d+)\s*([a-zA-Z]?|%)\Z")
_RULE_NAME = re.compile(r"quota_rule(\d*)\Z")


class QuotaConfigError(ValueError):
    """An invalid quota_rule / quota_grace (Dovecot: "Failed to initialize quota")."""


@dataclass(frozen=True)
class Limit:
    """One limit value: absolute, or relative to the default rule (`+N`, `-N`, `N%`)."""
    value: int  # bytes or messages; for percent: the percentage
    relative: str = ""  # "" | "+" | "-" | "%"

    def resolve(self, default: int | None) -> int | None:
        """The effective limit (None = unlimited) given the default rule's limit."""
        if not self.relative:
            return self.value or None
        if default is None:
            return None
        if self.relative == "%":
            return default * self.value // 100 or None
        result = default + self.value if self.relative == "+" else default - self.value
        return max(result, 0) or None


@dataclass(frozen=True)
class Rule:
    """`MAILBOX:storage=..:messages=..` or `MAILBOX:ignore`."""
    mailbox: str
    storage: Limit | None = None
    messages: Limit | None = None
    ignore: bool = False


def parse_size(text: str, default_unit: str, what: str) -> Limit:
    match = _VALUE.match(text.strip())
    if not match:
        raise QuotaConfigError(f"Invalid {what} limit: {text}")
    sign, number, unit = match.groups()
    if unit == "%":
        return Limit(int(number), "%")
    multiplier = UNITS.get((unit or default_unit).lower())
    if multiplier is None:
        raise QuotaConfigError(f"Unknown unit: {text}")
    return Limit(int(number) * multiplier, sign)


def parse_rule(text: str) -> Rule:
    """One rule value, with Dovecot's error texts."""
    mailbox, colon, rest = text.partition(":")
    if not colon or not mailbox:
        raise QuotaConfigError(f"Invalid rule {text}: Missing ':'" if not colon
                               else f"Invalid rule {text}: Missing mailbox name")
    storage = messages = None
    ignore = False
    for item in rest.split(":"):
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if key == "ignore" and not eq:
            ignore = True
            continue
        if not eq or not value.strip():
            raise QuotaConfigError(f"Invalid rule {text}: Invalid quota limit: {item}")
        if key in ("storage", "bytes", "backend"):
            if key == "backend":
                continue
            storage = parse_size(value, "k" if key == "storage" else "b", "storage")
            limit = storage
        elif key == "messages":
            limit = messages = parse_size(value, "b", "messages")
        else:
            raise QuotaConfigError(f"Invalid rule {text}: Unknown rule limit name: {key}")
        if limit.relative == "-":
            raise QuotaConfigError(f"Invalid rule {text}: Bytes limit can't be negative")
        if mailbox == "*" and limit.relative == "+":
            raise QuotaConfigError(f"Invalid rule {text}: Rule limit cannot have '+'")
    return Rule(mailbox, storage, messages, ignore)


def parse_grace(text: str) -> Limit:
    text = text.strip().replace("%%", "%")
    if not text:
        return Limit(0)
    return parse_size(text, "b", "grace")


@dataclass(frozen=True)
class QuotaRule:
    """The effective quota of one user: the default rule, mailbox rules and the grace."""
    storage_limit: int | None = None  # bytes; None = unlimited
    message_limit: int | None = None
    grace: Limit = field(default_factory=lambda: parse_grace(DEFAULT_GRACE))
    mailbox_rules: tuple[Rule, ...] = ()
    message: str = QUOTA_EXCEEDED_MESSAGE

    @classmethod
    def from_settings(cls, plugin: Mapping[str, str] | None,
                      user_extra: Mapping[str, str] | None = None,
                      mail_plugins: str | None = None) -> "QuotaRule":
        """From the `plugin { }` settings and the userdb extra fields (which win per name).
        `mail_plugins` (when known) without `quota` means no quota at all, as in Dovecot."""
        if mail_plugins is not None and "quota" not in mail_plugins.split():
            return cls()
        values: dict[str, str] = {}
        for source in (plugin or {}), (user_extra or {}):
            for name, value in source.items():
                if _RULE_NAME.match(name) or name in ("quota_grace", "quota_exceeded_message"):
                    values[name] = value
        rules = [parse_rule(value) for name, value in sorted(
            values.items(), key=lambda item: int(_RULE_NAME.match(item[0]).group(1) or 1)
            if _RULE_NAME.match(item[0]) else 0) if _RULE_NAME.match(name) and value.strip()]
        storage = messages = None
        for default in (rule for rule in rules if rule.mailbox == "*"):
            # every `*` rule sets the limits it names (quota_rule storage, quota_rule2 messages)
            if default.ignore:
                storage = messages = None
            if default.storage:
                # a percent on the default rule has nothing to be relative to: Dovecot takes
                # the number as kilobytes (`*:storage=50%` shows a 50 kB limit)
                storage = (default.storage.value * 1024 if default.storage.relative == "%"
                           else default.storage.resolve(None))
            if default.messages:
                messages = default.messages.resolve(None)
        grace = parse_grace(values.get("quota_grace", DEFAULT_GRACE))
        return cls(storage, messages, grace,
                   tuple(rule for rule in rules if rule.mailbox != "*"),
                   values.get("quota_exceeded_message") or QUOTA_EXCEEDED_MESSAGE)

    def limits_for(self, mailbox: str = "INBOX") -> tuple[int | None, int | None]:
        """(bytes, messages) limits that apply while saving into `mailbox`."""
        for rule in self.mailbox_rules:
            if fnmatch.fnmatchcase(mailbox, rule.mailbox):
                if rule.ignore:
                    return None, None
                storage = (rule.storage.resolve(self.storage_limit) if rule.storage
                           else self.storage_limit)
                messages = (rule.messages.resolve(self.message_limit) if rule.messages
                            else self.message_limit)
                return storage, messages
        return self.storage_limit, self.message_limit

    def grace_bytes(self, limit: int) -> int:
        if self.grace.relative == "%":
            return limit * self.grace.value // 100
        return self.grace.value

    @property
    def unlimited(self) -> bool:
        return (self.storage_limit is None and self.message_limit is None
                and not self.mailbox_rules)

    def check(self, used_bytes: int, adding_bytes: int, *, used_messages: int = 0,
              adding_messages: int = 1, mailbox: str = "INBOX", delivery: bool = True) -> None:
        """Raise QuotaExceeded when saving `adding_bytes` more would break the limit.
        quota_grace applies to deliveries (LMTP/LDA) only; `doveadm save`/IMAP APPEND get
        none (observed with Dovecot 2.3)."""
        storage, messages = self.limits_for(mailbox)
        if storage is not None and used_bytes + adding_bytes > storage:
            # quota_grace: the last mail may cross the limit while the user was within it
            grace = self.grace_bytes(storage) if delivery else 0
            if used_bytes > storage or used_bytes + adding_bytes > storage + grace:
                raise QuotaExceeded(self.message, used=used_bytes, limit=storage)
        if messages is not None and used_messages + adding_messages > messages:
            raise QuotaExceeded(self.message, used=used_bytes, limit=storage or 0)
