"""Open relay matrix: roost's relay decision against Debian's Postfix 3.7, trick forms included.

With `mynetworks = 127.0.0.1/32`, a client bound to 127.0.0.2 (outside) must not relay to a
non-local domain, neither plainly nor through any of the address forms that old mailers
routed (`user%ext@local`, `"user@ext"@local`, `@local:user@ext`, `user@ext@local`,
`ext!user@local`, and their variants with the address literal `[127.0.0.1]`, relay domains
and several routing operators); from 127.0.0.1 (inside) and after AUTH the same recipients
are accepted. Every reply is compared with Postfix's for the same main.cf and client, for
four relay configurations (Postfix 3.6+ defaults, reject_unauth_destination, the pre-2.10
recipient-restrictions style, and an explicit permit_auth_destination list).
roost's side is the real smtpd (roost.net.smtpd) by default; ROOST_POLICY_TARGET=policy drives
SmtpPolicy alone through the minimal session driver instead.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import require_tool
from tests.policy.matrix import Case, Matrix
from tests.policy.postfix_oracle import auth_plain

MAIN_CF = """\
myhostname = mx.roost.test
mydomain = roost.test
mydestination = $myhostname, localhost, local.test
relay_domains = relay.test
mynetworks = 127.0.0.1/32
local_recipient_maps =
alias_maps =
smtpd_sasl_auth_enable = yes
"""

TRICKS = (
    "user%ext.test@local.test",
    '"user@ext.test"@local.test',
    "@local.test:user@ext.test",
    "@local.test,@mx.roost.test:user@ext.test",
    "user@ext.test@local.test",
    "ext.test!user@local.test",
    "user%ext.test%other.test@local.test",
    '"user%ext.test"@local.test',
    "other.test!ext.test!user@local.test",
    "user%ext.test@[127.0.0.1]",
    "ext.test!user@[127.0.0.1]",
    "user@ext.test@[127.0.0.1]",
    "user%ext.test@relay.test",
    "ext.test!user@relay.test",
    "user@ext.test@relay.test",
    "user%ext.test@LOCAL.TEST.",
)
PLAIN = ("user@ext.test", "user@EXT.TEST", "user@ext.test.", "user@local.test.ext.test", "user@[192.0.2.1]")
LOCAL = ("user@local.test", "user@LOCAL.test", "user@[127.0.0.1]", "user@relay.test", "user@sub.relay.test", "user")
RECIPIENTS = PLAIN + TRICKS
COMMANDS = ["EHLO client.test", "MAIL FROM:<sender@ext.test>",
            *(f"RCPT TO:<{r}>" for r in RECIPIENTS + LOCAL), "QUIT"]

CONFIGS = {
    "postfix_defaults": {},
    "reject_unauth": {"smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                                                  "reject_unauth_destination"},
    "recipient_style": {"smtpd_relay_restrictions": "",
                        "smtpd_recipient_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                                                        "reject_unauth_destination"},
    "permit_auth_destination": {"smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                                                            "permit_auth_destination, reject"},
}
SESSIONS = {
    "outside": ("127.0.0.2", []),
    "inside": ("127.0.0.1", []),
    "outside_after_auth": ("127.0.0.2", [auth_plain("alice")]),
}

CASES = [Case(f"{config}-{session}", tuple(COMMANDS[:1] + login + COMMANDS[1:]), tuple(overrides.items()), source)
         for config, overrides in CONFIGS.items() for session, (source, login) in SESSIONS.items()]


@pytest.fixture(scope="module")
def matrix():
    if os.geteuid() != 0:
        pytest.fail("the open relay matrix needs root: Postfix's master starts as root", pytrace=False)
    require_tool("postfix")
    instance = Matrix(CASES, MAIN_CF, {}, target=os.environ.get("ROOST_POLICY_TARGET", "smtpd"))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


def _rcpt_replies(item: Case, replies: list[str]) -> dict[str, str]:
    return {command[9:-1]: reply for command, reply in zip(item.commands, replies) if command.startswith("RCPT")}


@pytest.mark.parametrize("item", CASES, ids=[c.name for c in CASES])
def test_relay_decisions_match_postfix(matrix, item):
    expected = matrix.postfix_replies(item)
    got = matrix.roost_replies(item)
    assert got == expected
    by_recipient = _rcpt_replies(item, got)
    refused = {r for r, reply in by_recipient.items() if reply[0] in "45"}
    if item.name.endswith("-outside"):
        assert refused == set(RECIPIENTS), f"accepted from outside: {set(RECIPIENTS) - refused}"
        if not item.name.startswith("permit_auth_destination"):
            assert all("Relay access denied" in by_recipient[r] for r in RECIPIENTS)
    else:
        assert not refused, f"refused from inside or after AUTH: {refused}"
    assert not refused & set(LOCAL)
