"""roost.store.quota: Dovecot's quota_rule syntax, userdb overrides, grace, and the check."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from roost.store.api import QuotaExceeded
from roost.store.quota import QuotaConfigError, QuotaRule, parse_rule


def rule(*pairs, **extra) -> QuotaRule:
    return QuotaRule.from_settings(dict(pairs), extra or None)


def test_units_and_defaults():
    assert rule(("quota_rule", "*:storage=100")).storage_limit == 100 * 1024  # kilobytes
    assert rule(("quota_rule", "*:storage=10b")).storage_limit == 10
    assert rule(("quota_rule", "*:storage=2M")).storage_limit == 2 * 1024 ** 2
    assert rule(("quota_rule", "*:storage=3t")).storage_limit == 3 * 1024 ** 4
    assert rule(("quota_rule", "*:bytes=12345")).storage_limit == 12345
    assert rule(("quota_rule", "*:storage=0")).storage_limit is None
    assert rule(("quota_rule", "*:ignore")).storage_limit is None
    both = rule(("quota_rule", "*:storage=1G:messages=5"))
    assert (both.storage_limit, both.message_limit) == (1024 ** 3, 5)
    assert QuotaRule.from_settings({}).unlimited


def test_userdb_fields_replace_configured_rules_by_name():
    combined = rule(("quota_rule", "*:storage=1M"), ("quota_rule2", "Trash:storage=+100M"),
                    quota_rule="*:storage=2G", quota_rule2="*:messages=10")
    assert combined.storage_limit == 2 * 1024 ** 3 and combined.message_limit == 10
    kept = rule(("quota_rule", "*:storage=1M"), ("quota_rule2", "Trash:storage=+100M"))
    assert kept.limits_for("Trash") == (101 * 1024 ** 2, None)
    assert kept.limits_for("INBOX") == (1024 ** 2, None)


def test_mailbox_rules_relative_and_ignore():
    quota = rule(("quota_rule", "*:storage=1M"), ("quota_rule2", "Trash:storage=50%"),
                 ("quota_rule3", "Spam:ignore"), ("quota_rule4", "Arch*:storage=25%"))
    assert quota.limits_for("Trash")[0] == 512 * 1024
    assert quota.limits_for("Spam") == (None, None)
    assert quota.limits_for("Archive/2024")[0] == 256 * 1024
    quota.check(10 ** 9, 10 ** 6, mailbox="Spam")


@pytest.mark.parametrize("text, message", [
    ("*:storage=+10M", "Rule limit cannot have '+'"),
    ("*:storage=-100k", "Bytes limit can't be negative"),
    ("*:storage=1X", "Unknown unit"),
    ("*:frobs=1", "Unknown rule limit name"),
    ("nocolon", "Missing ':'"),
])
def test_invalid_rules_use_dovecots_words(text, message):
    with pytest.raises(QuotaConfigError, match=message.replace("+", r"\+")):
        parse_rule(text)


def test_check_with_grace_only_for_deliveries():
    quota = rule(("quota_rule", "*:storage=100k"))
    quota.check(0, 100 * 1024)
    quota.check(50 * 1024, 55 * 1024)  # ends 5k over: the 10% grace lets the last mail in
    with pytest.raises(QuotaExceeded) as caught:
        quota.check(50 * 1024, 55 * 1024, delivery=False)  # IMAP APPEND: no grace
    assert (caught.value.used, caught.value.limit) == (50 * 1024, 100 * 1024)
    assert str(caught.value) == "Quota exceeded (mailbox for user is full)"
    with pytest.raises(QuotaExceeded):
        quota.check(101 * 1024, 1)  # already over: nothing more
    with pytest.raises(QuotaExceeded):
        quota.check(0, 111 * 1024)  # beyond the grace


def test_grace_setting_and_message_limit():
    quota = rule(("quota_rule", "*:storage=100k:messages=2"), ("quota_grace", "0"),
                 ("quota_exceeded_message", "Mailbox full, sorry"))
    with pytest.raises(QuotaExceeded, match="Mailbox full, sorry"):
        quota.check(100 * 1024, 1)
    quota.check(0, 1, used_messages=1)
    with pytest.raises(QuotaExceeded):
        quota.check(0, 1, used_messages=2)
    assert rule(("quota_rule", "*:storage=100k"), ("quota_grace", "1k")).grace_bytes(10) == 1024


def test_no_quota_plugin_means_no_quota():
    quota = QuotaRule.from_settings({"quota_rule": "*:storage=1k"}, None, mail_plugins="zlib")
    assert quota.unlimited
    assert not QuotaRule.from_settings({"quota_rule": "*:storage=1k"}, None,
                                       mail_plugins="zlib quota").unlimited


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_garbage_rules_raise_only_config_errors(text):
    try:
        parse_rule(text)
    except QuotaConfigError:
        pass
