"""QRESYNC (RFC 7162 §3.2) against Debian's Dovecot 2.3.19: the same scripted sessions give the
same VANISHED UIDs and the same changed messages and flags, modulo MODSEQ numbering.

Each server gets its own user (alice: Dovecot, bob: roost) and the same APPENDs, so UIDs line
up. A "client" remembers UIDVALIDITY and HIGHESTMODSEQ per server, another session changes
flags, expunges (EXPUNGE, UID EXPUNGE, MOVE, CLOSE) or a file is unlinked from cur/ by another
program, and the client comes back with SELECT/EXAMINE (QRESYNC (...)) (with and without
known-uids and seq-match-data), UID FETCH (CHANGEDSINCE m VANISHED), or stays selected and
gets `* VANISHED` on NOOP — also after both servers restart. Compared: the set of UIDs in
VANISHED (EARLIER), in VANISHED, and {uid: flags} of the FETCH responses (without \\Recent,
which depends on which session saw a message first). MODSEQ values differ between servers;
the ordering rules are checked instead: every reported MODSEQ is above the client's, and
VANISHED (EARLIER) precedes the FETCH responses (RFC 7162 §3.2.5.2 example, Dovecot's order).

Then Python's imaplib keeps a local cache, disconnects, and resynchronises with QRESYNC; the
cache must equal what imapclient fetches afresh — on both servers.
"""

from __future__ import annotations

import imaplib
import re
from pathlib import Path

import pytest

from tests.interop.imap_pair import USERS, both, imap_pair
from tests.interop.test_imap_dovecot_differential import PASSWORD, login

_MODSEQ = re.compile(rb"MODSEQ \((\d+)\)")
_UID = re.compile(rb"UID (\d+)")
_FLAGS = re.compile(rb"FLAGS \(([^)]*)\)")


@pytest.fixture(scope="module")
def servers():
    with imap_pair("roost-qresync-") as pair:
        yield pair


# ---- helpers -----------------------------------------------------------------------------

def uid_set(text: bytes) -> set[int]:
    out: set[int] = set()
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        a, b = int(low), int(high or low)
        out.update(range(min(a, b), max(a, b) + 1))
    return out


def summary(data: bytes, since: int | None = None) -> dict:
    """VANISHED (EARLIER) / VANISHED UIDs and {uid: flags} of FETCH responses; asserts the
    ordering rules on the way."""
    earlier: set[int] = set()
    vanished: set[int] = set()
    fetched: dict[int, frozenset[bytes]] = {}
    seen_fetch = False
    for line in data.split(b"\r\n"):
        if line.startswith(b"* VANISHED (EARLIER) "):
            assert not seen_fetch, "VANISHED (EARLIER) after a FETCH"
            earlier |= uid_set(line[21:])
        elif line.startswith(b"* VANISHED "):
            vanished |= uid_set(line[11:])
        elif b" FETCH (" in line and line.startswith(b"* "):
            seen_fetch = True
            uid = _UID.search(line)
            flags = _FLAGS.search(line)
            modseq = _MODSEQ.search(line)
            if since is not None and modseq is not None:
                assert int(modseq.group(1)) > since, line
            if uid is not None and flags is not None:
                fetched[int(uid.group(1))] = frozenset(flags.group(1).split()) - {b"\\Recent"}
    return {"earlier": earlier, "vanished": vanished, "fetched": fetched}


def code_value(data: bytes, name: bytes) -> int:
    match = re.search(rb"\[" + name + rb" (\d+)\]", data)
    assert match is not None, (name, data)
    return int(match.group(1))


def fill(port: int, user: str, mailbox: str, count: int) -> None:
    client = login(port, user)
    try:
        assert client.command(b"CREATE " + mailbox.encode())[1].startswith(b"OK")
        for number in range(1, count + 1):
            message = (b"From: a@example.com\r\nSubject: message %d\r\n\r\nbody %d\r\n"
                       % (number, number))
            assert client.command(b"APPEND " + mailbox.encode(), message)[1].startswith(b"OK")
    finally:
        client.close()


