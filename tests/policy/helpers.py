"""Small helpers for the pure policy tests: Settings from main.cf text, states, one check."""

from __future__ import annotations

import asyncio

from roost.config.diagnostics import Diagnostics
from roost.config.main_cf import parse_main_cf_text
from roost.config.settings import Settings
from roost.net.dns import FakeResolver
from roost.policy import PolicyResult, SmtpPolicy, SmtpState
from tests.conftest import RecordingLog

BASE = """\
compatibility_level = 3.6
myhostname = mx.roost.test
mydomain = roost.test
mydestination = $myhostname, localhost, local.test
relay_domains = relay.test
mynetworks = 127.0.0.1/32
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
local_recipient_maps =
alias_maps =
"""


def settings_from(text: str = "", config_dir: str = "/nonexistent", base: str = BASE) -> Settings:
    diags = Diagnostics()
    main = parse_main_cf_text(base + text, f"{config_dir}/main.cf", diags)
    return Settings(main.effective, config_dir)


def policy_from(text: str = "", zone: dict | None = None, base: str = BASE) -> SmtpPolicy:
    return SmtpPolicy(settings_from(text, base=base), resolver=FakeResolver(zone or {}), log=RecordingLog())


def state(**fields) -> SmtpState:
    values = dict(client_address="192.0.2.5", helo_name="client.example", protocol="ESMTP",
                  sender="a@ext.example", recipient="alice@local.test")
    values.update(fields)
    return SmtpState(**values)


def rcpt(policy: SmtpPolicy, **fields) -> PolicyResult:
    return asyncio.run(policy.check_rcpt(state(**fields)))


def text_of(result: PolicyResult) -> str | None:
    return None if result.reply is None else str(result.reply)
