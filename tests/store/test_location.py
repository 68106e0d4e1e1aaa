"""mail_location resolution and the mail settings of dovecot.conf (roost.store.location),
checked against Dovecot 2.3's documented syntax and, for paths, `doveadm user`."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.auth.lookup import UserRecord
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_text
from roost.config.dovecot_settings import dovecot_settings
from roost.store import MailAccessDenied, open_user_store
from roost.store.location import MailSettings, resolve_location, split_location
from roost.store.maildir import MaildirUserStore

OPEN = MailSettings(first_valid_uid=0)


def user(name="alice@example.test", home="/home/alice", mail=None, uid="1000", gid="1000"):
    return UserRecord(name, uid, gid, home, mail)


@pytest.mark.parametrize("template, root, extra", [
    ("maildir:~/Maildir", "/home/alice/Maildir", {}),
    ("maildir:/var/vmail/%d/%n", "/var/vmail/example.test/alice", {}),
    ("maildir:/var/vmail/%d/%n/Maildir:LAYOUT=fs", "/var/vmail/example.test/alice/Maildir",
     {"layout": "fs"}),
    ("maildir:~/Maildir:INDEX=/var/index/%u:CONTROL=~/control", "/home/alice/Maildir",
     {"index": "/var/index/alice@example.test", "control": "/home/alice/control"}),
    ("maildir:~/Maildir:INDEX=MEMORY", "/home/alice/Maildir", {"index": "MEMORY"}),
    ("mbox:~/mail:INBOX=/var/mail/%n", "/home/alice/mail",
     {"driver": "mbox", "inbox": "/var/mail/alice"}),
    ("maildir:~/odd::name", "/home/alice/odd:name", {}),
    ("maildir:%h/M", "/home/alice/M", {}),
])
def test_locations(template, root, extra):
    location = resolve_location(user(mail=None), MailSettings(mail_location=template,
                                                              first_valid_uid=0))
    assert location.root == root
    for key, value in {"driver": "maildir", "layout": "maildir++" if "mbox" not in template
                       else "fs", **extra}.items():
        assert getattr(location, key) == value


def test_userdb_mail_field_wins_and_uid_rules():
    settings = MailSettings(mail_location="maildir:~/Maildir", first_valid_uid=500,
                            last_valid_uid=6000)
    location = resolve_location(user(mail="maildir:/srv/%n", uid="5000"), settings)
    assert location.root == "/srv/alice" and location.uid == 5000
    with pytest.raises(MailAccessDenied, match="UID 100 not permitted"):
        resolve_location(user(uid="100"), settings)
    with pytest.raises(MailAccessDenied, match="UID 7000 not permitted"):
        resolve_location(user(uid="7000"), settings)
    with pytest.raises(MailAccessDenied, match="Home directory not set"):
        resolve_location(user(home=None, uid="5000"), settings)
    with pytest.raises(MailAccessDenied):
        resolve_location(user(name="../../etc@x", uid="5000"),
                         MailSettings(mail_location="maildir:/var/vmail/%d/%n"))
    mail_uid = MailSettings(mail_location="maildir:~/M", mail_uid="5000", mail_gid="5000",
                            first_valid_uid=1000)
    assert resolve_location(user(uid=None, gid=None), mail_uid).uid == 5000


def test_split_location_options():
    assert split_location("maildir:~/M:LAYOUT=fs:UTF8") == ("maildir", "~/M",
                                                           {"LAYOUT": "fs", "UTF8": ""})
    assert split_location("/var/mail/x") == ("", "/var/mail/x", {})


def test_from_dovecot_settings(tmp_path):
    text = """
