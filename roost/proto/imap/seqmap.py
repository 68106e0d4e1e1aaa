"""Message sequence numbers of a selected mailbox (RFC 3501 §2.3.1.2, §7.4.1; RFC 7162 §3.2.10).

The session keeps the UIDs it has announced, in sequence order; this maps sequence sets and
UID sets to messages the way Dovecot 2.3 does (observed): in a sequence set `*` is the last
message and a number beyond it makes the command BAD ("Invalid messageset"); in a UID set
`*` is the highest UID, ranges hold whichever UIDs exist (`UID FETCH 100:*` still returns the
last message) and absent UIDs are ignored. Expunges are announced with sequence numbers in
descending order so no announcement shifts a later one (Dovecot's order); VANISHED carries
UIDs instead.
Invariants: `uids` stays strictly ascending; lookups are O(log n) and range resolution is
O(ranges · log n + result), so `1:4294967295` on a big mailbox is cheap.
Security: resolution never materialises a range larger than the mailbox.
"""

from __future__ import annotations

import bisect

from roost.proto.imap.seqset import SequenceSet


class InvalidSequence(Exception):
    """A sequence number beyond the mailbox (tagged BAD "Invalid messageset")."""


class SequenceMap:
    def __init__(self, uids=()):
        self.uids: list[int] = sorted(uids)

    def __len__(self) -> int:
        return len(self.uids)

    def uid_of(self, seq: int) -> int:
        return self.uids[seq - 1]

    def seq_of(self, uid: int) -> int | None:
        index = bisect.bisect_left(self.uids, uid)
        if index < len(self.uids) and self.uids[index] == uid:
            return index + 1
        return None

    def seqs(self, numbers: SequenceSet, uid: bool, saved=()) -> list[int]:
        """Ascending sequence numbers of the messages a sequence or UID set names."""
        if numbers.saved:  # "$" (RFC 5182): the saved UIDs that still exist
            found = (self.seq_of(u) for u in saved)
            return sorted(s for s in found if s is not None)
        if uid:
            if not self.uids:
                return []
            picked: set[int] = set()
            for low, high in numbers.bounds(self.uids[-1]):
                start = bisect.bisect_left(self.uids, low)
                end = bisect.bisect_right(self.uids, high)
                picked.update(range(start + 1, end + 1))
            return sorted(picked)
        count = len(self.uids)
        picked = set()
        for low, high in numbers.bounds(count):
            if high > count or low < 1:  # also "*" in an empty mailbox
                raise InvalidSequence("Invalid messageset")
            picked.update(range(low, high + 1))
        return sorted(picked)

    def append(self, uids) -> int:
        """Add new messages (UIDs above every known one); returns the new EXISTS count."""
        for uid in sorted(uids):
            if self.uids and uid <= self.uids[-1]:
                raise ValueError("UIDs must grow")
            self.uids.append(uid)
        return len(self.uids)

    def expunge(self, uids) -> list[int]:
        """Remove messages; their sequence numbers for `* n EXPUNGE`, highest first."""
        gone = sorted({s for s in (self.seq_of(u) for u in uids) if s is not None}, reverse=True)
        for seq in gone:
            del self.uids[seq - 1]
        return gone
