"""smtpd_client_connection_count_limit holds for the whole smtpd service, as Postfix's anvil(8)
counts it, not per worker process: a real roost server with two smtpd workers on the port
accepts exactly `limit` concurrent sessions from one client address (roost.master.anvil)."""

from __future__ import annotations

import socket
import time

from tests.e2e.server import Server

LIMIT = 2
CLIENTS = 8


def _greeting(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=("127.0.0.2", 0))
    return sock, sock.makefile("rb").readline()


def test_limit_counts_sessions_of_every_worker():
    server = Server()
    try:
        server.init()
        server.append("main.cf", f"smtpd_client_connection_count_limit = {LIMIT}\n"
                                 "smtpd_client_event_limit_exceptions =\n")
        server.start()
        held = [_greeting(server.smtp) for _ in range(CLIENTS)]
        greetings = [line for _, line in held]
        accepted = [sock for sock, line in held if line.startswith(b"220 ")]
        assert len(accepted) == LIMIT, greetings
        assert greetings.count(b"421 4.7.0 mail.example.test Error: too many connections from "
                               b"127.0.0.2\r\n") == CLIENTS - LIMIT, greetings
        accepted[0].close()
        time.sleep(0.5)  # the session's end reaches its worker
        sock, line = _greeting(server.smtp)
        assert line.startswith(b"220 "), line
        sock.close()
        for sock, _ in held:
            sock.close()
        assert server.maillog().count("Connection concurrency limit exceeded: 3 from") == CLIENTS - LIMIT
    finally:
        server.cleanup()
