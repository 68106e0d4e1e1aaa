"""Real IMAP clients against a whole roost server: imapclient (PyPI), mbsync (isync) two-way
sync of several folders with flag changes on both sides and a re-sync without re-download,
and mutt (driven in tmux) opening INBOX and reading a message.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pytest

from tests.conftest import free_port_base, require_tool, run_roost
from tests.net.test_imap_server import ImapRoost, PASSWORD, USER, _wait, message


@pytest.fixture(scope="module")
def roost(tmp_path_factory):
    inst = ImapRoost(str(tmp_path_factory.mktemp("imap-clients")), free_port_base())
    try:
        init = run_roost("init", inst.dir, "--port-base", str(inst.base), "--user",
                         f"{USER}:{PASSWORD}")
        assert init.returncode == 0, init.stderr
        with open(os.path.join(inst.dir, "dovecot.conf"), "a", encoding="utf-8") as conf:
            conf.write("auth_failure_delay = 0\n")
        inst.start()
        for number in (1, 2, 3):
            inst.deliver(f"{1700000000 + number}.M{number}P1.test", message(number))
        yield inst
    finally:
        inst.stop()


def test_imapclient(roost):
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=roost.imap, ssl=False, timeout=30) as client:
        client.login(USER, PASSWORD)
        assert b"MOVE" in client.capabilities() and b"UIDPLUS" in client.capabilities()
        info = client.select_folder("INBOX")
        assert info[b"EXISTS"] >= 3
        uids = client.search(["SUBJECT", "message 2"])
        assert len(uids) == 1
        data = client.fetch(uids, ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODY.PEEK[TEXT]"])
        envelope = data[uids[0]][b"ENVELOPE"]
        assert envelope.subject == b"message 2"
        assert envelope.from_[0].mailbox == b"sender" and envelope.from_[0].host == b"example.test"
        assert data[uids[0]][b"BODY[TEXT]"] == b"body of 2\r\n"
        client.add_flags(uids, [b"\\Flagged", b"work"])
        assert set(client.get_flags(uids)[uids[0]]) >= {b"\\Flagged", b"work"}
        client.create_folder("Projects")
        client.move(uids, "Projects")
        assert client.search(["SUBJECT", "message 2"]) == []
        client.select_folder("Projects")
        moved = client.search()
        assert len(moved) == 1
        assert set(client.get_flags(moved)[moved[0]]) >= {b"\\Flagged", b"work"}
        # IDLE: a delivery shows up as EXISTS
        client.select_folder("INBOX")
        client.idle()
        roost.deliver("1700000050.M50P1.test", message(50))
        responses = client.idle_check(timeout=5)
        client.idle_done()
        assert any(item[1] == b"EXISTS" for item in responses), responses


def _mbsync(config: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mbsync", "-c", config, "-a"], capture_output=True, text=True,
                          timeout=120)


def _maildir_messages(path: str) -> list[str]:
    names = []
    for sub in ("cur", "new"):
        directory = os.path.join(path, sub)
        if os.path.isdir(directory):
            names += os.listdir(directory)
    return sorted(names)


def test_mbsync_two_way(roost, tmp_path):
    require_tool("mbsync")
    from imapclient import IMAPClient

    local = tmp_path / "local"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(f"""IMAPAccount roost
Host 127.0.0.1
Port {roost.imap}
User {USER}
Pass {PASSWORD}
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account roost

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel roost
Far :remote:
Near :local:
Patterns INBOX Sync
Create Both
Expunge Both
SyncState *
""")
    with IMAPClient("127.0.0.1", port=roost.imap, ssl=False, timeout=30) as client:
        client.login(USER, PASSWORD)
        if not client.folder_exists("Sync"):
            client.create_folder("Sync")
        client.append("Sync", message(70).replace(b"\n", b"\r\n"), flags=[b"\\Seen"])
        remote_inbox = len(client.select_folder("INBOX", readonly=True) and client.search())
    first = _mbsync(str(config))
    assert first.returncode == 0, first.stderr
    inbox = _maildir_messages(str(local / "INBOX"))
    assert len(inbox) == remote_inbox
    assert len(_maildir_messages(str(local / "Sync"))) == 1
    # a flag set locally goes up, a flag set remotely comes down
    name = _maildir_messages(str(local / "Sync"))[0]
    directory = "cur" if os.path.exists(local / "Sync" / "cur" / name) else "new"
    base, _, info = name.partition(":2,")
    os.makedirs(local / "Sync" / "cur", exist_ok=True)
    os.rename(local / "Sync" / directory / name, local / "Sync" / "cur" / f"{base}:2,FS")
    with IMAPClient("127.0.0.1", port=roost.imap, ssl=False, timeout=30) as client:
        client.login(USER, PASSWORD)
        client.select_folder("INBOX")
        first_uid = client.search()[0]
        client.add_flags([first_uid], [b"\\Answered"])
    second = _mbsync(str(config))
    assert second.returncode == 0, second.stderr
    with IMAPClient("127.0.0.1", port=roost.imap, ssl=False, timeout=30) as client:
        client.login(USER, PASSWORD)
        client.select_folder("Sync", readonly=True)
        flags = client.get_flags(client.search())
        assert any(b"\\Flagged" in f for f in flags.values()), flags
    local_inbox = _maildir_messages(str(local / "INBOX"))
    assert any(re.search(r":2,[A-Z]*R", n) for n in local_inbox), local_inbox
    # nothing downloaded twice
    assert len(local_inbox) == remote_inbox
    third = _mbsync(str(config))
    assert third.returncode == 0 and len(_maildir_messages(str(local / "INBOX"))) == remote_inbox


def test_mutt_reads_a_message(roost, tmp_path):
    require_tool("mutt")
    require_tool("tmux")
    muttrc = tmp_path / "muttrc"
    muttrc.write_text(f"""set folder="imap://{USER.replace('@', '%40')}@127.0.0.1:{roost.imap}/"
set spoolfile="+INBOX"
set imap_pass="{PASSWORD}"
set ssl_starttls=no
set ssl_force_tls=no
set imap_authenticators="login"
set header_cache=""
set message_cachedir=""
set sort=date
set pager_stop=yes
set sleep_time=0
set mail_check=60
set timeout=0
""")
    session = f"roost-mutt-{os.getpid()}"
    env = dict(os.environ, HOME=str(tmp_path), TERM="xterm")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "50",
                    f"mutt -n -F {muttrc}"], env=env, check=True, timeout=30)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True, timeout=10).stdout

        assert _wait(lambda: "message 1" in screen(), 20), screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], timeout=10)
        assert _wait(lambda: "body of 1" in screen(), 20), screen()
        subprocess.run(["tmux", "send-keys", "-t", session, "q", "q"], timeout=10)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)
