"""IMAP4rev2 (RFC 9051) for clients that ENABLE it, and COMPRESS=DEFLATE's refusals (RFC 4978),
against roost.net.imap in this process (Dovecot 2.3 has neither rev2 nor a second COMPRESS
to compare with, so the RFC text is the oracle here)."""

from __future__ import annotations

import zlib

import pytest

from tests.interop.test_imap_dovecot_differential import CONF, MAIL_UID, RoostImap, bob_roost, login


@pytest.fixture
def roost(tmp_path):
    server = bob_roost(tmp_path)
    try:
        yield server
    finally:
        server.close()


def test_rev2_enabled_changes_responses(roost):
    client = login(roost.port, "bob")
    try:
        caps, _ = client.command(b"CAPABILITY")
        assert b" IMAP4rev1 IMAP4rev2 " in caps and b"COMPRESS=DEFLATE" in caps
        # rev1 until enabled: RECENT in SELECT, SEARCH responses
        client.command(b"APPEND INBOX", b"From: a@b\r\nSubject: x\r\n\r\nhi\r\n")
        data, _ = client.command(b"EXAMINE INBOX")
        assert b"* 1 RECENT\r\n" in data
        assert client.command(b"SEARCH ALL")[0] == b"* SEARCH 1\r\n"
        assert client.command(b"enable imap4rev2") == (b"* ENABLED IMAP4rev2\r\n", b"OK Enabled.\r\n")
        assert client.command(b"ENABLE IMAP4rev2")[0] == b"* ENABLED\r\n"  # once only
        client.command(b"APPEND INBOX", b"From: c@d\r\nSubject: y\r\n\r\nho\r\n")
        data, status = client.command(b"SELECT inbox")
        # RFC 9051 §6.3.2: LIST of the mailbox; appendix E: no RECENT, no \Recent
        assert b'* LIST () "." "INBOX"\r\n' in data and b"RECENT" not in data
        assert status.startswith(b"OK [READ-WRITE]")
        # RFC 9051 §6.4.4: SEARCH answers ESEARCH with ALL
        assert client.command(b"SEARCH ALL")[0] == b'* ESEARCH (TAG "c10") ALL 1:2\r\n'
        assert client.command(b"UID SEARCH SUBJECT none")[0] == b'* ESEARCH (TAG "c11") UID\r\n'
        assert client.command(b"FETCH 2 FLAGS")[0] == b"* 2 FETCH (FLAGS ())\r\n"
    finally:
        client.close()


def test_compress_refusals_and_pipelined_data(roost):
    client = login(roost.port, "bob")
    try:
        assert client.command(b"COMPRESS LZMA")[1] == b"NO Unknown compression mechanism.\r\n"
        # a command pipelined right behind COMPRESS is already compressed (RFC 4978 §3)
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        inflate = zlib.decompressobj(-15)
        client.sock.sendall(b"z1 COMPRESS DEFLATE\r\n" + deflate.compress(b"z2 COMPRESS DEFLATE\r\n")
                            + deflate.flush(zlib.Z_SYNC_FLUSH))
        plain = b""
        while b"\r\n" not in plain:  # the socket, not client.file: its buffer would eat the rest
            plain += client.sock.recv(4096)
        line, _, rest = plain.partition(b"\r\n")
        assert line == b"z1 OK Begin compression."
        received = inflate.decompress(rest)
        while b"z2 " not in received:
            received += inflate.decompress(client.sock.recv(4096))
        assert received == b"z2 NO [COMPRESSIONACTIVE] COMPRESSION=DEFLATE already enabled.\r\n"
    finally:
        client.close()


def test_imap_literal_minus_setting(tmp_path):
    """dovecot.conf `imap_literal_minus = yes`: LITERAL- before and after login, and a
    non-synchronising literal over 4096 octets refused (RFC 7888 §5)."""
    for name in ("run", "state", "mail"):
        (tmp_path / name).mkdir()
    (tmp_path / "users").write_text("bob:{PLAIN}pw::::::\n")
    conf = tmp_path / "dovecot.conf"
    conf.write_text(CONF.format(dir=tmp_path, uid=MAIL_UID, port=1) + "imap_literal_minus = yes\n")
    server = RoostImap(conf)
    try:
        client = login(server.port, "bob")
        try:
            caps, _ = client.command(b"CAPABILITY")
            assert b" LITERAL- " in caps + b" " and b"LITERAL+" not in caps
            client.sock.sendall(b"x APPEND INBOX {5000+}\r\n" + b"a" * 5000 + b"\r\n")
            assert client.file.readline() == \
                b"x BAD [TOOBIG] Non-synchronizing literal too large\r\n"
            assert client.command(b"NOOP")[1] == b"OK NOOP completed.\r\n"
        finally:
            client.close()
    finally:
        server.close()
