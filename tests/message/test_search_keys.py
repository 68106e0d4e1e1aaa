"""SEARCH keys that depend on session state (RECENT, $, MODSEQ, WITHIN) and random programs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.message.search import MessageView, SearchContext, matches, search_messages
from roost.proto.imap import searchkeys as k
from roost.proto.imap.parser import parse_command
from roost.proto.imap.states import State
from tests.message.corpus import messages
from tests.message.test_dovecot_differential import Info

DATA = messages()[0][1]


def _view(uid: int, seq: int, modseq: int = 1, when: float = 1000.0, flags=frozenset()):
    return MessageView(Info(uid, flags, frozenset(), len(DATA), when, modseq), seq, DATA)


def _search(program: bytes, view, ctx) -> bool:
    command = parse_command([b"t SEARCH " + program], [], State.SELECTED)
    return matches(command.key, view, ctx)


def test_recent_new_old():
    ctx = SearchContext(largest_seq=3, largest_uid=30, recent_uids=frozenset({20}))
    recent, old = _view(20, 2), _view(10, 1, flags=frozenset({"\\Seen"}))
    assert _search(b"RECENT", recent, ctx) and not _search(b"RECENT", old, ctx)
    assert _search(b"NEW", recent, ctx) and not _search(b"NEW", old, ctx)
    assert _search(b"OLD", old, ctx) and not _search(b"OLD", recent, ctx)


def test_saved_result_and_star():
    ctx = SearchContext(largest_seq=3, largest_uid=30, saved=frozenset({10, 30}))
    assert _search(b"$", _view(30, 3), ctx) and not _search(b"$", _view(20, 2), ctx)
    assert _search(b"UID $", _view(10, 1), ctx)
    assert _search(b"*", _view(30, 3), ctx) and not _search(b"*", _view(20, 2), ctx)
    assert _search(b"UID 25:*", _view(30, 3), ctx) and _search(b"UID *:25", _view(30, 3), ctx)


def test_modseq_and_within():
    ctx = SearchContext(largest_seq=1, largest_uid=1, now=10_000.0)
    assert _search(b"MODSEQ 5", _view(1, 1, modseq=5), ctx)
    assert not _search(b'MODSEQ "/flags/\\\\Seen" all 6', _view(1, 1, modseq=5), ctx)
    assert _search(b"YOUNGER 9000", _view(1, 1, when=1001.0), ctx)
    assert _search(b"OLDER 8000", _view(1, 1, when=1000.0), ctx)
    assert not _search(b"OLDER 9500", _view(1, 1, when=1000.0), ctx)


def test_needs_message():
    assert not k.needs_message(parse_command([b"t SEARCH SEEN 1:3 LARGER 5"], [], State.SELECTED).key)
    assert k.needs_message(parse_command([b"t SEARCH OR SEEN BODY x"], [], State.SELECTED).key)


_KEYS = st.recursive(
    st.sampled_from(["ALL", "SEEN", "UNSEEN", "FROM alice", "SUBJECT hello", "BODY x", "TEXT y",
                     "LARGER 10", "SMALLER 1000", "1:*", "UID 1:5", "SENTON 7-Feb-1994",
                     "SINCE 1-Jan-1970", "HEADER To bob", "KEYWORD $x", "NEW", "OLD", "$"]),
    lambda inner: st.one_of(st.builds(lambda a: f"NOT {a}", inner),
                            st.builds(lambda a, b: f"OR {a} {b}", inner, inner),
                            st.builds(lambda a, b: f"({a} {b})", inner, inner)),
    max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(_KEYS, _KEYS)
def test_random_programs_parse_and_evaluate(first, second):
    program = f"{first} {second}".encode()
    ctx = SearchContext(largest_seq=1, largest_uid=1)
    result = _search(program, _view(1, 1), ctx)
    negated = _search(b"NOT (" + program + b")", _view(1, 1), ctx)
    assert result != negated


def test_search_messages_loads_only_when_needed():
    infos = [Info(uid, frozenset({"\\Seen"}) if uid % 2 else frozenset(), frozenset(), len(DATA), 0.0)
             for uid in (3, 4, 5)]
    loads = []

    def load(info):
        loads.append(info.uid)
        return DATA

    ctx = SearchContext(largest_seq=3, largest_uid=5)
    seen = parse_command([b"t SEARCH SEEN"], [], State.SELECTED).key
    assert search_messages(seen, infos, load, ctx) == [1, 3] and loads == []
    body = parse_command([b"t SEARCH UNSEEN BODY plain"], [], State.SELECTED).key
    assert search_messages(body, infos, load, ctx) == [2] and loads == [4]
