"""LIST pattern matching against Dovecot 2.3.19 on a Maildir++ folder tree."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.imap import response
from roost.proto.imap.listmatch import Matcher, is_separator_query
from roost.proto.imap.utf7 import decode_mailbox
from tests.message.dovecot_oracle import MAIL_ID, DovecotOracle, split_responses

FOLDERS = ["a", "a.b", "a.b.c", "ab", "c", "Sent", "Entw&APw-rfe", "x y", "INBOX.sub", "inboxy", "b%c", "d*e"]
NAMES = ["INBOX"] + [decode_mailbox(f.encode()) for f in FOLDERS]
QUERIES = [("", "*"), ("", "%"), ("", "a.%"), ("a", "%"), ("a.", "%"), ("", "*b*"), ("", "inbox"),
           ("", "INBOX*"), ("", "a*"), ("", "%.%"), ("", "x y"), ("", "in%"), ("", "*.c"), ("", "a%b"),
           ("", "%*"), ("", "Entw&APw-rfe"), ("", "InBoX.%"), ("", "*%*"), ("a.b", "*"), ("", "b%c"),
           ("", "d*e"), ("", "Inbox*"), ("", "A*"), ("", "*X"), ("", ""), ("a", "")]


@pytest.fixture(scope="module")
def dovecot_lists():
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        oracle = DovecotOracle(root, [], [])
        maildir = root / "home" / "Maildir"
        for folder in FOLDERS:
            for sub in ("cur", "new", "tmp"):
                (maildir / f".{folder}" / sub).mkdir(parents=True)
        if os.geteuid() == 0:
            for dirpath, _, _ in os.walk(maildir):
                os.chown(dirpath, MAIL_ID, MAIL_ID)
        commands = [b'L%d LIST "%s" "%s"' % (i, r.encode(), p.encode()) for i, (r, p) in enumerate(QUERIES)]
        responses = split_responses(oracle.session(commands))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    found: dict[int, set[str]] = {i: set() for i in range(len(QUERIES))}
    pending: list[str] = []
    for response in responses:
        match = re.match(rb'\* LIST \([^)]*\) "\." (.*)\r\n', response)
        if match:
            raw = match.group(1)
            raw = raw[1:-1] if raw.startswith(b'"') else raw
            pending.append(decode_mailbox(raw) if raw else "")
        tagged = re.match(rb"L(\d+) OK", response)
        if tagged:
            found[int(tagged.group(1))] = set(pending)
            pending = []
    return found, [r for r in responses if r.startswith(b"* LIST ")]


def test_list_lines_render_like_dovecot(dovecot_lists):
    """Mailbox names on the wire (mUTF-7 atoms or quoted strings) as Dovecot writes them."""
    _, lines = dovecot_lists
    assert lines
    for line in lines:
        match = re.match(rb'\* LIST \(([^)]*)\) "\." (.*)\r\n', line)
        raw = match.group(2)
        name = decode_mailbox(raw[1:-1] if raw.startswith(b'"') else raw)
        attributes = match.group(1).decode().split()
        assert response.list_entry("LIST", attributes, ".", name) == line


def test_list_patterns_match_dovecot(dovecot_lists):
    dovecot_lists, _ = dovecot_lists
    for index, (reference, pattern) in enumerate(QUERIES):
        if is_separator_query(reference, pattern):
            assert dovecot_lists[index] == {""}
            continue
        matcher = Matcher(reference, decode_mailbox(pattern.encode()), ".")
        mine = {name for name in NAMES if matcher.matches(name)}
        assert mine == dovecot_lists[index], (reference, pattern)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab.*%", max_size=12), st.text(alphabet="ab.", max_size=12))
def test_wildcard_runs_stay_linear(pattern, name):
    started = time.perf_counter()
    assert not Matcher("", pattern + "*a" * 30 + "x", ".").matches(name + "a" * 200)
    assert time.perf_counter() - started < 0.5
