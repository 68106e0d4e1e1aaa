"""local(8): aliases (seed 003/004 lists and chains), mbox spool and Maildir delivery,
commands with sysexits, files, .forward, loops, unknown users, luser_relay."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile

import pytest

from roost.config.diagnostics import Diagnostics
from roost.delivery import Recipient
from roost.delivery import local as local_agent
from roost.delivery.local import User
from roost.tables import clear_cache
from roost.tables.indexed import build
from tests.conftest import RecordingLog
from tests.delivery.helpers import MESSAGE, request, settings_of


@pytest.fixture
def world():
    """A directory every user can reach (commands and files run as default_privs when root)."""
    path = tempfile.mkdtemp(prefix="roost-local-")
    os.chmod(path, 0o777)
    clear_cache()
    yield path
    clear_cache()
    shutil.rmtree(path, ignore_errors=True)


class Forwards:
    def __init__(self):
        self.calls = []

    async def __call__(self, *, sender, recipients, original, prepend, request):
        self.calls.append((sender, tuple(recipients), original, prepend))
        return f"FWD{len(self.calls)}"


def setup(world, aliases="", extra=""):
    spool = os.path.join(world, "spool")
    os.makedirs(spool, exist_ok=True)
    alias_file = os.path.join(world, "aliases")
    with open(alias_file, "w") as handle:
        handle.write(aliases)
    assert build("hash", alias_file, Diagnostics(), aliases=True)
    settings = settings_of(f"mydestination = linuxprobe.com, localhost\nmyorigin = linuxprobe.com\n"
                           f"alias_maps = hash:{alias_file}\nmail_spool_directory = {spool}\n"
                           f"default_privs = nobody\n{extra}", directory=world)
    me = os.geteuid()
    home = os.path.join(world, "home")
    users = {name: User(name, me, os.getegid(), os.path.join(home, name))
             for name in ("boss", "root", "std001", "std002", "std003")}
    return settings, spool, users


def run(req, settings, users, forwarder=None):
    log = RecordingLog()
    results = asyncio.run(local_agent.deliver(req, settings, log=log, users=users.get,
                                              forwarder=forwarder or Forwards()))
    return results, [text for _, text in log.lines]


def test_mbox_spool_delivery_format(world):
    settings, spool, users = setup(world)
    results, lines = run(request("boss@linuxprobe.com", sender="root@linuxprobe.com", transport="local"),
                         settings, users)
    assert results[0].status == "sent" and results[0].text == "delivered to mailbox"
    data = open(os.path.join(spool, "boss"), "rb").read()
    first, rest = data.split(b"\n", 1)
    assert first.startswith(b"From root@linuxprobe.com  ") and len(first.split()) == 7
    assert rest.startswith(b"Return-Path: <root@linuxprobe.com>\nX-Original-To: boss@linuxprobe.com\n"
                           b"Delivered-To: boss@linuxprobe.com\nFrom: Alice")
    assert b"\r" not in data and data.endswith(b".leading dot\n\n")
    assert lines[0].startswith("4ABCDEF12: to=<boss@linuxprobe.com>, relay=local, delay=")
    assert lines[0].endswith(", dsn=2.0.0, status=sent (delivered to mailbox)")
    run(request("boss@linuxprobe.com", transport="local",
                message=b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n"), settings, users)
    second = open(os.path.join(spool, "boss"), "rb").read()[len(data):]
    assert b"\n>From here\n>From there\n\n" in second     # RFC 4155 quoting of the new message


def test_seed_aliases_lists_and_chains(world):
    aliases = ("mailer-daemon: postmaster\npostmaster: root\nzhangsan: root\n"
               "student2011: std001,std002,std003\n")
    settings, spool, users = setup(world, aliases)
    results, lines = run(request("student2011@linuxprobe.com", "mailer-daemon@linuxprobe.com",
                                 "zhangsan@linuxprobe.com", transport="local"), settings, users)
    assert [r.status for r in results] == ["sent"] * 3
    assert [r.recipient.address for r in results[0].expanded] == [f"std00{i}@linuxprobe.com" for i in (1, 2, 3)]
    for name in ("std001", "std002", "std003", "root"):
        assert os.path.exists(os.path.join(spool, name)), name
    root_box = open(os.path.join(spool, "root"), "rb").read()
    assert root_box.startswith(b"From alice@example.org  ") and root_box.count(b"\n\nFrom alice@example.org  ") == 1
    # Delivered-To names the recipient as it reached local(8), before alias expansion (as Postfix)
    assert b"Delivered-To: mailer-daemon@linuxprobe.com" in root_box and b"Delivered-To: zhangsan@linuxprobe.com" in root_box
    assert any(line.startswith("4ABCDEF12: to=<root@linuxprobe.com>, orig_to=<mailer-daemon@linuxprobe.com>, "
                               "relay=local") for line in lines)
    assert sum("orig_to=<student2011@linuxprobe.com>" in line for line in lines) == 3


def test_maildir_home_mailbox_and_extension(world):
    settings, spool, users = setup(world, extra="home_mailbox = Maildir/\nrecipient_delimiter = +\n")
    results, lines = run(request(Recipient("boss+news@linuxprobe.com", original="Boss+News@linuxprobe.com"),
                                 transport="local"), settings, users)
    assert results[0].status == "sent" and results[0].text == "delivered to maildir"
    new = os.path.join(users["boss"].home, "Maildir", "new")
    names = os.listdir(new)
    assert len(names) == 1 and ",S=" in names[0]
    assert os.listdir(os.path.join(users["boss"].home, "Maildir", "tmp")) == []
    content = open(os.path.join(new, names[0]), "rb").read()
    assert content.startswith(b"Return-Path: <alice@example.org>\nX-Original-To: Boss+News@linuxprobe.com\n"
                              b"Delivered-To: boss+news@linuxprobe.com\n")
    assert int(names[0].rsplit("S=", 1)[1]) == len(content)
    assert "orig_to=<Boss+News@linuxprobe.com>" in lines[0]


def test_commands_sysexits_and_privileges(world):
    out = os.path.join(world, "out")
    aliases = (f'ok: "|/bin/sh -c \'id -u > {out}; cat >> {out}\'"\n'
               "tempfail: \"|/bin/sh -c 'exit 75'\"\nnouser: \"|/bin/sh -c 'exit 67'\"\n"
               "plain: \"|/bin/sh -c 'echo oops; exit 1'\"\n")
    settings, spool, users = setup(world, aliases)
    results, lines = run(request("ok@linuxprobe.com", "tempfail@linuxprobe.com", "nouser@linuxprobe.com",
                                 "plain@linuxprobe.com", transport="local"), settings, users)
    assert [(r.status, r.dsn) for r in results] == [("sent", "2.0.0"), ("deferred", "4.3.0"),
                                                    ("bounced", "5.1.1"), ("bounced", "5.3.0")]
    assert results[1].text == "temporary failure"
    assert results[2].text == "user unknown"
    assert results[3].text.startswith('Command died with status 1: "/bin/sh -c ') and \
        results[3].text.endswith(". Command output: oops ")
    written = open(out, "rb").read()
    uid_line, message = written.split(b"\n", 1)
    expected = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()
    assert int(uid_line) == expected          # aliases owned by root run as default_privs
    assert message.startswith(b"From alice@example.org  ") and b"Delivered-To: ok@linuxprobe.com" in message
    assert "status=sent (delivered to command: /bin/sh -c" in lines[0]


def test_command_time_limit(world):
    settings, spool, users = setup(world, 'slow: "|/bin/sleep 30"\n', extra="command_time_limit = 1s\n")
    results, _ = run(request("slow@linuxprobe.com", transport="local"), settings, users)
    assert results[0].status == "bounced" and results[0].text == 'Command time limit exceeded: "/bin/sleep 30"'


def test_file_target_include_and_restrictions(world):
    target = os.path.join(world, "archive")
    include = os.path.join(world, "list.inc")
    with open(include, "w") as handle:
        handle.write("# members\nstd001\nstd002\n")
    aliases = f"archive: {target}\nlist: :include:{include}\n"
    settings, spool, users = setup(world, aliases)
    results, lines = run(request("archive@linuxprobe.com", "list@linuxprobe.com", transport="local"), settings, users)
    assert results[0].status == "sent" and results[0].text == f"delivered to file: {target}"
    assert open(target, "rb").read().startswith(b"From alice@example.org  ")
    assert results[1].status == "sent" and len(results[1].expanded) == 2
    restricted, _, _ = setup(world, aliases, extra="allow_mail_to_files = forward\n")
    clear_cache()
    results, _ = run(request("archive@linuxprobe.com", transport="local"), restricted, users)
    assert results[0].status == "bounced" and results[0].dsn == "5.7.1"


def test_loop_unknown_user_luser_relay_and_forward(world):
    settings, spool, users = setup(world, "remote: someone@example.net\n")
    looped = b"Delivered-To: boss@linuxprobe.com\r\n" + MESSAGE
    results, lines = run(request("boss@linuxprobe.com", "nosuch@linuxprobe.com", transport="local",
                                 message=looped), settings, users)
    assert (results[0].status, results[0].dsn, results[0].text) == (
        "bounced", "5.4.6", "mail forwarding loop for boss@linuxprobe.com")
    assert (results[1].status, results[1].dsn, results[1].text) == ("bounced", "5.1.1", 'unknown user: "nosuch"')
    forwards = Forwards()
    results, lines = run(request("remote@linuxprobe.com", transport="local"), settings, users, forwards)
    assert results[0].status == "sent" and results[0].text == "forwarded as FWD1"
    assert forwards.calls[0][1] == ("someone@example.net",)
    assert forwards.calls[0][3] == b"Delivered-To: remote@linuxprobe.com\r\n"
    relay, _, _ = setup(world, extra="luser_relay = admin+$user@example.net\n")
    forwards = Forwards()
    results, _ = run(request("nosuch@linuxprobe.com", transport="local"), relay, users, forwards)
    assert results[0].status == "sent" and forwards.calls[0][1] == ("admin+nosuch@example.net",)


def test_dot_forward_keeps_a_copy_and_forwards(world):
    settings, spool, users = setup(world)
    home = users["boss"].home
    os.makedirs(home)
    with open(os.path.join(home, ".forward"), "w") as handle:
        handle.write("\\boss, boss@elsewhere.example\n")
    forwards = Forwards()
    results, lines = run(request("boss@linuxprobe.com", transport="local"), settings, users, forwards)
    assert results[0].status == "sent"
    assert sorted(r.text for r in results[0].expanded) == ["delivered to mailbox", "forwarded as FWD1"]
    assert os.path.exists(os.path.join(spool, "boss"))
    assert forwards.calls[0][1] == ("boss@elsewhere.example",)


def test_home_mailboxes_written_as_the_user(world):
    nobody = pwd.getpwnam("nobody")
    uid, gid = (nobody.pw_uid, nobody.pw_gid) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    home = os.path.join(world, "home-boss")
    os.makedirs(home)
    os.chown(home, uid, gid)
    users = {"boss": User("boss", uid, gid, home)}
    maildir, _, _ = setup(world, extra="home_mailbox = Maildir/\n")
    results, _ = run(request("boss@linuxprobe.com", transport="local"), maildir, users)
    assert results[0].text == "delivered to maildir"
    new = os.path.join(home, "Maildir", "new")
    assert os.stat(new).st_uid == uid and os.stat(os.path.join(new, os.listdir(new)[0])).st_uid == uid
    mbox, _, _ = setup(world, extra="home_mailbox = Mailbox\n")
    results, _ = run(request("boss@linuxprobe.com", transport="local"), mbox, users)
    assert results[0].text == "delivered to mailbox"
    assert os.stat(os.path.join(home, "Mailbox")).st_uid == uid
    spool_settings, spool, _ = setup(world)
    run(request("boss@linuxprobe.com", transport="local"), spool_settings, users)
    assert os.stat(os.path.join(spool, "boss")).st_uid == uid       # spool file created for the user
    assert oct(os.stat(os.path.join(spool, "boss")).st_mode & 0o777) == "0o600"


def test_mailbox_command_gets_the_user_environment(world):
    out = os.path.join(world, "procmail-out")
    settings, _, users = setup(world, extra=f"mailbox_command = /bin/sh -c 'env > {out}'\n"
                                            "recipient_delimiter = +\n")
    results, lines = run(request(Recipient("boss+lists@linuxprobe.com", original="boss+lists@linuxprobe.com"),
                                 transport="local"), settings, users)
    assert results[0].status == "sent" and results[0].text.startswith("delivered to command: /bin/sh -c")
    env = dict(line.split("=", 1) for line in open(out).read().splitlines() if "=" in line)
    assert env["RECIPIENT"] == "boss+lists@linuxprobe.com" and env["EXTENSION"] == "lists"
    assert env["USER"] == "boss" and env["HOME"] == users["boss"].home and env["SENDER"] == "alice@example.org"
    assert env["LOCAL"] == "boss+lists" and env["DOMAIN"] == "linuxprobe.com"


def test_mailbox_command_maps_and_forward_ownership(world):
    out = os.path.join(world, "per-user")
    settings, spool, users = setup(world, extra=f"mailbox_command_maps = inline:{{ {{boss=/bin/sh -c 'cat > {out}'}} }}\n")
    results, _ = run(request("boss@linuxprobe.com", transport="local"), settings, users)
    assert results[0].text.startswith("delivered to command:") and os.path.exists(out)
    plain, spool, users = setup(world)
    home = users["root"].home
    os.makedirs(home, exist_ok=True)
    forward = os.path.join(home, ".forward")
    with open(forward, "w") as handle:
        handle.write("elsewhere@example.net\n")
    os.chmod(forward, 0o666)            # writable by anyone: ignored, as local(8) does
    forwards = Forwards()
    results, _ = run(request("root@linuxprobe.com", transport="local"), plain, users, forwards)
    assert results[0].text == "delivered to mailbox" and forwards.calls == []
    os.chmod(forward, 0o644)
    results, _ = run(request("root@linuxprobe.com", transport="local"), plain, users, forwards)
    assert results[0].text == "forwarded as FWD1"


def test_default_alias_maps_without_nis(world):
    settings, spool, users = setup(world)
    aliases = os.path.join(world, "aliases")
    default = settings_of(f"mydestination = linuxprobe.com\nalias_maps = hash:{aliases}, nis:mail.aliases\n"
                          f"mail_spool_directory = {spool}\n", directory=world)
    results, _ = run(request("boss@linuxprobe.com", transport="local"), default, users)
    assert results[0].status == "sent"
    missing = settings_of(f"mydestination = linuxprobe.com\nalias_maps = hash:{world}/nonexistent\n"
                          f"mail_spool_directory = {spool}\n", directory=world)
    results, _ = run(request("boss@linuxprobe.com", transport="local"), missing, users)
    assert results[0].status == "deferred" and results[0].text.startswith("alias database unavailable")


def test_owner_alias_becomes_the_sender_of_the_expansion(world):
    settings, spool, users = setup(world, "list: std001, far@example.net\nowner-list: boss\n")
    forwards = Forwards()
    results, _ = run(request("list@linuxprobe.com", transport="local"), settings, users, forwards)
    assert results[0].status == "sent"
    assert open(os.path.join(spool, "std001"), "rb").read().split(b"\n")[0].startswith(b"From owner-list@linuxprobe.com ")
    assert b"Return-Path: <owner-list@linuxprobe.com>" in open(os.path.join(spool, "std001"), "rb").read()
    assert forwards.calls[0][0] == "owner-list@linuxprobe.com"
    plain, _ = run(request("boss@linuxprobe.com", transport="local"), settings, users)
    assert b"Return-Path: <alice@example.org>" in open(os.path.join(spool, "boss"), "rb").read()
