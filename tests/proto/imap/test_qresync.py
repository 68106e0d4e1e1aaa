"""QRESYNC grammar and the pure resync computations (RFC 7162 §3.2.5, §3.2.6, §7).

The parser side is fed one byte at a time; its refusal texts are Dovecot 2.3's (the interop
test tests/interop/test_imap_qresync_dovecot.py compares them with the real server).
roost.imap.qresync is checked against a brute-force model of the same rules.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from roost.imap import qresync
from roost.proto.imap.connection import CommandReceived, ImapConnection, ProtocolError
from roost.proto.imap.seqset import SequenceSet
from roost.proto.imap.states import State
from tests.proto.imap.helpers import feed


def parse(line: bytes, enabled=frozenset({"QRESYNC", "CONDSTORE"}), bytewise=True,
          state=State.AUTHENTICATED):
    conn = ImapConnection(state=state)
    conn.enabled = frozenset(enabled)
    events = feed(conn, line + b"\r\n", bytewise=bytewise)
    assert len(events) == 1, events
    return events[0]


def test_select_parameters():
    event = parse(b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 "
                  b"(1:3 41:43)))")
    assert isinstance(event, CommandReceived)
    validity, modseq, known, match = event.command.qresync
    assert (validity, modseq) == (67890007, 20050715194045000)
    assert known.ranges == ((41, 41), (43, 211), (214, 541))
    assert match[0].ranges == ((1, 3),) and match[1].ranges == ((41, 43),)
    plain = parse(b"a EXAMINE box (QRESYNC (1 2))").command
    assert plain.qresync == (1, 2, None, None) and plain.readonly
    only_match = parse(b"a SELECT box (QRESYNC (1 2 (1 5)))").command
    assert only_match.qresync[2] is None and only_match.qresync[3][1].ranges == ((5, 5),)


def refusal(line: bytes, **kwargs) -> bytes:
    event = parse(line, **kwargs)
    assert isinstance(event, ProtocolError), event
    return event.reply


def test_refusals_as_dovecot():
    assert refusal(b"a SELECT box (QRESYNC (1 1))", enabled=()) == \
        b"a BAD Error in IMAP command SELECT: QRESYNC not enabled\r\n"
    assert refusal(b"a UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)", enabled=(),
                   state=State.SELECTED) == \
        b"a BAD Error in IMAP command UID FETCH: QRESYNC not enabled\r\n"
    fetch = parse(b"a UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)", state=State.SELECTED)
    assert fetch.command.vanished and fetch.command.changedsince == 1
    for params, reason in [(b"(1)", b"Invalid QRESYNC parameters"),
                           (b"(1 x)", b"Invalid QRESYNC parameters"),
                           (b"(1 18446744073709551616)", b"Invalid QRESYNC parameters"),
                           (b"(1 1 2:*)", b"Invalid QRESYNC known-uids"),
                           (b"(1 1 $)", b"Invalid QRESYNC known-uids"),
                           (b"(1 1 1:2 (1))", b"Invalid QRESYNC known-uid-set"),
                           (b"(1 1 1:2 (1:* 1:2))", b"Invalid QRESYNC known-sequence-set"),
                           (b"(1 1 ())", b"Invalid QRESYNC known-sequence-set"),
                           (b"(1 1 1:2 (1:2 1))", b"Invalid QRESYNC sets"),
                           (b"(1 1 1:2 (1 1) x)", b"Invalid QRESYNC parameters"),
                           (b"", b"QRESYNC parameters missing"),
                           (b"1 1", b"QRESYNC parameters missing")]:
        line = b"a SELECT box (QRESYNC " + params + b")" if params else b"a SELECT box (QRESYNC)"
        assert refusal(line) == b"a BAD Error in IMAP command SELECT: " + reason + b"\r\n", params
    assert parse(b"a SELECT box (QRESYNC (0 18446744073709551615))").command.qresync[:2] == \
        (0, 2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"(", b")", b" ", b"1", b"0", b":", b"*", b",", b"$", b"x",
                                 b"4294967296", b"QRESYNC", b"CONDSTORE"]), max_size=30))
def test_fuzzed_select_parameters_never_raise(pieces):
    event = parse(b"a SELECT box (" + b"".join(pieces) + b")", bytewise=False)
    assert isinstance(event, (CommandReceived, ProtocolError))


# ---- the computations ------------------------------------------------------------------

class FakeMailbox:
    def __init__(self, uids, uidnext, history):
        self.uids, self.uidnext, self.history = uids, uidnext, history
        self.uidvalidity = 7

    def vanished_since(self, modseq):
        return None if self.history is None else set(self.history)


def expand(line: bytes | None) -> set[int]:
    if line is None:
        return set()
    text = line.split(b") ", 1)[1].strip()
    out: set[int] = set()
    for part in text.split(b","):
        low, _, high = part.partition(b":")
        out.update(range(int(low), int(high or low) + 1))
    return out


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(1, 60)), st.sets(st.integers(1, 60)),
       st.lists(st.tuples(st.integers(1, 70), st.integers(1, 70)), min_size=1, max_size=4),
       st.booleans())
def test_vanished_earlier_matches_a_model(present, expunged, bounds, known_history):
    present = sorted(present)
    uidnext = 61
    history = (expunged - set(present)) if known_history else None
    line = qresync.vanished_earlier(FakeMailbox(present, uidnext, history), present, 5, bounds)
    wanted = {u for low, high in bounds for u in range(min(low, high), max(low, high) + 1)
              if u < uidnext}
    if known_history:
        model = history & wanted
    else:  # every absent UID the client may hold (RFC 7162 §3.2.5.2)
        model = wanted - set(present)
    assert expand(line) == model
    assert (line is None) == (not model)


def test_seq_match_data_narrows_the_fallback():
    present = [1, 2, 4, 7, 9]  # 3, 5, 6, 8 gone; the client's old view had 1..9
    box = FakeMailbox(present, 10, None)
    everything = [(1, 9)]
    assert expand(qresync.vanished_earlier(box, present, 5, everything)) == {3, 5, 6, 8}
    # the client says message 2 was UID 2 (true now too): nothing below UID 2 vanished
    match = (SequenceSet.parse("2"), SequenceSet.parse("2"))
    assert expand(qresync.vanished_earlier(box, present, 5, everything, match)) == {3, 5, 6, 8}
    # message 4 was UID 7 then and is now: UIDs up to 7 are accounted for
    match = (SequenceSet.parse("1,4"), SequenceSet.parse("1,7"))
    assert expand(qresync.vanished_earlier(box, present, 5, everything, match)) == {8}
    # a pair that no longer matches proves nothing
    match = (SequenceSet.parse("4"), SequenceSet.parse("4"))
    assert expand(qresync.vanished_earlier(box, present, 5, everything, match)) == {3, 5, 6, 8}


def test_huge_known_uid_range_is_not_expanded():
    present = list(range(1, 1000, 2))
    box = FakeMailbox(present, 1000, None)
    line = qresync.vanished_earlier(box, present, 1, [(1, 4294967295)])
    assert line.startswith(b"* VANISHED (EARLIER) 2,4,6,") and line.endswith(b",998\r\n")
    assert qresync.absent([(1, 4294967295)], [1, 2, 3], 3) == []


class FakeView:
    def __init__(self, infos):
        self.uids = sorted(infos)
        self.infos = infos

    def flags_of(self, info):
        return sorted(info.flags)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(1, 80), st.integers(1, 20), max_size=40),
       st.integers(0, 20),
       st.none() | st.lists(st.tuples(st.integers(1, 90), st.integers(1, 90)), min_size=1,
                            max_size=30))
def test_changed_fetches_matches_a_model(modseqs, since, bounds):
    from roost.store.api import MessageInfo
    infos = {uid: MessageInfo(uid, frozenset({"\\Seen"}), frozenset(), 1, 0.0, modseq, "g")
             for uid, modseq in modseqs.items()}
    lines = qresync.changed_fetches(FakeView(infos), since, bounds)
    reported = [int(line.split(b"UID ")[1].split(b" ")[0]) for line in lines]
    model = [uid for uid in sorted(infos) if infos[uid].modseq > since and (
        bounds is None or any(min(a, b) <= uid <= max(a, b) for a, b in bounds))]
    assert reported == model
