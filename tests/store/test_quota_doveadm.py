"""Differential: the limits roost computes from quota_rule settings against `doveadm quota get`.

A private Dovecot (auth only) serves a passwd-file whose users carry `userdb_quota_rule`
extra fields over a configured `quota_rule`; `doveadm quota get -u USER` prints the STORAGE
limit (kilobytes, rounded up) and the MESSAGE limit, or an error for invalid rules. roost's
QuotaRule.from_settings must give the same limits and refuse the same rules.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from roost.store.quota import QuotaConfigError, QuotaRule
from tests.conftest import require_tool
from tests.support.dovecot import PASSWD_FILE_DBS, PrivateDovecot, quota_plugin

USERS = {
    "plain": "",
    "big": "userdb_quota_rule=*:storage=2G userdb_quota_rule2=*:messages=10",
    "kb": "userdb_quota_rule=*:storage=100",
    "bytes": "userdb_quota_rule=*:bytes=12345",
    "tiny": "userdb_quota_rule=*:storage=10b",
    "tera": "userdb_quota_rule=*:storage=3t",
    "two": "userdb_quota_rule=*:storage=1G:messages=5",
    "zero": "userdb_quota_rule=*:storage=0",
    "ignore": "userdb_quota_rule=*:ignore",
    "percent": "userdb_quota_rule=*:storage=50%",
    "plus": "userdb_quota_rule=*:storage=+10M",
    "minus": "userdb_quota_rule=*:storage=-100k",
}

CONF = """\
protocols =
mail_location = maildir:{base}/mail/%u
mail_uid = 65534
mail_gid = 65534
mail_plugins = quota
""" + PASSWD_FILE_DBS + quota_plugin("*:storage=1M", "Trash:storage=+100M")


def doveadm_limits(conf: str, user: str) -> tuple[str, str] | None:
    done = subprocess.run(["doveadm", "-c", conf, "quota", "get", "-u", user],
                          capture_output=True, text=True, timeout=30)
    storage = re.search(r"STORAGE\s+\d+\s+(\S+)", done.stdout)
    messages = re.search(r"MESSAGE\s+\d+\s+(\S+)", done.stdout)
    if "Failed to initialize quota" in done.stderr or not storage:
        return None
    return storage.group(1), messages.group(1)


def shown(limit: int | None, kilobytes: bool) -> str:
    if limit is None:
        return "-"
    return str(-(-limit // 1024)) if kilobytes else str(limit)


@pytest.fixture
def dovecot():
    require_tool("doveadm")
    instance = PrivateDovecot(CONF, prefix="roost-quota-")
    try:
        instance.write_users(USERS)
        instance.start()
        yield instance.conf
    finally:
        instance.stop()


def test_limits_match_doveadm_quota_get(dovecot):
    plugin = {"quota_rule": "*:storage=1M", "quota_rule2": "Trash:storage=+100M"}
    for user, extra in USERS.items():
        fields = dict(item.removeprefix("userdb_").split("=", 1) for item in extra.split())
        expected = doveadm_limits(dovecot, user)
        try:
            quota = QuotaRule.from_settings(plugin, fields)
        except QuotaConfigError:
            assert expected is None, (user, expected)
            continue
        assert expected == (shown(quota.storage_limit, True),
                            shown(quota.message_limit, False)), user
