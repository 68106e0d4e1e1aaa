"""Sequence numbers ↔ UIDs, checked against Dovecot 2.3.19 and by properties."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.imap.response import expunge
from roost.proto.imap.seqmap import InvalidSequence, SequenceMap
from roost.proto.imap.seqset import SequenceSet
from tests.message.dovecot_oracle import DovecotOracle, split_responses

MESSAGE = b"Subject: x\r\n\r\nbody\r\n"


def test_expunge_and_sets_match_dovecot():
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        oracle = DovecotOracle(root, [MESSAGE] * 6, [1700000000.0] * 6, ["", "T", "T", "", "T", ""])
        raw = oracle.session([b"s SELECT INBOX", b"b EXPUNGE"])
        after = oracle.session([b"s SELECT INBOX", b"c UID FETCH 100:* UID", b"d UID FETCH 2:3,5 UID",
                                b"e FETCH 4 UID", b"f FETCH 2:* UID"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    seqmap = SequenceMap([1, 2, 3, 4, 5, 6])
    announced = b"".join(expunge(seq) for seq in seqmap.expunge([2, 3, 5]))
    assert announced == b"".join(r for r in split_responses(raw) if r.endswith(b"EXPUNGE\r\n"))
    fetched = [int(m) for m in re.findall(rb"\* \d+ FETCH \(UID (\d+)\)", after)]
    mine = []
    for text, uid in (("100:*", True), ("2:3,5", True)):
        mine += [seqmap.uid_of(s) for s in seqmap.seqs(SequenceSet.parse(text), uid)]
    with pytest.raises(InvalidSequence):
        seqmap.seqs(SequenceSet.parse("4"), uid=False)
    assert b"e BAD Error in IMAP command FETCH: Invalid messageset" in after
    mine += [seqmap.uid_of(s) for s in seqmap.seqs(SequenceSet.parse("2:*"), uid=False)]
    assert mine == fetched


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(1, 60), max_size=30), st.sets(st.integers(1, 60), max_size=10),
       st.integers(1, 70), st.integers(1, 70))
def test_properties(uids, gone, low, high):
    seqmap = SequenceMap(uids)
    before = list(seqmap.uids)
    picked = seqmap.seqs(SequenceSet.parse(f"{low}:{high}"), uid=True)
    assert [seqmap.uid_of(s) for s in picked] == [u for u in before if min(low, high) <= u <= max(low, high)]
    star = seqmap.seqs(SequenceSet.parse(f"{low}:*"), uid=True)  # "*" = highest UID, either order
    assert [seqmap.uid_of(s) for s in star] == ([u for u in before if min(low, before[-1]) <= u] if before else [])
    announced = seqmap.expunge(gone)
    assert announced == sorted(announced, reverse=True)
    assert seqmap.uids == [u for u in before if u not in gone]
    assert len(announced) == len(set(before) & set(gone))
