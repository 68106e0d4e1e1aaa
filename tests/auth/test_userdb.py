"""userdbs: static templates, passwd-file fields, configuration errors."""

from __future__ import annotations

import grp
import pwd

from roost.auth.drivers.passwd_file import PasswdFileUserdb
from roost.auth.drivers.static import StaticUserdb
from roost.auth.passdb import AuthContext
from roost.auth.userdb import UserdbStatus, create_userdb
from roost.config.diagnostics import Diagnostics


def userdb_for(driver: str, args: str):
    diags = Diagnostics()
    userdb = create_userdb(driver, args, "dovecot.conf", 1, diags)
    assert userdb is not None and not diags.items, diags.items
    return userdb


def test_static_userdb_expands_per_user():
    userdb = userdb_for("static", "uid=5000 gid=5000 home=/var/vmail/%d/%n "
                                  "mail=maildir:~/Maildir quota_rule=*:storage=%{service}")
    assert isinstance(userdb, StaticUserdb) and userdb.needs_passdb_check
    result = userdb.lookup(AuthContext("bob@abc.mail", "pop3"))
    assert result.status is UserdbStatus.OK
    assert result.fields == {"uid": "5000", "gid": "5000", "home": "/var/vmail/abc.mail/bob",
                             "mail": "maildir:~/Maildir", "quota_rule": "*:storage=pop3"}


def test_static_userdb_resolves_names_and_allow_all_users():
    root_group = grp.getgrgid(0).gr_name
    userdb = userdb_for("static", f"uid=root gid={root_group} allow_all_users=yes")
    assert not userdb.needs_passdb_check
    assert userdb.lookup(AuthContext("x")).fields == {"uid": "0", "gid": "0"}
    assert pwd.getpwnam("root").pw_uid == 0


def test_static_userdb_refuses_path_escaping_users():
    userdb = userdb_for("static", "uid=1 gid=1 home=/var/vmail/%u allow_all_users=yes")
    for user in ("../etc", "a/b", "..", ""):
        assert userdb.lookup(AuthContext(user)).status is UserdbStatus.UNKNOWN_USER


def test_static_userdb_configuration_errors():
    diags = Diagnostics()
    assert create_userdb("static", "uid=nosuchuser-roost gid=1 junk home=%z", "d.conf", 4,
                         diags) is None
    assert create_userdb("ldap", "x", "d.conf", 5, diags) is None
    assert [str(d) for d in diags.items] == [
        "fatal: d.conf, line 4: userdb static: uid: unknown user 'nosuchuser-roost'",
        "fatal: d.conf, line 4: userdb static: 'junk' is not key=value",
        "fatal: d.conf, line 4: userdb static: home=%z: Unknown variable '%z'",
        "fatal: d.conf, line 5: userdb driver 'ldap' is not supported by roost "
        "(supported: passwd-file, passwd, static, prefetch)",
    ]


def test_passwd_file_userdb_fields(tmp_path):
    users = tmp_path / "users"
    # extra fields: userdb_-prefixed ones are the userdb's; others (foo=bar) are passdb fields
    users.write_text("bob@abc.mail:{PLAIN}x:1000:1001::/home/%n::userdb_mail=maildir:~/M "
                     "userdb_quota_rule=*:storage=1G foo=bar\n"
                     "nohome@abc.mail:{PLAIN}x:1002:1002::::\n"
                     "bad@abc.mail:{PLAIN}x::::/h/%z::\n")
    userdb = userdb_for("passwd-file", str(users))
    assert isinstance(userdb, PasswdFileUserdb)
    bob = userdb.lookup(AuthContext("bob@abc.mail"))
    assert bob.status is UserdbStatus.OK
    assert bob.fields == {"uid": "1000", "gid": "1001", "home": "/home/bob",
                          "mail": "maildir:~/M", "quota_rule": "*:storage=1G"}
    assert userdb.lookup(AuthContext("nohome@abc.mail")).fields == {"uid": "1002", "gid": "1002"}
    assert userdb.lookup(AuthContext("x@abc.mail")).status is UserdbStatus.UNKNOWN_USER
    bad = userdb.lookup(AuthContext("bad@abc.mail", remote_ip="10.0.0.1"))
    assert bad.status is UserdbStatus.INTERNAL_FAILURE
    assert bad.log == (("error", "passwd-file(bad@abc.mail,10.0.0.1): Unknown variable '%z'"),)
    missing = userdb_for("passwd-file", str(tmp_path / "absent"))
    assert missing.lookup(AuthContext("bob")).status is UserdbStatus.INTERNAL_FAILURE
