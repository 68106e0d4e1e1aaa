"""mailbox_size_limit and virtual_mailbox_limit below message_size_limit are reported at load
time (Postfix's local(8) and virtual(8) refuse to run with that configuration)."""

from __future__ import annotations

import pytest

from roost.config.load import load_config


def limit_warnings(tmp_path, main_cf: str) -> list[str]:
    (tmp_path / "main.cf").write_text(main_cf)
    (tmp_path / "master.cf").write_text("")
    config = load_config(str(tmp_path))
    return [str(d) for d in config.diagnostics.items if "is smaller than message_size_limit" in d.message]


def test_the_classic_raise_of_message_size_limit_above_50_mb_is_reported_where_it_was_made(tmp_path):
    found = limit_warnings(tmp_path, "mydestination = example.test\nmessage_size_limit = 52428800\n")
    assert found == [f"warning: {tmp_path}/main.cf, line 2: mailbox_size_limit (51200000) is smaller than "
                     "message_size_limit (52428800): Postfix's local(8) refuses to run with this "
                     "configuration; roost delivers and bounces each message larger than mailbox_size_limit"]


def test_virtual_limit_is_reported_at_its_own_line_when_virtual_delivery_is_used(tmp_path):
    found = limit_warnings(tmp_path, "mydestination =\nvirtual_mailbox_domains = example.test\n"
                                     "virtual_mailbox_limit = 1000\n")
    assert len(found) == 1 and ", line 3: virtual_mailbox_limit (1000) is smaller than message_size_limit " \
        "(10240000): Postfix's virtual(8)" in found[0]


@pytest.mark.parametrize("main_cf", [
    "mydestination = example.test\n",  # the defaults agree
    "mydestination = example.test\nmessage_size_limit = 52428800\nmailbox_size_limit = 0\n",  # 0: no limit
    "mydestination = example.test\nmessage_size_limit = 0\n",  # no message limit at all
    "mydestination = example.test\nmessage_size_limit = 52428800\nmailbox_size_limit = 52428800\n",  # equal
    "mydestination =\nmessage_size_limit = 52428800\n",  # local(8) unused; virtual(8) unused
])
def test_consistent_or_unused_limits_say_nothing(tmp_path, main_cf):
    assert limit_warnings(tmp_path, main_cf) == []
