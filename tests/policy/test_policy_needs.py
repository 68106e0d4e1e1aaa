"""SmtpPolicy.needs(stage): smtpd skips building the session state for a stage whose check
would answer an empty PolicyResult anyway; whenever needs() says False, the check itself
must indeed answer nothing (no reply, no action, no log) for any state."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy.helpers import policy_from, state

CONFIGS = [
    "",
    "smtpd_client_restrictions = reject\nsmtpd_helo_restrictions = reject\nsmtpd_sender_restrictions = reject\n",
    "smtpd_delay_reject = no\nsmtpd_client_restrictions = reject\n",
    "smtpd_delay_reject = no\nsmtpd_sender_restrictions = reject_non_fqdn_sender\n",
    "smtpd_data_restrictions = reject_unauth_pipelining\n",
    "smtpd_end_of_data_restrictions = reject\n",
]
POLICIES = [policy_from(text) for text in CONFIGS]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(CONFIGS))),
       st.sampled_from(["connect", "helo", "mail", "data", "end_of_data"]),
       st.sampled_from(["192.0.2.5", "127.0.0.1"]), st.sampled_from([None, "a", "a@example.net"]),
       st.sampled_from([None, "x", "mx.example.net"]), st.booleans(), st.booleans())
def test_a_skipped_stage_answers_nothing(index, stage, client, sender, helo, pipelined, discard):
    policy = POLICIES[index]
    if policy.needs(stage):
        return
    result = asyncio.run(getattr(policy, f"check_{stage}")(state(
        client_address=client, sender=sender, helo_name=helo, pipelined=pipelined, discard=discard,
        recipient="bob@example.net" if stage in ("data", "end_of_data") else None)))
    assert result.reply is None and not result.actions and not result.log


def test_needs_follows_the_configuration():
    quiet, strict = POLICIES[0], POLICIES[2]
    assert not quiet.needs("connect") and not quiet.needs("mail") and not quiet.needs("data")
    assert quiet.needs("rcpt")
    assert strict.needs("connect") and strict.needs("helo") and strict.needs("mail")
    assert POLICIES[4].needs("data") and not POLICIES[4].needs("end_of_data")
    assert POLICIES[5].needs("end_of_data")
