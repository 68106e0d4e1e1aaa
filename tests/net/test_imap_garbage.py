"""Garbage after login gets BAD (or NO), never a dead worker: random command lines, random
bytes and commands with random arguments go to a whole roost IMAP server, and after each the
same connection must still answer NOOP (unless the server said BYE), and a new login works."""

from __future__ import annotations

import re
import socket

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.net.test_imap_server import PASSWORD, USER, roost  # noqa: F401 - the fixture

VERBS = ["FETCH", "UID FETCH", "STORE", "SEARCH", "UID SEARCH", "SELECT", "EXAMINE", "LIST",
         "STATUS", "COPY", "MOVE", "APPEND", "CREATE", "RENAME", "EXPUNGE", "SORT", "THREAD",
         "ENABLE", "GETQUOTAROOT", "NAMESPACE", "UID EXPUNGE", "CLOSE", "UNSELECT", "ID"]
ARG_ATOMS = ["1", "*", "1:*", "2:4", "$", "(", ")", "(FLAGS)", "BODY[]", "BODY[1.2.MIME]",
             "BINARY[1]", "<0.10>", "INBOX", '"a b"', "{3}", "{2+}", "NIL", "\\Seen",
             "(\\Seen $x)", "ALL", "OR", "NOT", "HEADER", "SUBJECT", "x", "RETURN", "(MIN)",
             "CHARSET", "UTF-8", "MODSEQ", "CHANGEDSINCE", "0", "4294967296", "INBOX.a.b"]


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = self.sock.makefile("rb")
        assert self.reader.readline().startswith(b"* OK")
        self.tag = 0
        assert self.command(f"LOGIN {USER} {PASSWORD}".encode())[-1].split()[1] == b"OK"

    def command(self, line: bytes) -> list[bytes]:
        self.tag += 1
        tag = b"t%d" % self.tag
        self.sock.sendall(tag + b" " + line + b"\r\n")
        trailing = re.search(rb"\{(\d{1,6})\+\}\Z", line)
        if trailing:  # a non-synchronising literal at the end: its data follows at once
            self.sock.sendall(b"x" * int(trailing.group(1)) + b"\r\n")
        literals = [int(n) for n in re.findall(rb"\{(\d{1,6})\}", line)]
        replies = []
        while True:
            reply = self.reader.readline()
            if not reply:
                replies.append(b"<closed>")
                return replies
            replies.append(reply)
            if reply.startswith(b"+ "):  # the server wants a literal: send it, end the line
                size = literals.pop(0) if literals else 0
                self.sock.sendall(b"x" * size + b"\r\n")
                continue
            if reply.startswith(tag + b" ") or reply.startswith(b"* BYE"):
                if reply.startswith(b"* BYE"):
                    replies.append(self.reader.readline() or b"<closed>")
                return replies

    def close(self) -> None:
        self.sock.close()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.generate])
@given(st.one_of(
    st.builds(lambda verb, args: (verb + " " + " ".join(args)).encode(),
              st.sampled_from(VERBS), st.lists(st.sampled_from(ARG_ATOMS), max_size=6)),
    st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
))
def test_garbage_never_kills_the_session(roost, line):  # noqa: F811
    client = Client(roost.imap)
    try:
        client.command(b"SELECT INBOX")
        replies = client.command(line)
        if any(r.startswith(b"* BYE") or r == b"<closed>" for r in replies):
            return
        after = client.command(b"NOOP")
        assert after[-1].split()[1] in (b"OK", b"BAD", b"NO"), (line, replies, after)
    finally:
        client.close()


def test_server_still_serves_after_garbage(roost):  # noqa: F811
    client = Client(roost.imap)
    assert client.command(b"SELECT INBOX")[-1].split()[1] == b"OK"
    client.close()
