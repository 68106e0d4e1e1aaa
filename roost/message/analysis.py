"""One message analysed once, in a compact serialisable form the store can cache.

The store keeps, per message, what FETCH ENVELOPE/BODY/BODYSTRUCTURE, SORT and THREAD need
without reopening the file (Dovecot keeps the same in dovecot.index.cache): the three IMAP
structures as the exact bytes to send, the SortData record, and the header size. `to_bytes`/
`from_bytes` give a versioned JSON form (bytes fields in Latin-1 so any octet survives).
Sections, BINARY and SEARCH BODY/TEXT still read the message; `parse_message` on the bytes is
a single pass of bytes.find calls, so that stays cheap even for a 10 MB message.

Invariants: `analyse` never raises; `from_bytes(to_bytes(a)) == a`; a cache entry from an
unknown VERSION is refused (ValueError) so stale formats are recomputed.
Security: from_bytes validates types; cached bytes are only ever sent back as data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from roost.message.imapfmt import body_structure, envelope
from roost.message.mime import parse_message
from roost.message.sort import SortData, sort_data

VERSION = 1


@dataclass(frozen=True)
class Analysis:
    size: int                 # RFC822.SIZE (the CRLF form handed in)
    header_size: int          # bytes up to and including the empty line
    envelope: bytes
    body: bytes               # BODY (non-extensible BODYSTRUCTURE)
    bodystructure: bytes
    sort: SortData

    def to_bytes(self) -> bytes:
        record = {"v": VERSION, "size": self.size, "header_size": self.header_size,
                  "envelope": self.envelope.decode("latin-1"), "body": self.body.decode("latin-1"),
                  "bodystructure": self.bodystructure.decode("latin-1"), "sort": self.sort.to_json()}
        return json.dumps(record, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Analysis":
        record = json.loads(raw)
        if not isinstance(record, dict) or record.get("v") != VERSION:
            raise ValueError("unknown analysis cache version")
        return cls(int(record["size"]), int(record["header_size"]),
                   str(record["envelope"]).encode("latin-1"), str(record["body"]).encode("latin-1"),
                   str(record["bodystructure"]).encode("latin-1"), SortData.from_json(record["sort"]))


def analyse(data: bytes) -> Analysis:
    """Analyse a whole message given with CRLF line endings (Mailbox.open_message)."""
    root = parse_message(data)
    return Analysis(len(data), root.body_start, envelope(root.header),
                    body_structure(data, root, extended=False), body_structure(data, root),
                    sort_data(root.header))