mail_location = maildir:~/Maildir:LAYOUT=fs
first_valid_uid = 1000
last_valid_uid = 2000
mail_uid = vmail
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox "Deleted Messages" {
    special_use = \\Trash
    auto = create
  }
}
plugin {
  quota_rule = *:storage=1G
}
mail_plugins = $mail_plugins quota
maildir_copy_with_hardlinks = no
mbox_lock_timeout = 30 secs
"""
    config = parse_dovecot_text(text, str(tmp_path / "dovecot.conf"), Diagnostics(), check=False)
    mail = MailSettings.from_dovecot(dovecot_settings(config, protocol="lmtp"))
    assert mail.mail_location == "maildir:~/Maildir:LAYOUT=fs"
    assert (mail.first_valid_uid, mail.last_valid_uid, mail.mail_uid) == (1000, 2000, "vmail")
    assert mail.separator == "/" and mail.quota_rule == "*:storage=1G"
    assert mail.maildir_copy_with_hardlinks is False and mail.mbox_lock_timeout == 30
    assert mail.mbox_dotlock_change_timeout == 120 and mail.mail_plugins.split() == ["quota"]
    assert [(m.name, m.special_use, m.auto) for m in mail.mailboxes] == [
        ("Sent", "\\Sent", "subscribe"), ("Deleted Messages", "\\Trash", "create")]


def test_open_user_store_maildir(tmp_path):
    store = open_user_store(user(home=str(tmp_path), uid=str(os.getuid())),
                            MailSettings(mail_location="maildir:~/Maildir", first_valid_uid=0))
    assert isinstance(store, MaildirUserStore) and store.separator == "."
    assert store.user == "alice@example.test"
    store.deliver("INBOX", __import__("io").BytesIO(b"Subject: x\n\nx\n"))
    assert (tmp_path / "Maildir" / "new").is_dir()


@pytest.mark.parametrize("location, layout_names", [
    ("maildir:~/Mail", ["INBOX", "a.b", "Ünï"]),
    ("maildir:/vm/%d/%n/Maildir:CONTROL=~/ctl:INDEX=~/idx", ["INBOX", "a.b"]),
    ("maildir:~/Mail:LAYOUT=fs:CONTROL=~/ctl:INDEX=~/idx", ["INBOX", "a/b", "Ünï"]),
    ("maildir:~/Mail:LAYOUT=fs:INBOX=~/inbox", ["INBOX", "x/y"]),
])
def test_paths_match_doveadm_mailbox_path(open_tmp, location, layout_names):
    """`doveadm mailbox path -t dir|control|index` names the same directories roost uses."""
    import subprocess

    from tests.conftest import require_tool

    doveadm = require_tool("doveadm")
    home = open_tmp / "home"
    conf = open_tmp / "dovecot.conf"
    fs = "LAYOUT=fs" in location
    conf.write_text(f"base_dir = {open_tmp}/run\nlog_path = {open_tmp}/log\n"
                    f"mail_location = {location}\nnamespace inbox {{\n  inbox = yes\n"
                    f"  separator = {'/' if fs else '.'}\n}}\n")
    uid = os.getuid() or 5000
    store = open_user_store(user("bob@example.test", str(home), uid=str(uid), gid=str(uid)),
                            MailSettings(mail_location=location, first_valid_uid=0,
                                         separator="/" if fs else "."))
    env = dict(os.environ, USER="bob@example.test", HOME=str(home))
    for name in layout_names:
        paths = store.layout.paths(name)
        for kind, mine in (("dir", paths.mail), ("control", paths.control),
                           ("index", paths.index)):
            out = subprocess.run([doveadm, "-c", str(conf), "-o", f"mail_uid={uid}",
                                  "-o", f"mail_gid={uid}",
                                  "mailbox", "path", "-t", kind, name],
                                 capture_output=True, text=True, env=env, timeout=30)
            assert out.returncode == 0, out.stderr
            assert out.stdout.strip() == mine, (name, kind)


def test_userdb_quota_rule_applies(tmp_path):
    """A userdb `quota_rule` extra field replaces the configured one (Dovecot per-user quota)."""
    import io

    from roost.store import QuotaExceeded

    record = UserRecord("alice", str(os.getuid()), str(os.getgid()), str(tmp_path), None,
                        {"quota_rule": "*:storage=1k"})
    store = open_user_store(record, MailSettings(mail_location="maildir:~/Maildir",
                                                 first_valid_uid=0, first_valid_gid=0,
                                                 plugin={"quota_rule": "*:storage=1G"}))
    assert store.quota_usage() == (0, 1024)
    with pytest.raises(QuotaExceeded):
        store.deliver("INBOX", io.BytesIO(b"x" * 2000))


def test_mbox_location_goes_to_the_mbox_backend(tmp_path):
    from roost.store.mbox import MboxUserStore

    store = open_user_store(user(home=str(tmp_path), uid=str(os.getuid()), gid=str(os.getgid())),
                            MailSettings(mail_location=f"mbox:~/mail:INBOX={tmp_path}/inbox",
                                         first_valid_uid=0, first_valid_gid=0))
    assert isinstance(store, MboxUserStore)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60), st.text(max_size=20))
def test_any_location_or_user_name_gives_a_location_or_a_store_error(template, name):
    """Garbage in mail_location or the user name: MailAccessDenied (a StoreError), never
    another exception, and never a relative root."""
    from roost.store import StoreError

    try:
        location = resolve_location(user(name=name or "x", mail=template or None),
                                    MailSettings(mail_location="maildir:~/Maildir",
                                                 first_valid_uid=0))
    except StoreError:
        return
    assert location.root.startswith("/") and location.driver in ("maildir", "mbox")


def test_quota_needs_the_quota_plugin_and_a_valid_rule(tmp_path):
    """As in Dovecot: quota_rule without `quota` in mail_plugins is not enforced; a bad
    rule is an internal (temporary) error, not a crash."""
    import io

    from roost.store import StoreError

    record = user(home=str(tmp_path), uid=str(os.getuid()), gid=str(os.getgid()))
    base = dict(mail_location="maildir:~/Maildir", first_valid_uid=0, first_valid_gid=0)
    store = open_user_store(record, MailSettings(**base, plugin={"quota_rule": "*:storage=1"},
                                                 mail_plugins=""))
    store.deliver("INBOX", io.BytesIO(b"x" * 5000))
    assert store.quota_usage()[1] is None
    broken = open_user_store(record, MailSettings(**base, plugin={"quota_rule": "*:storage=x"},
                                                  mail_plugins="quota"))
    with pytest.raises(StoreError, match="Internal error"):
        broken.deliver("INBOX", io.BytesIO(b"x"))
