"""roost's IMAP server against Debian's Dovecot 2.3.19 imap, through the network (issue 8).

One dovecot.conf (passwd-file users, Maildirs, imap listener) is served by the real Dovecot
(as root: it drops to its own users) and by roost.net.imap in this process. The same corpus is
APPENDed to both over IMAP (alice's Maildir for Dovecot, bob's for roost, so neither sees the
other's files): the hand-written corpus of tests.message.corpus, the 200 seeded random messages
of tests.message.test_random_differential and one 5 MB message. Then FETCH ENVELOPE,
BODYSTRUCTURE, RFC822.SIZE, BODY[n], BODY[n.MIME], BODY[HEADER.FIELDS (...)], BINARY[n] and
SEARCH/SORT/THREAD results must be byte-identical (untagged data plus the tagged status word).

Deliberate differences in BINARY[n] (test_binary_equal_where_dovecot_answers):
- Dovecot answers BINARY of a part whose base64 or quoted-printable stops early (a base64
  quantum or a `=` escape cut by the end of the part) with `* BYE FETCH failed: Internal
  error` and drops the connection; RFC 3516 §4.2 asks for the decoded content or `NO
  [UNKNOWN-CTE]` ("If the server does not know how to decode the section's
  Content-Transfer-Encoding, it MUST fail the request and issue a NO response that contains
  the UNKNOWN-CTE extended response code"), and a dropped connection is neither: roost
  decodes leniently and answers OK. (Data its decoder rejects outright gives `NO [PARSE]
  Invalid data in MIME part.` in both.)
- BINARY_DIFFERENCES below, each message and section with both answers' shape: where nothing
  was decoded Dovecot sends the stored bytes cut to the length its relabelled headers would
  have had, or (a header cut off by a delimiter) repeats a header; RFC 3516 §4.2 asks that
  "the specified section be transmitted after performing CTE-related decoding", and RFC 3501
  §4.3 that a literal carry the octets it counts: roost sends the whole section.
"""

from __future__ import annotations

import re
import zlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from roost.message.mime import parse_message
from tests.conftest import free_port_base, require_tool
from tests.message import corpus
from tests.message.test_random_differential import CORPUS, SEARCHES, SORTS, _specs
from tests.net.pop3_harness import RealDovecot, RoostImap, make_certificate, traversable_dir