def remember(port: int, user: str, mailbox: str, expunge_first: int | None = None
             ) -> tuple[int, int]:
    """(UIDVALIDITY, HIGHESTMODSEQ) as a QRESYNC client stores them on leaving; with
    `expunge_first`, that UID is expunged before (so an answer from the expunge history
    must leave it out, while "every absent UID" would not)."""
    client = login(port, user)
    try:
        client.command(b"ENABLE QRESYNC")
        if expunge_first is not None:
            client.command(b"SELECT " + mailbox.encode())
            client.command(b"UID STORE %d +FLAGS (\\Deleted)" % expunge_first)
            client.command(b"EXPUNGE")
        data, status = client.command(b"SELECT " + mailbox.encode())
        assert status.startswith(b"OK"), status
        return code_value(data, b"UIDVALIDITY"), code_value(data, b"HIGHESTMODSEQ")
    finally:
        client.close()


def run(port: int, user: str, lines: list[bytes], qresync: bool = True) -> list[tuple]:
    client = login(port, user)
    try:
        if qresync:
            client.command(b"ENABLE QRESYNC")
        return [client.command(line) for line in lines]
    finally:
        client.close()


def meddle(port: int, user: str, mailbox: str) -> None:
    """Another session: flag changes, EXPUNGE, UID EXPUNGE, MOVE and CLOSE expunges."""
    box = mailbox.encode()
    run(port, user, [b"SELECT " + box,
                     b"UID STORE 2 +FLAGS (\\Seen \\Flagged)", b"UID STORE 4 +FLAGS (custom)",
                     b"UID STORE 3,5 +FLAGS (\\Deleted)", b"EXPUNGE",
                     b"UID STORE 6,7 +FLAGS (\\Deleted)", b"UID EXPUNGE 7",
                     b"UID MOVE 9 INBOX", b"UID STORE 11 +FLAGS (\\Deleted)", b"CLOSE"],
        qresync=False)


def uidlist_base(path: Path, uid: int) -> str:
    """The file base name dovecot-uidlist gives `uid` (`<uid> [fields] :<base>`)."""
    for line in path.read_text().splitlines()[1:]:
        if line.split(" ", 1)[0] == str(uid):
            return line.split(":", 1)[1]
    raise AssertionError(f"UID {uid} not in {path}")


def reselect(port: int, user: str, mailbox: str, params: bytes, command: bytes = b"SELECT"):
    data, status = run(port, user, [command + b" " + mailbox.encode() + b" (QRESYNC ("
                                     + params + b"))"])[0]
    assert status.startswith(b"OK"), status
    return data


# ---- tests -------------------------------------------------------------------------------

def test_select_qresync_after_changes_in_another_session(servers):
    mailbox = "resync1"
    remembered = both(servers, lambda kind, port: (fill(port, USERS[kind], mailbox, 13),
                                                   remember(port, USERS[kind], mailbox, 13))[1])
    both(servers, lambda kind, port: meddle(port, USERS[kind], mailbox))
    variants = [lambda v, m: (b"%d %d" % (v, m), m),
                lambda v, m: (b"%d %d 1:6" % (v, m), m),             # known-uids
                lambda v, m: (b"%d %d 1:12 (1:4 1:4)" % (v, m), m),  # with seq-match-data
                lambda v, m: (b"%d %d 2:12" % (v, m), m),
                lambda v, m: (b"%d 1" % v, 1),                        # an old MODSEQ
                lambda v, m: (b"%d %d" % (v + 1, m), m)]              # UIDVALIDITY changed
    for variant in variants:
        for command in (b"SELECT", b"EXAMINE"):
            results = both(servers, lambda kind, port: summary(
                reselect(port, USERS[kind], mailbox, variant(*remembered[kind])[0], command),
                since=variant(*remembered[kind])[1]))
            assert results["roost"] == results["dovecot"], (variant(1, 2), command, results)
    plain = both(servers, lambda kind, port: summary(
        reselect(port, USERS[kind], mailbox, b"%d %d" % remembered[kind])))
    assert plain["roost"]["earlier"] == {3, 5, 6, 7, 9, 11}
    assert set(plain["roost"]["fetched"]) == {2, 4}


