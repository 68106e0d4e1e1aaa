"""THREAD=REFERENCES / ORDEREDSUBJECT edge cases (RFC 5256 §3) against Dovecot 2.3.19.

A corpus made for threading: missing parents (dummies with one and with several children),
duplicate and missing Message-IDs, self references and reference loops, In-Reply-To only,
subject merging (reply vs. non-reply, two replies, dummies), missing and invalid dates.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from roost.message.mime import parse_message
from roost.message.sort import SortItem, sort_data
from roost.message.thread import ordered_subject, references
from roost.proto.imap.response import thread_tree
from tests.message.dovecot_oracle import DovecotOracle, split_responses


def _message(subject: str, ident: str | None, date: str | None, refs: str = "", reply_to: str = "") -> bytes:
    lines = ["From: t@example.com", f"Subject: {subject}"]
    if ident:
        lines.append(f"Message-ID: <{ident}>")
    if date:
        lines.append(f"Date: {date}")
    if refs:
        lines.append(f"References: {refs}")
    if reply_to:
        lines.append(f"In-Reply-To: {reply_to}")
    return ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode()


THREAD_CORPUS = [
    _message("topic A", "a@x", "Mon, 1 Jan 2001 10:00:00 +0000"),
    _message("Re: topic A", "b@x", "Mon, 1 Jan 2001 11:00:00 +0000", "<a@x>"),
    _message("Re: topic A", "c@x", "Mon, 1 Jan 2001 12:00:00 +0000", "<a@x> <b@x>"),
    _message("Re: lost", "d@x", "Tue, 2 Jan 2001 10:00:00 +0000", "<m@x>"),
    _message("Re: lost", "e@x", "Tue, 2 Jan 2001 09:00:00 +0000", "<m@x>"),
    _message("duplicate of A", "a@x", "Wed, 3 Jan 2001 10:00:00 +0000"),
    _message("self reference", "g@x", "Wed, 3 Jan 2001 11:00:00 +0000", "<g@x>"),
    _message("Re: topic A", "h@x", "Wed, 3 Jan 2001 12:00:00 +0000", "", "<b@x>"),
    _message("Re: topic A", "i@x", "Thu, 4 Jan 2001 10:00:00 +0000", "<a@x> <missing2@x> <h@x>"),
    _message("Re: subject merge", "j@x", "Thu, 4 Jan 2001 11:00:00 +0000"),
    _message("subject merge", "k@x", "Fri, 5 Jan 2001 11:00:00 +0000"),
    _message("Re: two replies", "l@x", "Fri, 5 Jan 2001 12:00:00 +0000"),
    _message("Fwd: two replies", "m2@x", "Sat, 6 Jan 2001 12:00:00 +0000"),
    _message("no id at all", None, "Sat, 6 Jan 2001 13:00:00 +0000"),
    _message("Re: lost", "o@x", "Sun, 7 Jan 2001 10:00:00 +0000"),
    _message("loop", "p@x", "Sun, 7 Jan 2001 11:00:00 +0000", "<c@x> <a@x>"),
    _message("undated", "q@x", None, "<a@x>"),
    _message("bad date", "r@x", "someday", "<q@x>"),
    _message("[list] Re: topic A", "s@x", "Mon, 8 Jan 2001 10:00:00 +0000"),
    _message("", "t@x", "Mon, 8 Jan 2001 11:00:00 +0000"),
    _message("", "u@x", "Mon, 8 Jan 2001 12:00:00 +0000"),
    _message("reply chain", "v@x", "Tue, 9 Jan 2001 10:00:00 +0000", "<w@x>"),
    _message("reply chain", "w@x", "Tue, 9 Jan 2001 11:00:00 +0000", "<v@x>"),
    _message("Re: Re: subject merge", "x@x", "Wed, 10 Jan 2001 10:00:00 +0000", "<nowhere@x>"),
]
DATES = [1800000000.0 + i * 3600 for i in range(len(THREAD_CORPUS))]
COMMANDS = [b"THREAD REFERENCES UTF-8 ALL", b"THREAD ORDEREDSUBJECT UTF-8 ALL",
            b"UID THREAD REFERENCES UTF-8 5:20", b"THREAD REFERENCES UTF-8 NOT 1",
            b"THREAD ORDEREDSUBJECT UTF-8 2:*"]


@pytest.fixture(scope="module")
def dovecot_threads():
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        oracle = DovecotOracle(root, THREAD_CORPUS, DATES)
        out = oracle.session([b"s SELECT INBOX"] + [b"t%d " % i + c for i, c in enumerate(COMMANDS)])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [r for r in split_responses(out) if r.startswith(b"* THREAD")]


def _items(selected):
    return [SortItem(seq, seq, len(data), DATES[seq - 1], sort_data(parse_message(data).header))
            for seq, data in enumerate(THREAD_CORPUS, 1) if seq in selected]


def test_thread_edge_cases(dovecot_threads):
    everything = set(range(1, len(THREAD_CORPUS) + 1))
    mine = [
        thread_tree(references(_items(everything))),
        thread_tree(ordered_subject(_items(everything))),
        thread_tree(references(_items(set(range(5, 21))), use_uid=True)),
        thread_tree(references(_items(everything - {1}))),
        thread_tree(ordered_subject(_items(everything - {1}))),
    ]
    assert mine == dovecot_threads
