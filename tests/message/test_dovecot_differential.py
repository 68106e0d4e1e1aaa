"""roost.message against Debian's Dovecot 2.3.19, byte for byte.

One PREAUTH Dovecot session per test module answers, for the corpus in tests/message/corpus.py
(40 messages, flags and keywords set through Maildir file names): FETCH ENVELOPE, BODY,
BODYSTRUCTURE, RFC822.SIZE, every BODY[section] / BINARY / BINARY.SIZE roost can name for each
part, partial fetches, a few dozen SEARCH programs, SORT orders and both THREAD algorithms.
roost computes the same from the message bytes and a MessageInfo and must agree exactly.

Deliberate differences (asserted nowhere because roost matches): none so far. Dovecot's
tagged-reply timing suffix "(0.001 + 0.000 secs)" is not part of any compared data.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from roost.message.fetch import FetchFailed, render, sets_seen
from roost.message.imapfmt import body_structure, envelope
from roost.message.mime import Part, parse_message
from roost.message.search import MessageView, SearchContext, matches
from roost.message.binary import InvalidData, binary, binary_size
from roost.message.sections import UnknownEncoding, extract, partial
from roost.message.sort import SortItem, sort_data, sort_items
from roost.message.thread import ordered_subject, references
from roost.proto.imap.commands import Section
from roost.proto.imap.parser import parse_command
from roost.proto.imap.response import (esearch, esearch_items, fetch, internal_date, message_flags, search,
                                       sort, thread_tree)
from roost.proto.imap.states import State
from tests.message.corpus import messages
from tests.message.dovecot_oracle import DovecotOracle, split_responses

CORPUS = messages()
BASE_DATE = 1700000000
DATES = [BASE_DATE + i * 86400 + 3600 * (i % 5) for i in range(len(CORPUS))]
KEYWORDS = ["$Important", "work"]


def _letters(seq: int) -> str:
    out = ""
    for letter, every in (("S", 3), ("F", 5), ("T", 7), ("R", 4), ("D", 11), ("a", 6), ("b", 9)):
        if seq % every == 0:
            out += letter
    return out


_FLAG_OF = {"S": "\\Seen", "F": "\\Flagged", "T": "\\Deleted", "R": "\\Answered", "D": "\\Draft"}


@dataclass(frozen=True)
class Info:  # the fields of roost.store.api.MessageInfo that message analysis reads
    uid: int
    flags: frozenset
    keywords: frozenset
    size: int
    internal_date: float
    modseq: int = 1
    guid: str = ""


def _info(seq: int, data: bytes) -> Info:
    letters = _letters(seq)
    flags = frozenset(_FLAG_OF[c] for c in letters if c in _FLAG_OF)
    keywords = frozenset(KEYWORDS[ord(c) - ord("a")] for c in letters if c.islower())
    return Info(seq, flags, keywords, len(data), float(DATES[seq - 1]))


SEARCH_PROGRAMS = [
    "ALL", "SEEN", "UNSEEN", "FLAGGED NOT SEEN", "DELETED", "UNDELETED", "ANSWERED", "DRAFT",
    "UNDRAFT UNANSWERED", "KEYWORD $Important", "UNKEYWORD work", "KEYWORD work SEEN",
    "NEW", "OLD", "RECENT", "LARGER 300", "SMALLER 100", "OR LARGER 1000 SMALLER 60",
    "1:5", "2,4,6:8", "10:*", "*", "UID 3:7", "UID 30:*", "NOT 1:20", "OR 1 OR 3 5",
    "FROM alice", 'FROM "Alice Example"', "FROM Keld", "FROM example.com", "TO MISSING_DOMAIN",
    "CC comment", "TO yan@example.com", "BCC hidden", 'SUBJECT "hello there"',
    'SUBJECT "understand the"', 'SUBJECT "a folded subject"', "SUBJECT re:",
    'HEADER X-Priority ""', "HEADER X-Priority 1", 'HEADER Message-ID "example.com"',
    "HEADER Content-Type multipart", 'BODY "quick brown fox"', 'BODY "html version = fun"',
    'BODY "soft break line"', "BODY inner", "BODY AAECAwQF", 'TEXT "Subject: qp"',
    'TEXT "hello there"', "TEXT zebra", "SENTBEFORE 1-Jan-2000", "SENTSINCE 1-Jan-2000",
    "SENTON 18-Feb-1994", "SENTON 14-Feb-1994", 'SENTBEFORE "8-Feb-1994"',
    "BEFORE 1-Dec-2023", "SINCE 10-Dec-2023", "ON 20-Nov-2023", "NOT ON 20-Nov-2023",
    "(OR SEEN FLAGGED) (OR DELETED ANSWERED)", "NOT (SEEN FLAGGED)",
    'CHARSET UTF-8 BODY "café"', 'CHARSET UTF-8 FROM "Jørn"', 'CHARSET UTF-8 SUBJECT "grüße"',
    'BODY "naïve"', 'CHARSET UTF-8 BODY "wörld"',
    "CHARSET US-ASCII SUBJECT hello", 'BODY "PDF-1.4"', 'BODY "digest one"', 'TEXT "digest one"',
    'BODY "Content-Type: text/html"', 'TEXT "Content-Type: text/html"', "BODY preamble",
    "TEXT epilogue", 'BODY "Andr\u00e9"', 'HEADER Subject ""', 'HEADER From "MISSING_DOMAIN"',
    'TO "Group"', 'CC "undisclosed"', "FROM second", "SUBJECT first",
    'CHARSET UTF-8 SUBJECT "caf\u00e9"', 'BODY "h\u00e9llo"', 'TEXT "=?utf-8"', 'FROM ""',
    'SUBJECT ""', 'HEADER Content-Type "charset=utf-8"', 'FROM "Keld J\u00f8rn Simonsen"',
    'SUBJECT "if you can read this you understand"', 'FROM "<keld@dkuug.dk>"', 'TO "<>"',
    'FROM "a@example.com"', 'BCC ""', 'HEADER X-Long xxxxxxxxxx',
    'TEXT "X-Only: header"', 'HEADER "Subject" "  lots"', 'SUBJECT "lots of space"',
    'SUBJECT "lots   of"', 'BODY "  "', 'HEADER Subject "   lots"', 'HEADER Subject "space   "',
    'SUBJECT " lots"', 'SUBJECT "space "', 'HEADER Subject "folded subject"',
    'HEADER Subject "folded  subject"', 'HEADER To "MISSING_DOMAIN"', 'FROM "\\"Alice Example\\""',
    'FROM "<alice@example.com>"', 'FROM "Example <"', 'FROM "Routed <"', 'FROM "@relay1"',
    'TO "Group:"', 'TO "one@example.com,"', 'TO "Two <two"', 'FROM "Alice Example <alice@"',
    'HEADER From "Alice Example <alice@"', 'TEXT "lots   of"', 'FROM "<>"', 'FROM "\\"back"', 'TEXT "Content-Transfer-Encoding: base64"', "CHARSET ISO-8859-1 BODY {5}\r\nna\xefve",
]


def _program_bytes(program: str) -> bytes:
    return program.encode("latin-1" if "ISO-8859-1" in program else "utf-8")


ESEARCHES = [("MIN MAX COUNT ALL", "FROM a"), ("", "SEEN"), ("COUNT", "FROM nobody"),
             ("MIN MAX", "FROM nobody"), ("ALL", "NOT SEEN"), ("MAX", "1:10"), ("SAVE", "SEEN"),
             ("SAVE MIN", "FLAGGED")]
FETCH_LINES = [  # run in order in a second session; the last ones set \Seen
    b"FETCH 1:* (BODY.PEEK[HEADER] ENVELOPE INTERNALDATE BINARY.SIZE[1] RFC822.SIZE BODYSTRUCTURE "
    b"FLAGS UID RFC822.HEADER BODY BINARY.PEEK[1])",
    b"UID FETCH 1:* (BODY.PEEK[1] BINARY.PEEK[1]<1.2> BODY.PEEK[5] BINARY.SIZE[5] BODY.PEEK[]<2>)",
    b"FETCH 1:* (BODY.PEEK[HEADER.FIELDS (Subject Date)] BODY.PEEK[1.MIME] BINARY.PEEK[2]<0.10>)",
    b"FETCH 1:* FULL",
    b"UID FETCH 1:* (RFC822.SIZE BODY[TEXT]<0.20>)",
    b"FETCH 1:* (RFC822 FLAGS)",
]
SORT_CRITERIA = ["SUBJECT", "FROM", "DATE", "DISPLAYFROM", "REVERSE SIZE", "TO", "CC",
                 "DISPLAYTO", "ARRIVAL", "REVERSE DATE", "SIZE", "REVERSE SUBJECT", "FROM DATE",
                 "REVERSE DISPLAYTO SIZE", "REVERSE ARRIVAL"]


def _part_paths(part: Part, prefix: tuple = ()) -> list[tuple[tuple[int, ...], Part]]:
    if part.message is not None:
        inner = part.message
        kids = inner.children if inner.is_multipart else [inner]
    else:
        kids = part.children if part.is_multipart else []
    out = []
    for index, kid in enumerate(kids, 1):
        out.append((prefix + (index,), kid))
        out.extend(_part_paths(kid, prefix + (index,)))
    return out


def _section_specs(root: Part) -> list[tuple[str, tuple]]:
    specs = [("BODY.PEEK[]", ("body", Section())), ("BODY.PEEK[HEADER]", ("body", Section((), "HEADER"))),
             ("BODY.PEEK[TEXT]", ("body", Section((), "TEXT"))),
             ("BODY.PEEK[HEADER.FIELDS (From SUBJECT x-nope)]",
              ("body", Section((), "HEADER.FIELDS", ("From", "SUBJECT", "x-nope")))),
             ("BODY.PEEK[HEADER.FIELDS.NOT (From SUBJECT)]",
              ("body", Section((), "HEADER.FIELDS.NOT", ("From", "SUBJECT")))),
             ("BINARY.PEEK[]", ("binary", ())), ("BODY.PEEK[]<5.20>", ("partial", 5, 20)),
             ("BODY.PEEK[]<100000.5>", ("partial", 100000, 5))]
    paths = [((1,), root)] if not root.is_multipart and root.message is None else _part_paths(root)
    for path, part in paths:
        dotted = ".".join(map(str, path))
        specs += [(f"BODY.PEEK[{dotted}]", ("body", Section(path))),
                  (f"BODY.PEEK[{dotted}.MIME]", ("body", Section(path, "MIME"))),
                  (f"BINARY.PEEK[{dotted}]", ("binary", path)),
                  (f"BINARY.SIZE[{dotted}]", ("size", path))]
        specs += [(f"BODY.PEEK[{dotted}.HEADER]", ("body", Section(path, "HEADER"))),
                  (f"BODY.PEEK[{dotted}.TEXT]", ("body", Section(path, "TEXT"))),
                  (f"BODY.PEEK[{dotted}.HEADER.FIELDS (subject)]",
                   ("body", Section(path, "HEADER.FIELDS", ("subject",))))]
        if not part.is_multipart and part.message is None:  # part 1 of a leaf is the leaf
            specs += [(f"BODY.PEEK[{dotted}.1]", ("body", Section(path + (1,)))),
                      (f"BODY.PEEK[{dotted}.1.1]", ("body", Section(path + (1, 1)))),
                      (f"BODY.PEEK[{dotted}.1.MIME]", ("body", Section(path + (1,), "MIME"))),
                      (f"BODY.PEEK[{dotted}.2]", ("body", Section(path + (2,))))]
    return specs


_FETCH_ITEM = re.compile(rb"\* (\d+) FETCH \(((?:BODY|BINARY)\[[^\]]*\]|BINARY\.SIZE\[[^\]]*\])(<\d+>)? ")


def _fetch_value(rest: bytes):
    if rest.startswith(b"~"):
        rest = rest[1:]
    if rest.startswith(b"{"):
        return rest[rest.index(b"}") + 3:]
    if rest == b"NIL":
        return None
    if rest.startswith(b'"'):
        return rest[1:-1]
    return int(rest)


@pytest.fixture(scope="module")
def dovecot():
    """Everything Dovecot answers for the corpus, in one session."""
    root = Path(tempfile.mkdtemp(prefix="roost-dovecot-"))
    try:
        oracle = DovecotOracle(root, [m for _, m in CORPUS], DATES,
                               [_letters(i) for i in range(1, len(CORPUS) + 1)], KEYWORDS)
        commands = [b"s SELECT INBOX", b"f FETCH 1:* (RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE)",
                    b"g FETCH 1:* (FLAGS INTERNALDATE UID)"]
        spec_keys = []
        for seq, (_, data) in enumerate(CORPUS, 1):
            for spec, _ in _section_specs(parse_message(data)):
                commands.append(b"p FETCH %d (%s)" % (seq, spec.encode()))
                spec_keys.append((seq, spec))
        for index, program in enumerate(SEARCH_PROGRAMS):
            commands.append(b"S%d SEARCH " % index + _program_bytes(program))
        for index, criteria in enumerate(SORT_CRITERIA):
            commands.append(f"O{index} SORT ({criteria}) UTF-8 ALL".encode())
        for index, (returns, program) in enumerate(ESEARCHES):
            commands.append(b"E%d SEARCH RETURN (%s) %s" % (index, returns.encode(), program.encode()))
        commands += [b"T1 THREAD REFERENCES UTF-8 ALL", b"T2 THREAD ORDEREDSUBJECT UTF-8 ALL",
                     b"T3 UID THREAD REFERENCES UTF-8 1:20", b"T4 THREAD ORDEREDSUBJECT UTF-8 SEEN"]
        responses = split_responses(oracle.session(commands))
        fetch_responses = []
        for line in FETCH_LINES:  # one session each: its answers are then unambiguous
            answers = split_responses(oracle.session([b"s SELECT INBOX", b"F " + line]))
            tagged = [a for a in answers if a.startswith(b"F ")]
            fetch_responses.append((tagged[0], [r for r in answers if re.match(rb"\* \d+ FETCH ", r)]))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result = {"esearch": [], "whole": {}, "flags": {}, "sections": {}, "search": [], "search_tagged": [], "sort": [], "thread": []}
    for response in responses:
        match = _FETCH_ITEM.match(response)
        if match:
            label = (match.group(2) + (match.group(3) or b"")).decode()
            result["sections"][(int(match.group(1)), label)] = _fetch_value(response[match.end():-3])
        elif re.match(rb"\* \d+ FETCH \(RFC822\.SIZE", response):
            result["whole"][int(response.split()[1])] = response
        elif re.match(rb"\* \d+ FETCH \(FLAGS", response):
            result["flags"][int(response.split()[1])] = response
        elif response.startswith(b"* SEARCH"):  # one per successful SEARCH, in command order
            result["search"].append(response)
        elif re.match(rb"S\d+ ", response):
            result["search_tagged"].append(response)
        elif response.startswith(b"* ESEARCH"):
            result["esearch"].append(response)
        elif response.startswith(b"* SORT"):
            result["sort"].append(response)
        elif response.startswith(b"* THREAD"):
            result["thread"].append(response)
    result["spec_keys"] = spec_keys
    result["fetch"] = fetch_responses
    return result


@pytest.mark.parametrize("seq", range(1, len(CORPUS) + 1), ids=[n for n, _ in CORPUS])
def test_envelope_body_bodystructure_size(dovecot, seq):
    data = CORPUS[seq - 1][1]
    root = parse_message(data)
    mine = fetch(seq, [("RFC822.SIZE", b"%d" % len(data)), ("ENVELOPE", envelope(root.header)),
                       ("BODY", body_structure(data, root, extended=False)),
                       ("BODYSTRUCTURE", body_structure(data, root))])
    assert mine == dovecot["whole"][seq]


@pytest.mark.parametrize("seq", range(1, len(CORPUS) + 1), ids=[n for n, _ in CORPUS])
def test_flags_internaldate_uid(dovecot, seq):
    info = _info(seq, CORPUS[seq - 1][1])
    mine = fetch(seq, [("FLAGS", message_flags(info.flags, info.keywords, keyword_order=KEYWORDS)),
                       ("INTERNALDATE", internal_date(info.internal_date)), ("UID", b"%d" % info.uid)])
    assert mine == dovecot["flags"][seq]


def _label(spec: str) -> str:
    label = spec.replace(".PEEK", "").upper()
    return re.sub(r"<(\d+)\.\d+>", r"<\1>", label)


@pytest.mark.parametrize("seq", range(1, len(CORPUS) + 1), ids=[n for n, _ in CORPUS])
def test_sections_and_binary(dovecot, seq):
    data = CORPUS[seq - 1][1]
    root = parse_message(data)
    checked = 0
    for spec, how in _section_specs(root):
        theirs = dovecot["sections"].get((seq, _label(spec)), "missing")
        if how[0] == "body":  # a part that does not exist reads as "" in both
            mine = extract(data, root, how[1]) or b""
        elif how[0] == "partial":
            mine = partial(extract(data, root, Section()), how[1], how[2])
        else:
            try:
                if how[0] == "size":
                    mine = binary_size(data, root, how[1])
                else:
                    mine = binary(data, root, how[1])
            except (UnknownEncoding, InvalidData):  # NO [UNKNOWN-CTE] / NO [PARSE]
                mine = "missing"
        assert mine == theirs, spec
        checked += 1
    assert checked >= 8


def _search_views():
    return [MessageView(_info(seq, data), seq, data) for seq, (_, data) in enumerate(CORPUS, 1)]


@pytest.mark.parametrize("index", range(len(SEARCH_PROGRAMS)), ids=SEARCH_PROGRAMS)
def test_search(dovecot, index):
    assert [t for t in dovecot["search_tagged"] if b" OK " not in t] == []
    assert len(dovecot["search"]) == len(SEARCH_PROGRAMS)
    untagged = dovecot["search"][index]
    program = _program_bytes(SEARCH_PROGRAMS[index])
    literal = re.search(rb"\{(\d+)\}\r\n", program)
    if literal:
        segments, literals = [program[:literal.start() + len(literal.group(0)) - 2]], [program[literal.end():]]
        segments.append(b"")
    else:
        segments, literals = [program], []
    segments[0] = b"t SEARCH " + segments[0]
    command = parse_command(segments, literals, State.SELECTED)
    views = _search_views()
    ctx = SearchContext(largest_seq=len(views), largest_uid=len(views))
    hits = [v.seq for v in views if matches(command.key, v, ctx)]
    assert search(hits) == untagged


def _sort_items():
    return [SortItem(seq, seq, len(data), float(DATES[seq - 1]), sort_data(parse_message(data).header))
            for seq, (_, data) in enumerate(CORPUS, 1)]


@pytest.mark.parametrize("index", range(len(SORT_CRITERIA)), ids=SORT_CRITERIA)
def test_sort(dovecot, index):
    criteria, reverse = [], False
    for word in SORT_CRITERIA[index].split():
        if word == "REVERSE":
            reverse = True
            continue
        criteria.append((word, reverse))
        reverse = False
    ordered = sort_items(_sort_items(), tuple(criteria))
    assert sort([i.seq for i in ordered]) == dovecot["sort"][index]


def test_thread(dovecot):
    items = _sort_items()
    assert thread_tree(references(items)) == dovecot["thread"][0]
    assert thread_tree(ordered_subject(items)) == dovecot["thread"][1]
    first20 = [i for i in items if i.seq <= 20]
    assert thread_tree(references(first20, use_uid=True)) == dovecot["thread"][2]
    seen = [i for i in items if "\\Seen" in _info(i.seq, CORPUS[i.seq - 1][1]).flags]
    assert thread_tree(ordered_subject(seen)) == dovecot["thread"][3]


def test_fetch_rendering(dovecot):
    """roost.message.fetch.render against whole Dovecot FETCH responses, \\Seen side effect
    included (the session sets \\Seen before rendering; render adds FLAGS)."""
    seen: set[int] = set()
    for line, (tagged, answers) in zip(FETCH_LINES, dovecot["fetch"]):
        command = parse_command([b"t " + line], [], State.SELECTED)
        responses = iter(answers)
        unknown_cte = tagged.startswith(b"F NO [UNKNOWN-CTE]")
        assert unknown_cte or tagged.startswith(b"F OK "), tagged
        for seq, (_, data) in enumerate(CORPUS, 1):
            info = _info(seq, data)
            seen_set = False
            if sets_seen(command.items) and "\\Seen" not in info.flags and seq not in seen:
                seen_set = True
            if seen_set or seq in seen:
                seen.add(seq)
                info = Info(info.uid, info.flags | {"\\Seen"}, info.keywords, info.size, info.internal_date)
            try:
                mine = render(seq, info, command.items, lambda d=data: d, uid_command=command.uid,
                              seen_set=seen_set, keyword_order=KEYWORDS)
            except FetchFailed as failure:  # Dovecot ends the command; what it sent stands
                assert unknown_cte, (line, seq)
                if failure.response is not None:
                    assert failure.response == next(responses), (line, seq)
                assert next(responses, None) is None
                break
            assert mine == next(responses), (line, seq)
        else:
            assert not unknown_cte and next(responses, None) is None


def test_esearch(dovecot):
    views = _search_views()
    ctx = SearchContext(largest_seq=len(views), largest_uid=len(views))
    expected = []
    for index, (returns, program) in enumerate(ESEARCHES):
        command = parse_command([b"t SEARCH RETURN (%s) %s" % (returns.encode(), program.encode())], [],
                                State.SELECTED)
        hits = [v.seq for v in views if matches(command.key, v, ctx)]
        items = esearch_items(hits, command.returns)
        if items is not None:
            expected.append(esearch(f"E{index}", False, items))
    assert expected == dovecot["esearch"]
