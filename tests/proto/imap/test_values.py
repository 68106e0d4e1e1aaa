"""Wire values: modified UTF-7 (RFC 3501 §5.1.3), strings/literals, sequence sets, responses."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.imap import response as r
from roost.proto.imap.capabilities import capabilities
from roost.proto.imap.lexer import Atom, Literal, Quoted, tokenize
from roost.proto.imap.quote import astring, for_humans, string
from roost.proto.imap.seqset import SequenceSet, compact
from roost.proto.imap.utf7 import decode_mailbox, encode_mailbox
from tests.message.dovecot_oracle import DovecotOracle


def test_rfc3501_utf7_example():
    # RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
    wire = b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert decode_mailbox(wire) == "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"
    assert encode_mailbox(decode_mailbox(wire)) == wire
    assert encode_mailbox("a&b") == b"a&-b"


@pytest.mark.parametrize("bad", [b"&Jjo", b"&AGE-", b"&U,BTF2-", b"caf\xc3\xa9", b"&", b"&AOk"])
def test_invalid_utf7_is_rejected(bad):
    with pytest.raises(ValueError):
        decode_mailbox(bad)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_utf7_round_trip(name):
    wire = encode_mailbox(name)
    assert wire.isascii()
    assert decode_mailbox(wire) == name


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_string_forms_parse_back(value):
    encoded = string(value)
    segments = encoded.split(b"\r\n", 1)
    if encoded.startswith(b"{"):
        (arg,) = tokenize([segments[0], b""], [segments[1]])
        assert isinstance(arg, Literal) and arg.value == value
    else:
        (arg,) = tokenize([encoded], [])
        assert isinstance(arg, Quoted) and arg.value == value
    atom = astring(value)
    if atom == value:
        (parsed,) = tokenize([atom], [])
        assert isinstance(parsed, Atom) and parsed.value.encode() == value


def test_for_humans_forms():
    assert for_humans(b"plain text") == b'"plain text"'
    assert for_humans(b"  a \r\n\t b  ") == b"{3}\r\na b"
    assert for_humans(b" \t ") == b'""'
    assert for_humans(b'say "hi"') == b'{8}\r\nsay "hi"'
    assert for_humans(None) == b"NIL"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.integers(1, 50)), min_size=1, max_size=5),
       st.integers(1, 60))
def test_sequence_set_membership(ranges, largest):
    text = ",".join(f"{a}:{b}" for a, b in ranges)
    parsed = SequenceSet.parse(text)
    for n in range(1, 61):
        assert parsed.contains(n, largest) == any(min(a, b) <= n <= max(a, b) for a, b in ranges)
    assert SequenceSet.parse(str(parsed)) == parsed


@pytest.mark.parametrize("bad", ["", "0", "1:", ":1", "a", "1,,2", "4294967296", "01", "1:*:2", "-1"])
def test_bad_sequence_sets(bad):
    with pytest.raises(ValueError):
        SequenceSet.parse(bad)


def test_star_and_saved():
    star = SequenceSet.parse("5:*")
    assert star.pick([1, 4, 5, 9]) == [5, 9]
    assert SequenceSet.parse("*").pick([3, 8]) == [8]
    assert SequenceSet.parse("$").saved
    assert compact([1, 2, 3, 7, 9, 10]) == "1:3,7,9:10"


def test_responses():
    assert r.ok("a1", "Done", r.code("UIDNEXT", "5")) == b"a1 OK [UIDNEXT 5] Done\r\n"
    assert r.bad(None, "x\r\ny") == b"* BAD x  y\r\n"
    assert r.list_entry("LIST", ["\\HasNoChildren"], ".", "Entw\u00fcrfe") == \
        b'* LIST (\\HasNoChildren) "." Entw&APw-rfe\r\n'
    assert r.list_entry("LIST", [], "/", "Entw\u00fcrfe", utf8=True) == \
        b'* LIST () "/" "Entw\xc3\xbcrfe"\r\n'
    assert r.list_entry("LIST", ["\\Noselect"], None, "") == b'* LIST (\\Noselect) NIL ""\r\n'
    assert r.esearch("t1", True, [("MIN", 2), ("ALL", "2:4")]) == b'* ESEARCH (TAG "t1") UID MIN 2 ALL 2:4\r\n'
    assert r.thread_tree([(1, [(2, [(3, [])])]), (None, [(4, []), (5, [])])]) == b"* THREAD (1 2 3)((4)(5))\r\n"
    assert r.vanished([1, 2, 3, 9], earlier=True) == b"* VANISHED (EARLIER) 1:3,9\r\n"
    assert r.continuation() == b"+ OK\r\n"


def test_capabilities_follow_dovecot_order():
    """The post-login list keeps Dovecot 2.3.19's order for every capability both have."""
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        banner = DovecotOracle(root, [], []).session([])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    theirs = re.search(rb"\[CAPABILITY ([^\]]*)\]", banner).group(1).decode().split()
    mine = capabilities(True)
    common = [c for c in mine if c in theirs]
    assert common == [c for c in theirs if c in mine]
    assert len(common) >= 20
    pre = capabilities(False, starttls=True, mechanisms=("PLAIN", "LOGIN"), plaintext_allowed=False)
    assert "STARTTLS" in pre and "LOGINDISABLED" in pre and "AUTH=PLAIN" not in pre
    assert capabilities(True, imap_capability="+XTEST")[-1] == "XTEST"
    assert capabilities(True, imap_capability="IMAP4rev1 IDLE") == ["IMAP4rev1", "IDLE"]


def test_proto_imap_is_sans_io():
    """DESIGN.md §3: roost/proto/** imports no asyncio, socket, ssl or filesystem modules."""
    import ast

    forbidden = {"asyncio", "socket", "ssl", "os", "pathlib", "subprocess", "shutil", "io", "selectors"}
    package = Path(__file__).resolve().parents[3] / "roost" / "proto" / "imap"
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, (module.name, name)


def test_select_responses_match_dovecot():
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    message = b"Subject: x\r\n\r\nbody\r\n"
    try:
        oracle = DovecotOracle(root, [message] * 3, [1700000000.0] * 3, ["S", "", "a"], ["$Important"])
        raw = oracle.session([b"s SELECT INBOX", b"e EXAMINE INBOX", b"c SELECT INBOX (CONDSTORE)"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    raw = re.sub(rb" \(\d+\.\d+ \+ [^)]*secs\)", b"", raw)
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", raw).group(1))
    common = dict(keywords=["$Important"], exists=3, recent=0, first_unseen=2, uidvalidity=1700000000,
                  uidnext=4)
    mine = (r.select_responses("s", readonly=False, **common)
            + r.select_responses("e", readonly=True, examine=True, previous_closed=True, **common)
            + r.select_responses("c", readonly=False, previous_closed=True, highestmodseq=modseq, **common))
    body = raw.split(b"\r\n", 1)[1]
    assert b"".join(mine) == body[:body.index(b"* BYE")]


def test_namespace_and_status_match_dovecot():
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        raw = DovecotOracle(root, [b"Subject: x\r\n\r\nbody\r\n"] * 2, [1700000000.0] * 2, ["S", ""]).session(
            [b"n NAMESPACE", b"t STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN)"])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    assert r.namespace() in raw
    items = [("MESSAGES", 2), ("UIDNEXT", 3), ("UIDVALIDITY", 1700000000), ("UNSEEN", 1)]
    assert r.status_data("INBOX", items) in raw