def test_uid_fetch_changedsince_vanished_and_live_vanished(servers):
    mailbox = "resync2"
    remembered = both(servers, lambda kind, port: (fill(port, USERS[kind], mailbox, 12),
                                                   remember(port, USERS[kind], mailbox))[1])
    both(servers, lambda kind, port: meddle(port, USERS[kind], mailbox))

    def fetches(kind, port):
        _validity, modseq = remembered[kind]
        box = mailbox.encode()
        answers = run(port, USERS[kind], [
            b"SELECT " + box,
            b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq,
            b"UID FETCH 4:8 (FLAGS) (CHANGEDSINCE %d VANISHED)" % modseq,
            b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",
            b"FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % modseq])
        return [summary(data, since=None) for data, _status in answers[1:]]

    results = both(servers, fetches)
    assert results["roost"] == results["dovecot"]
    assert results["roost"][0]["earlier"] == {3, 5, 6, 7, 9, 11}

    # a session selected with QRESYNC hears expunges by others as `* VANISHED`
    def live(kind, port):
        watcher, other = login(port, USERS[kind]), login(port, USERS[kind])
        try:
            watcher.command(b"ENABLE QRESYNC")
            watcher.command(b"SELECT " + mailbox.encode())
            other.command(b"SELECT " + mailbox.encode())
            other.command(b"UID STORE 1,8 +FLAGS (\\Deleted)")
            other.command(b"UID STORE 10 +FLAGS (\\Answered)")
            other.command(b"EXPUNGE")
            noop, status = watcher.command(b"NOOP")
            during_fetch, _ = watcher.command(b"FETCH 1 (FLAGS)")  # no expunges now (§7.4.1)
            other.command(b"UID STORE 12 +FLAGS (\\Deleted)")
            other.command(b"UID EXPUNGE 12")
            withheld, _ = watcher.command(b"FETCH 1:* (FLAGS)")
            told, _ = watcher.command(b"NOOP")
            closed, _ = watcher.command(b"CLOSE")  # CLOSE sends nothing (§3.2.8)
            return (summary(noop), status.split(b" ")[0], summary(during_fetch)["vanished"],
                    summary(withheld)["vanished"], summary(told)["vanished"], closed)
        finally:
            watcher.close()
            other.close()

    results = both(servers, live)
    assert results["roost"] == results["dovecot"]
    assert results["roost"][0]["vanished"] == {1, 8}
    assert results["roost"][4] == {12}


def test_resync_after_restart_and_after_another_program_deleted_a_file(servers):
    mailbox = "resync3"
    remembered = both(servers, lambda kind, port: (fill(port, USERS[kind], mailbox, 8),
                                                   remember(port, USERS[kind], mailbox, 8))[1])
    both(servers, lambda kind, port: run(port, USERS[kind], [
        b"SELECT " + mailbox.encode(), b"UID STORE 2 +FLAGS (\\Answered)",
        b"UID STORE 4 +FLAGS (\\Deleted)", b"EXPUNGE"], qresync=False))
    servers.stop()
    servers.start()
    for kind in ("dovecot", "roost"):  # another program removes UID 6's file
        folder = servers.maildir(kind) / f".{mailbox}"
        base = uidlist_base(folder / "dovecot-uidlist", 6)
        [path] = [p for sub in ("cur", "new") for p in (folder / sub).iterdir()
                  if p.name.split(":")[0] == base]
        path.unlink()
    results = both(servers, lambda kind, port: summary(
        reselect(port, USERS[kind], mailbox, b"%d %d" % remembered[kind]),
        since=remembered[kind][1]))
    assert results["roost"] == results["dovecot"]
    assert results["roost"]["earlier"] == {4, 6}
    assert results["roost"]["fetched"] == {2: frozenset({b"\\Answered"})}


def test_errors_as_dovecot(servers):
    mailbox = "resync4"
    both(servers, lambda kind, port: fill(port, USERS[kind], mailbox, 2))

    def errors(kind, port):
        box = mailbox.encode()
        client = login(port, USERS[kind])
        try:
            out = [client.command(b"SELECT " + box + b" (QRESYNC (1 1))")[1],
                   client.command(b"SELECT " + box)[1],
                   client.command(b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")[1],
                   client.command(b"ENABLE QRESYNC")[0],
                   client.command(b"UNSELECT")[1],
                   client.command(b"SELECT " + box + b" (QRESYNC (1))")[1],
                   client.command(b"UNSELECT")[1]]
            for params in (b"0 1", b"1 0", b"1 x", b"1 1 2:*", b"1 1 $", b"1 1 1:2 (1)",
                           b"1 1 1:2 (1 1)", b"1 1 1:2 (1:* 1:2)", b"1 1 1:2 (1:2 1:*)",
                           b"1 1 1:2 (1:2 1)", b"1 1 1:2 (1 1) x", b"1 1 ()", b"1 1 1:2 ()",
                           b"1 18446744073709551615", b"1 18446744073709551616"):
                out.append(client.command(b"EXAMINE " + box + b" (QRESYNC (" + params
                                          + b"))")[1])
                out.append(client.command(b"UNSELECT")[1])
            out.append(client.command(b"SELECT " + box + b" (QRESYNC)")[1])
            out.append(client.command(b"SELECT " + box + b" (QRESYNC 1 1)")[1])
            # a failed SELECT still closes the selected mailbox, and says so (§3.2.11)
            client.command(b"SELECT " + box)
            out += list(client.command(b"SELECT nosuchbox (QRESYNC (1 1))"))
            out.append(client.command(b"FETCH 1 (FLAGS)")[1])
            out += [client.command(line)[1] for line in (
                b"EXAMINE nosuchbox", b"STATUS nosuchbox (MESSAGES)", b"DELETE nosuchbox",
                b"RENAME nosuchbox other")]
        finally:
            client.close()
        return [_timing(line) for line in out]

    results = both(servers, errors)
    assert results["roost"] == results["dovecot"]


def _timing(line: bytes) -> bytes:
    line = re.sub(rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)", b"", line.rstrip())
    return line.rstrip(b".")


# ---- a real client library ---------------------------------------------------------------

class CachingClient:
    """imaplib with a local {uid: flags} cache kept up to date by QRESYNC."""

    def __init__(self, port: int, user: str, mailbox: str):
        self.port, self.user, self.mailbox = port, user, mailbox
        self.cache: dict[int, frozenset[bytes]] = {}
        self.uidvalidity = self.modseq = 0

    def connect(self) -> imaplib.IMAP4:
        imap = imaplib.IMAP4("127.0.0.1", self.port)
        imap.login(self.user, PASSWORD)
        imap.enable("QRESYNC")
        return imap

    def sync(self) -> None:
        imap = self.connect()
        try:
            if self.uidvalidity:
                typ, _ = imap.select(f"{self.mailbox} (QRESYNC ({self.uidvalidity} "
                                     f"{self.modseq}))")
            else:
                typ, _ = imap.select(self.mailbox)
            assert typ == "OK"
            untagged = imap.untagged_responses
            validity = int(untagged["UIDVALIDITY"][0])
            if validity != self.uidvalidity:  # first time, or everything changed
                self.cache = {}
                _typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
                self.apply_fetches(data)
            else:
                for item in untagged.get("VANISHED", []):
                    text = item if isinstance(item, bytes) else item.encode()
                    for uid in uid_set(text.replace(b"(EARLIER) ", b"")):
                        self.cache.pop(uid, None)
                self.apply_fetches(untagged.get("FETCH", []))
            self.uidvalidity = validity
            self.modseq = int(imap.untagged_responses.get("HIGHESTMODSEQ", [b"0"])[0])
        finally:
            imap.logout()

    def apply_fetches(self, data) -> None:
        for item in data:
            if isinstance(item, tuple):
                item = item[0]
            if not item:
                continue
            uid, flags = _UID.search(item), _FLAGS.search(item)
            if uid and flags:
                self.cache[int(uid.group(1))] = frozenset(flags.group(1).split()) - {b"\\Recent"}


def fresh_state(port: int, user: str, mailbox: str) -> dict[int, frozenset[bytes]]:
    from imapclient import IMAPClient
    with IMAPClient("127.0.0.1", port=port, ssl=False) as client:
        client.login(user, PASSWORD)
        client.select_folder(mailbox, readonly=True)
        return {uid: frozenset(f for f in data[b"FLAGS"] if f != b"\\Recent")
                for uid, data in client.fetch(client.search(["ALL"]), ["FLAGS"]).items()}


def test_imaplib_client_resyncs_to_the_same_state(servers):
    mailbox = "resync5"

    def scenario(kind, port):
        user = USERS[kind]
        fill(port, user, mailbox, 10)
        client = CachingClient(port, user, mailbox)
        client.sync()
        assert len(client.cache) == 10
        meddle(port, user, mailbox)
        client.sync()
        first = dict(client.cache)
        run(port, user, [b"SELECT " + mailbox.encode(), b"UID STORE 1 +FLAGS (\\Draft)",
                         b"UID STORE 2 -FLAGS (\\Seen)", b"UID STORE 8 +FLAGS (\\Deleted)",
                         b"EXPUNGE"], qresync=False)
        fill_more = login(port, user)
        fill_more.command(b"APPEND " + mailbox.encode(), b"Subject: late\r\n\r\nlate\r\n")
        fill_more.close()
        client.sync()
        assert client.cache == fresh_state(port, user, mailbox)
        return first, client.cache

    results = both(servers, scenario)
    assert results["roost"] == results["dovecot"]
