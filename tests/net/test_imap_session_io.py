"""What an IMAP session costs the store: roost.imap.session against a Maildir in tmp_path.

A repeated BODYSTRUCTURE comes from the per-process memo (roost.imap.envelopes) without
opening the message file, and a FETCH whose other items need only the header then reads the
store's cached header block; APPEND to the selected mailbox does not open (and so rescan)
the mailbox again; \\Recent is still given to exactly one session (RFC 3501 §2.3.2) now that
the claim works on the snapshot the caller refreshed.
"""

from __future__ import annotations

import io

from roost.imap import envelopes
from roost.imap.session import Session
from roost.proto.imap.connection import ImapConnection, Limits
from roost.proto.imap.parser import parse_command
from roost.proto.imap.states import State
from roost.store.location import MailLocation
from roost.store.maildir import MaildirUserStore
from roost.store.maildir.mailbox import MaildirMailbox

MESSAGE = (b"From: Alice <alice@example.test>\r\nSubject: hello\r\n"
           b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n"
           b"\r\nhi\r\n--x\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--x--\r\n")


class _Log:
    def __getattr__(self, level):
        return lambda text: None


def _store(tmp_path):
    return MaildirUserStore("u", MailLocation("maildir", str(tmp_path / "Maildir")))


def _session(store, select: str | None = "INBOX") -> Session:
    connection = ImapConnection(Limits())
    connection.state = State.AUTHENTICATED
    session = Session(store, "u", connection, _Log())
    if select:
        run(session, f"s SELECT {select}")
    return session


def run(session: Session, line: str, literal: bytes | None = None) -> list[bytes]:
    state = session.connection.state
    command = parse_command([line.encode()] + ([b""] if literal is not None else []),
                            [literal] if literal is not None else [], state)
    return session.execute(command)


def _count_opens(monkeypatch) -> dict:
    counts = {"open_message": 0, "header": 0}
    for name in counts:
        original = getattr(MaildirMailbox, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(MaildirMailbox, name, counting)
    return counts


def test_repeated_bodystructure_reads_no_file(tmp_path, monkeypatch):
    store = _store(tmp_path)
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    counts = _count_opens(monkeypatch)
    first = run(_session(store), "f FETCH 1 (BODYSTRUCTURE BODY)")
    assert counts["open_message"] == 1
    assert first[0].startswith(b'* 1 FETCH (BODYSTRUCTURE (("text" "plain"')
    again = run(_session(store), "f FETCH 1 (BODYSTRUCTURE BODY)")
    assert again == first and counts["open_message"] == 1
    # the structures remembered, a header field comes from the store's header block (read
    # from the file once, then from its cache)
    mixed = [run(_session(store), "f FETCH 1 (BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (Subject)])")
             for _ in range(3)]
    assert counts["header"] == 3 and counts["open_message"] <= 2
    assert mixed[0] == mixed[1] == mixed[2]
    assert mixed[0][0].endswith(b"BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n)\r\n")


def test_append_to_the_selected_mailbox_opens_nothing(tmp_path, monkeypatch):
    store = _store(tmp_path)
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    session = _session(store)
    opened = []
    original = MaildirUserStore.open_mailbox
    monkeypatch.setattr(MaildirUserStore, "open_mailbox",
                        lambda self, name, **kw: opened.append(name) or original(self, name, **kw))
    out = run(session, "a APPEND inbox {%d}" % len(MESSAGE), MESSAGE)
    validity = session.view.mailbox.uidvalidity
    assert opened == []
    assert out == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n",
                   b"a OK [APPENDUID %d 2] Append completed.\r\n" % validity]
    store.create_mailbox("Other")
    out = run(session, "b APPEND Other {%d}" % len(MESSAGE), MESSAGE)
    assert opened == ["Other"] and out[-1].startswith(b"b OK [APPENDUID ")


def test_recent_goes_to_one_session(tmp_path):
    store = _store(tmp_path)
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    first, second = _session(store), _session(store)
    store.deliver("INBOX", io.BytesIO(MESSAGE))
    # the second session learns of message 2 first and gets it; message 1 stays the first's
    told = [run(session, "n NOOP") for session in (second, first)]
    assert told == [[b"* 2 EXISTS\r\n", b"* 1 RECENT\r\n", b"n OK NOOP completed.\r\n"]] * 2
    assert run(first, "f FETCH 1:2 FLAGS")[:2] == [b"* 1 FETCH (FLAGS (\\Recent))\r\n",
                                                    b"* 2 FETCH (FLAGS ())\r\n"]
    assert run(second, "f FETCH 1:2 FLAGS")[:2] == [b"* 1 FETCH (FLAGS ())\r\n",
                                                     b"* 2 FETCH (FLAGS (\\Recent))\r\n"]
    assert run(_session(store), "s NOOP") == [b"s OK NOOP completed.\r\n"]


def test_memo_is_bounded_by_bytes(monkeypatch):
    monkeypatch.setattr(envelopes, "_entries", {})
    monkeypatch.setattr(envelopes, "_held", 0)
    monkeypatch.setattr(envelopes, "MAX_BYTES", 256 * 1000)
    for uid in range(2000):
        envelopes.put(("/m", 1, uid, "BODYSTRUCTURE"), b"x" * 500)
        assert envelopes._held == sum(map(len, envelopes._entries.values())) <= 256 * 1000
    assert envelopes.get(("/m", 1, 1999, "BODYSTRUCTURE")) == b"x" * 500
    assert envelopes.get(("/m", 1, 0, "BODYSTRUCTURE")) is None  # the oldest went first
    envelopes.put(("/m", 1, 5000, "BODY"), b"y" * 1001)  # over MAX_BYTES // 256: not kept
    assert envelopes.get(("/m", 1, 5000, "BODY")) is None
