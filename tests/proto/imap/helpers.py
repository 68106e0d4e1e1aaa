"""Drive an ImapConnection: feed bytes (optionally one at a time) and collect events."""

from __future__ import annotations

from roost.proto.imap.connection import NEED_DATA, PAUSED, ImapConnection


def drain(conn: ImapConnection) -> list:
    events = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA or event is PAUSED:
            return events
        events.append(event)


def feed(conn: ImapConnection, data: bytes, bytewise: bool = False) -> list:
    events: list = []
    if bytewise:
        for index in range(len(data)):
            conn.receive_data(data[index:index + 1])
            events.extend(drain(conn))
    else:
        conn.receive_data(data)
        events.extend(drain(conn))
    return events