PASSWORD = "pw"
MAIL_UID = 5000
CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
protocols = imap
listen = 127.0.0.1
log_path = {dir}/dovecot.log
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
first_valid_uid = {uid}
last_valid_uid = {uid}
ssl = no
auth_mechanisms = plain login
auth_failure_delay = 0
disable_plaintext_auth = no
mail_location = maildir:{dir}/mail/%u/Maildir
protocol imap {{
  mail_plugins = zlib imap_zlib
}}
passdb {{
  driver = passwd-file
  args = {dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={uid} home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
HEADER_FIELDS = b"BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID CONTENT-TYPE X-MISSING)]"
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")
_TIMING = re.compile(rb" \(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.")


def big_message() -> bytes:
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    body = line * (5 * 1024 * 1024 // len(line))
    return (b"From: Big <big@example.com>\r\nTo: bob@example.org\r\nSubject: five megabytes\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nsmall part\r\n--XX\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" + body + b"\r\n--XX--\r\n")


def all_messages() -> list[bytes]:
    out = [data for _, data in corpus.messages()]
    out += [data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for data in CORPUS]
    out.append(big_message())
    return out


class Client:
    """A raw IMAP client: one command at a time, untagged data and the tagged status back."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.file = self.sock.makefile("rb")
        self.file.readline()
        self.counter = 0

    def command(self, line: bytes, literal: bytes | None = None) -> tuple[bytes, bytes]:
        self.counter += 1
        tag = b"c%d" % self.counter
        if literal is None:
            self.sock.sendall(tag + b" " + line + b"\r\n")
        else:
            self.sock.sendall(tag + b" " + line + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        data = bytearray()
        while True:
            chunk = self.file.readline()
            if not chunk:
                return bytes(data), b"<closed>"
            if chunk.startswith(tag + b" "):
                return bytes(data), _TIMING.sub(b".", chunk.split(b" ", 1)[1])
            data += chunk
            while (match := _LITERAL.search(chunk)) is not None:
                data += self.file.read(int(match.group(1)))
                chunk = self.file.readline()
                data += chunk

    def close(self) -> None:
        self.sock.close()


def bob_roost(directory) -> RoostImap:
    """roost.net.imap in this process on CONF, with one user, bob (password pw); his Maildir
    is `.maildir` (for the in-process IMAP tests of tests/net)."""
    for name in ("run", "state", "mail"):
        (directory / name).mkdir()
    (directory / "users").write_text("bob:{PLAIN}pw::::::\n")
    conf = directory / "dovecot.conf"
    conf.write_text(CONF.format(dir=directory, uid=MAIL_UID, port=1))
    server = RoostImap(conf)
    server.maildir = directory / "mail" / "bob" / "Maildir"
    return server


def login(port: int, user: str) -> Client:
    client = Client(port)
    _, status = client.command(b"LOGIN %s %s" % (user.encode(), PASSWORD.encode()))
    assert status.startswith(b"OK"), status
    return client


def fill(port: int, user: str, messages: list[bytes]) -> list[bytes]:
    client = login(port, user)
    try:
        statuses = []
        for number, data in enumerate(messages):
            date = time.strftime("%d-%b-%Y %H:%M:%S +0000", time.gmtime(1700000000 + number))
            _, status = client.command(b'APPEND INBOX "%s"' % date.encode(), data)
            statuses.append(status.split(b" [")[0].split(b" ")[0])
        return statuses
    finally:
        client.close()


def part_fetches(data: bytes) -> list[bytes]:
    return [b"BODY.PEEK[%s] BODY.PEEK[%s.MIME]" % (dotted, dotted)
            for dotted in (".".join(map(str, path)).encode() for path in _specs(data))]


def session_script(messages: list[bytes]) -> list[bytes]:
    script = [b"SELECT INBOX", b"UID FETCH 1:* (UID RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY)",
              b"FETCH 1:* (" + HEADER_FIELDS + b")",
              b"FETCH 1:* (BODY.PEEK[HEADER.FIELDS.NOT (RECEIVED DATE)] BINARY.SIZE[1])"]
    for seq, data in enumerate(messages, 1):
        fetches = part_fetches(data)
        if fetches:
            script.append(b"FETCH %d (%s)" % (seq, b" ".join(fetches)))
    script += [b"SEARCH CHARSET UTF-8 " + program.encode() for program in SEARCHES]
    script += [b"SEARCH LARGER 100000", b"SEARCH SMALLER 300 NOT DELETED", b"UID SEARCH 5:20 OR FROM a TO b"]
    script += [b"SORT (%s) UTF-8 ALL" % criteria.encode() for criteria in SORTS]
    script += [b"THREAD REFERENCES UTF-8 ALL", b"THREAD ORDEREDSUBJECT UTF-8 ALL"]
    return script


def run_script(port: int, user: str, script: list[bytes]) -> list[tuple[bytes, bytes]]:
    client = login(port, user)
    try:
        return [client.command(line) for line in script]
    finally:
        client.close()


def binary_answers(port: int, user: str, messages: list[bytes]) -> dict[bytes, tuple[bytes, bytes]]:
    """BINARY.PEEK[n] per part; a connection Dovecot drops is reopened."""
    out = {}
    client = login(port, user)
    client.command(b"EXAMINE INBOX")
    try:
        for seq, data in enumerate(messages, 1):
            for path in _specs(data):
                line = b"FETCH %d (BINARY.PEEK[%s])" % (seq, ".".join(map(str, path)).encode())
                out[line] = client.command(line)
                if out[line][1] == b"<closed>":
                    client.close()
                    client = login(port, user)
                    client.command(b"EXAMINE INBOX")
    finally:
        client.close()
    return out


@pytest.fixture(scope="module")
def servers():
    require_tool("dovecot")
    import os
    if os.geteuid() != 0:
        pytest.fail("the Dovecot IMAP differential test runs Dovecot with a private base_dir "
                    "and needs root (CI runs the suite as root)", pytrace=False)
    with traversable_dir("roost-imapdiff-") as directory:
        port = free_port_base() + 143
        for name in ("run", "state", "mail"):
            (directory / name).mkdir()
        make_certificate(directory)
        (directory / "users").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}::::::\n"
                                                 for u in ("alice", "bob")))
        os.chown(directory / "mail", MAIL_UID, MAIL_UID)
        conf = directory / "dovecot.conf"
        conf.write_text(CONF.format(dir=directory, uid=MAIL_UID, port=port))
        dovecot = RealDovecot(conf, port)
        roost = None
        try:
            roost = RoostImap(conf)
            yield dovecot, roost
        finally:
            if roost is not None:
                roost.close()
            dovecot.close()


MESSAGES = all_messages()


@pytest.fixture(scope="module")
def appended(servers):
    dovecot, roost = servers
    with ThreadPoolExecutor(2) as pool:
        theirs = pool.submit(fill, dovecot.port, "alice", MESSAGES)
        ours = pool.submit(fill, roost.port, "bob", MESSAGES)
        return theirs.result(), ours.result()


def test_corpus_is_big_and_varied():
    assert len(MESSAGES) >= 200
    assert max(len(data) for data in MESSAGES) >= 5 * 1024 * 1024
    assert any(parse_message(data).message is not None or b"message/rfc822" in data.lower()
               for data in MESSAGES)


def test_append_statuses_equal(appended):
    theirs, ours = appended
    assert ours == theirs
    assert theirs.count(b"OK") == len(MESSAGES)


def test_fetch_search_sort_thread_equal(servers, appended):
    dovecot, roost = servers
    script = session_script(MESSAGES)
    with ThreadPoolExecutor(2) as pool:
        theirs = pool.submit(run_script, dovecot.port, "alice", script)
        ours = pool.submit(run_script, roost.port, "bob", script)
        theirs, ours = theirs.result(), ours.result()
    different = []
    for line, (their_data, their_status), (our_data, our_status) in zip(script, theirs, ours):
        if line.startswith(b"SELECT"):
            continue  # UIDVALIDITY and the greeting texts differ by design
        if their_data != our_data or their_status.split(b" ")[0] != our_status.split(b" ")[0]:
            different.append((line, their_data[:3000], our_data[:3000], their_status, our_status))
    for line, their_data, our_data, their_status, our_status in different[:5]:
        print(f"--- {line!r}\nDovecot: {their_data!r} {their_status!r}\n"
              f"roost:   {our_data!r} {our_status!r}")
    assert [d[0] for d in different] == []
    assert sum(data.count(b" FETCH (") for data, _ in theirs) > 3 * len(MESSAGES)


def test_binary_equal_where_dovecot_answers(servers, appended):
    """BINARY.PEEK[n] of every part: byte-identical (data and tagged status, NO [PARSE] and
    NO [UNKNOWN-CTE] included) except Dovecot's dropped connections and BINARY_DIFFERENCES."""
    dovecot, roost = servers
    with ThreadPoolExecutor(2) as pool:
        theirs = pool.submit(binary_answers, dovecot.port, "alice", MESSAGES)
        ours = pool.submit(binary_answers, roost.port, "bob", MESSAGES)
        theirs, ours = theirs.result(), ours.result()
    listed = {_binary_line(where, index, section): check
              for (where, index, section), check in BINARY_DIFFERENCES.items()}
    different, dropped, refused = [], [], 0
    for line, (their_data, their_status) in theirs.items():
        our_data, our_status = ours[line]
        if their_status == b"<closed>" and b"BYE FETCH failed" in their_data:
            dropped.append(line)  # the first deliberate difference of the module docstring
            assert our_status.startswith(b"OK"), (line, our_data, our_status)
            continue
        refused += their_status.startswith(b"NO [PARSE]")
        if line in listed:
            assert our_status == their_status == b"OK Fetch completed.\r\n", line
            assert listed.pop(line)(_literal(their_data), _literal(our_data)), line
        elif their_data != our_data or their_status != our_status:
            different.append((line, their_data[:300], our_data[:300], their_status, our_status))
    for item in different[:10]:
        print(item)
    assert [d[0] for d in different] == []
    assert listed == {}  # every listed difference still happens
    assert refused >= 10 and len(dropped) >= 3
    assert len(theirs) - len(dropped) > 200


def _binary_line(where: str, index: int, section: str) -> bytes:
    seq = index + 1 if where == "hand" else len(corpus.messages()) + index + 1
    return b"FETCH %d (BINARY.PEEK[%s])" % (seq, section.encode())


def _literal(data: bytes) -> bytes:
    """The octets of the one literal in `* n FETCH (BINARY[s] {n}\r\n...)`."""
    match = re.search(rb"~?\{(\d+)\}\r\n", data)
    return data[match.end():match.end() + int(match.group(1))]


def _cut_short(theirs: bytes, ours: bytes) -> bool:
    """Nothing decoded, a quoted-printable field relabelled: Dovecot's literal is the stored
    section cut 10 octets short ("quoted-printable" vs "binary"), roost's the whole of it."""
    return len(ours) - len(theirs) == 10 and ours.startswith(theirs) \
        and b"Content-Transfer-Encoding: quoted-printable" in ours


def _repeated_header(theirs: bytes, ours: bytes) -> bool:
    """Part 2.1's header is cut off by a delimiter: Dovecot drops its last field and sends
    part 2.2's relabelled header twice; roost sends each once."""
    field = b"Content-Type: multipart/related; boundary=b2\r\nContent-Transfer-Encoding: binary\r\n"
    return theirs.count(field) == 2 and ours.count(field) == 1 \
        and b"TEXT/X-ODD; A=B\r\nContent-Transfer-Encoding: 7bit\r\n--b-10x" in ours


# (corpus, index in it, section) -> what both answers look like; see the module docstring
BINARY_DIFFERENCES = {
    ("random", 34, "1"): _cut_short,    # message/rfc822 whose message is qp, without body
    ("random", 72, "2"): _cut_short,    # message/rfc822 holding a qp multipart
    ("random", 131, "1"): _cut_short,   # message/rfc822 holding a qp multipart
    ("random", 151, "2"): _repeated_header,
}


class CompressedClient(Client):
    """After COMPRESS DEFLATE: raw deflate both ways (RFC 4978)."""

    def start(self) -> tuple[bytes, bytes]:
        answer = self.command(b"COMPRESS DEFLATE")
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        return answer

    def talk(self, lines: list[bytes]) -> bytes:
        """Send all lines at once (pipelined, one deflate flush), read until the last tag."""
        payload = b"".join(b"z%d %s\r\n" % (n, line) for n, line in enumerate(lines))
        self.sock.sendall(self.deflate.compress(payload) + self.deflate.flush(zlib.Z_SYNC_FLUSH))
        last = b"z%d " % (len(lines) - 1)
        out = bytearray()
        while not re.search(rb"(^|\r\n)" + re.escape(last) + rb"[^\r\n]*\r\n\Z", bytes(out)):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            out += self.inflate.decompress(chunk)
        return _TIMING.sub(b".", bytes(out))


def test_compress_deflate_matches_dovecot(servers, appended):
    dovecot, roost = servers
    lines = [b"SELECT INBOX", b"FETCH 1:3 (ENVELOPE BODY.PEEK[1])", b"UID SEARCH FROM bob",
             b"COMPRESS DEFLATE", b"NOOP", b"LOGOUT"]
    transcripts = []
    for port, user in ((dovecot.port, "alice"), (roost.port, "bob")):
        client = CompressedClient(port)
        try:
            assert client.command(b"LOGIN %s pw" % user.encode())[1].startswith(b"OK")
            data, status = client.start()
            transcripts.append((data, status, client.talk(lines)))
        finally:
            client.close()
    theirs, ours = transcripts
    assert ours[:2] == theirs[:2] == (b"", b"OK Begin compression.\r\n")
    # Dovecot runs pipelined commands side by side (its z3 answer comes before z1's), roost
    # one at a time (RFC 3501 §5.5 allows both), so lines are compared as sorted lists; roost
    # also announces HIGHESTMODSEQ in SELECT before CONDSTORE is enabled (RFC 7162 §3.1.2.1
    # makes it mandatory only after a CONDSTORE enabling command, optional before)
    def lines_of(data: bytes) -> list[bytes]:
        return sorted(line for line in re.sub(rb"UIDVALIDITY \d+", b"", data).split(b"\r\n")
                      if b"[HIGHESTMODSEQ " not in line)
    assert lines_of(ours[2]) == lines_of(theirs[2])
    assert b"[COMPRESSIONACTIVE]" in theirs[2] and b"* BYE" in theirs[2]


def test_namespace_and_bad_limit_match_dovecot(servers):
    """NAMESPACE with the store's (empty) prefix, and Dovecot's 20-BADs-in-a-row rule, which
    also counts the BADs a session answers (a command parsed, then refused)."""
    dovecot, roost = servers
    lines = [b"NAMESPACE", b"SELECT INBOX"] + [b"FETCH 1 BODY[HEADER.FIELDS ()]"] * 3 \
        + [b"FETCH 1 (FLAGS", b"NOOP"] + [b"STORE 1 FLAGS (\\Recent)"] * 21
    transcripts = []
    for port, user in ((dovecot.port, "alice"), (roost.port, "bob")):
        client = login(port, user)
        try:
            answers = []
            for line in lines:
                try:
                    answers.append(client.command(line))
                except ConnectionError:
                    answers.append((b"", b"<closed>"))
            transcripts.append(answers)
        finally:
            client.close()
    theirs, ours = transcripts
    assert ours[0] == theirs[0]
    assert [status.split(b" ")[0] for _, status in ours[2:]] == \
        [status.split(b" ")[0] for _, status in theirs[2:]]
    assert theirs[-1][1] == b"<closed>"
