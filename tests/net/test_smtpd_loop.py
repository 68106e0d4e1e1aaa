"""roost.net.smtpd's read loop: a whole transaction fed one byte per packet and all in one
packet gives the same replies and one queue file; smtpd_timeout counts from the last read
(one lazily re-armed timer per session, not one per read), so a slow but steady client is
never cut off, and a silent one is, after smtpd_timeout from its last bytes."""

from __future__ import annotations

import re
import socket
import time

from tests.net.smtpd_harness import SmtpdServer
from tests.net.test_smtpd import Raw, wait_for_line

TRANSACTION = (b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
               b"Subject: hello\r\n\r\nbody\r\n.\r\nQUIT\r\n")


def _replies(raw: Raw, count: int) -> list[str]:
    return [re.sub(r"queued as \w+", "queued as ID", raw.reply()) for _ in range(count)]


def test_one_byte_per_packet_and_one_packet_give_the_same_transcript(tmp_path):
    with SmtpdServer(tmp_path) as server:
        transcripts = []
        for split in (True, False):
            raw = Raw(server.port)
            raw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if split:
                for index in range(len(TRANSACTION)):
                    raw.send(TRANSACTION[index:index + 1])
            else:
                raw.send(TRANSACTION)
            transcripts.append(_replies(raw, 6))
            assert raw.reply() == "(closed)"
            raw.close()
        assert transcripts[0] == transcripts[1]
        assert transcripts[0][1:] == ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>",
                                      "250 2.0.0 Ok: queued as ID", "221 2.0.0 Bye"]
        assert len(server.queue_files()) == 2


def test_steady_slow_client_is_not_timed_out(tmp_path):
    with SmtpdServer(tmp_path, main_cf="smtpd_timeout = 1s\n") as server:
        raw = Raw(server.port)
        started = time.monotonic()
        for byte in b"NOOP\r\nNOOP\r\n":  # 12 bytes, 0.2 s apart: 2.4 s in all, no pause of 1 s
            raw.send(bytes([byte]))
            time.sleep(0.2)
        assert time.monotonic() - started > 2.0
        assert _replies(raw, 2) == ["250 2.0.0 Ok", "250 2.0.0 Ok"]
        assert raw.ask("QUIT") == "221 2.0.0 Bye"
        raw.close()


def test_silence_after_activity_times_out_from_the_last_read(tmp_path):
    with SmtpdServer(tmp_path, main_cf="smtpd_timeout = 1s\n") as server:
        raw = Raw(server.port)
        time.sleep(0.6)
        assert raw.ask("EHLO client.test").startswith("250-")
        asked = time.monotonic()
        assert raw.reply() == "421 4.4.2 mail.example.test Error: timeout exceeded"
        waited = time.monotonic() - asked
        assert 0.8 < waited < 2.0  # from the EHLO, not from the connection
        raw.close()
        assert "timeout after EHLO from unknown[127.0.0.1]" in wait_for_line(server, "timeout after")


class _Transport:
    def __init__(self, buffered: int, closing: bool) -> None:
        self.buffered, self.closing = buffered, closing

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered


class _Writer:
    def __init__(self, transport: _Transport) -> None:
        self.transport = transport
        self.written: list[bytes] = []
        self.drained = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    async def drain(self) -> None:
        self.drained += 1


def _session_writing_to(writer: _Writer):
    from types import SimpleNamespace

    from roost.net.smtpd import SmtpSession
    session = SmtpSession.__new__(SmtpSession)
    session.conn = SimpleNamespace(writer=writer)
    session.out = []
    return session


def test_replies_are_written_in_one_piece_and_drain_is_awaited_only_when_it_matters():
    """A reply the transport sent whole needs no drain(); unsent bytes (flow control) or a
    closing transport (drain raises the connection's error) do."""
    import asyncio
    for buffered, closing, drains in ((0, False, 0), (10, False, 1), (0, True, 1)):
        writer = _Writer(_Transport(buffered, closing))
        session = _session_writing_to(writer)
        session.out += [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"]
        asyncio.run(session._flush())
        assert writer.written == [b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"] and session.out == []
        assert writer.drained == drains
        asyncio.run(session._flush())  # nothing waiting: nothing written, no drain
        assert len(writer.written) == 1 and writer.drained == drains


def test_bytes_waiting_peeks_the_socket_as_postfix_does_before_its_greeting():
    """The greeting path asks FIONREAD; only a client that already sent something costs the
    extra loop turn that lets its bytes reach the reader (and the pipelining log line)."""
    from types import SimpleNamespace

    from roost.net.smtpd import _bytes_waiting
    server, client = socket.socketpair()
    try:
        writer = SimpleNamespace(get_extra_info=lambda name, default=None: server if name == "socket" else default)
        assert _bytes_waiting(writer) == 0
        client.sendall(b"EHLO early\r\n")
        deadline = time.monotonic() + 5
        while _bytes_waiting(writer) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _bytes_waiting(writer) == len(b"EHLO early\r\n")
        assert _bytes_waiting(SimpleNamespace(get_extra_info=lambda name, default=None: default)) == -1
    finally:
        server.close()
        client.close()
