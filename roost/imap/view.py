"""The client's view of its selected mailbox: message sequence numbers and what it was told.

RFC 3501 §2.3.1.2 / RFC 9051 §2.3.1.2: sequence numbers are positions in the view the client
was last given; they change only through EXISTS and EXPUNGE responses the server sends.
`SelectedView` keeps that view (UIDs in order, the flags and MODSEQ last reported) and
turns a store refresh into the untagged responses that bring the client up to date
(§7.4.1, §5.2): new messages as `* N EXISTS`, flag changes by other sessions as
`* n FETCH (FLAGS (...))` (with UID when the command was a UID command, and MODSEQ once
CONDSTORE is enabled), removals as `* n EXPUNGE` (or `* VANISHED uids` with QRESYNC) —
removals only when the command allows them (never during FETCH, STORE, SEARCH: RFC 3501 §7.4.1,
the numbers the client uses in those would shift under it).

Invariants: `uids` is ascending and matches the EXISTS/EXPUNGE responses sent so far; an
expunged message the client was not told about stays in the view (its data reads as gone).
Security: only UIDs from the store's own snapshot enter the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.imap import recent as recent_marks
from roost.proto.imap import response
from roost.proto.imap.seqset import STAR

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")

_EMPTY: frozenset = frozenset()


def flag_names(info) -> list[str]:
    return [f for f in SYSTEM_FLAGS if f in info.flags] + sorted(info.keywords)


@dataclass
class SelectedView:
    mailbox: object  # roost.store.Mailbox
    readonly: bool
    condstore: bool = False
    qresync: bool = False
    uids: list[int] = field(default_factory=list)
    infos: dict = field(default_factory=dict)  # uid -> MessageInfo as last reported
    keywords: set = field(default_factory=set)  # keywords announced in FLAGS
    recent: set = field(default_factory=set)  # UIDs \Recent in this session (roost.imap.recent)
    rev2: bool = False  # IMAP4rev2 enabled: no \Recent, no RECENT (RFC 9051 appendix E)
    withheld: bool = False  # the last updates() kept back expunges (§7.4.1)

    def load(self) -> None:
        """The view of the snapshot the mailbox was opened with (roost.store.api: open
        gives a current snapshot; refreshing again would only repeat the scan)."""
        if self.readonly:
            first = recent_marks.first_recent(self.mailbox)
            self.recent = {info.uid for info in self.mailbox.messages() if info.uid >= first}
        else:
            self.recent = recent_marks.claim(self.mailbox)
        messages = self.mailbox.messages()
        self.uids = [info.uid for info in messages]
        self.infos = {info.uid: info for info in messages}
        self.keywords = {k for info in messages for k in info.keywords}
        # empty ones shared (an empty set is 216 bytes, kept by every idle session); they
        # are only ever rebound (|=), never changed in place
        self.recent = self.recent or _EMPTY
        self.keywords = self.keywords or _EMPTY

    def flags_of(self, info) -> list[str]:
        names = flag_names(info)
        return names + ["\\Recent"] if info.uid in self.recent and not self.rev2 else names

    # ---- numbering -----------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        import bisect
        index = bisect.bisect_left(self.uids, uid)
        return index + 1 if index < len(self.uids) and self.uids[index] == uid else None

    def select(self, sequence, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs of a sequence set (RFC 3501 §6.4.8: UID sets pick existing UIDs;
        `*` is the largest number in use)."""
        if uid:
            if not self.uids:
                return []
            bounds = sequence.bounds(self.uids[-1])
            return [(i + 1, u) for i, u in enumerate(self.uids)
                    if any(low <= u <= high for low, high in bounds)]
        bounds = sequence.bounds(self.count)
        return [(s, self.uids[s - 1]) for s in range(1, self.count + 1)
                if any(low <= s <= high for low, high in bounds)]

    def valid_sequence(self, sequence) -> bool:
        """Message sequence numbers beyond the view are an error (RFC 3501 §6.4.8; Dovecot
        answers BAD "Invalid messageset"); `*` in an empty mailbox too."""
        for low, high in sequence.ranges:
            for number in (low, high):
                if number == STAR and self.count == 0 or number != STAR and number > self.count:
                    return False
        return True

    # ---- updates -------------------------------------------------------------------------

    def updates(self, allow_expunge: bool, uid_command: bool = False) -> list[bytes]:
        """Untagged responses for what changed in the store since the last call (the store
        was refreshed by the caller)."""
        out: list[bytes] = []
        current = {info.uid: info for info in self.mailbox.messages()}
        gone = [uid for uid in self.uids if uid not in current]
        self.withheld = bool(gone) and not allow_expunge
        if gone and allow_expunge:
            if self.qresync:
                out.append(response.vanished(sorted(gone)))
            else:
                for uid in sorted(gone, reverse=True):
                    out.append(response.expunge(self.seq_of(uid)))
            gone_set = set(gone)
            self.uids = [u for u in self.uids if u not in gone_set]
            for uid in gone:
                self.infos.pop(uid, None)
        new_keywords = {k for info in current.values() for k in info.keywords} - self.keywords
        if new_keywords:
            self.keywords |= new_keywords
            out.append(self.flags_response())
        for uid in self.uids:
            info = current.get(uid)
            old = self.infos.get(uid)
            if info is None or old is None:
                continue
            if info.flags != old.flags or info.keywords != old.keywords:
                out.append(self.flags_fetch(uid, info, uid_command))
            self.infos[uid] = info
        last = self.uids[-1] if self.uids else 0
        added = sorted(uid for uid in current if uid > last)
        if added:
            self.uids.extend(added)
            for uid in added:
                self.infos[uid] = current[uid]
            out.append(response.exists(self.count))
            if self.readonly:
                first = recent_marks.first_recent(self.mailbox)
                self.recent |= {uid for uid in added if uid >= first}
            else:
                self.recent |= recent_marks.claim(self.mailbox) & set(added)
            if not self.rev2:
                out.append(response.recent(len(self.recent & set(self.uids))))
        return out

    def flags_fetch(self, uid: int, info, with_uid: bool) -> bytes:
        items = []
        if with_uid or self.qresync:  # RFC 7162 §3.2.4: the client maps by UID
            items.append(("UID", b"%d" % uid))
        items.append(("FLAGS", response.flag_list(self.flags_of(info))))
        if self.condstore:
            items.append(("MODSEQ", b"(%d)" % info.modseq))
        return response.fetch(self.seq_of(uid), items)

    def flags_response(self) -> bytes:
        return response.flags(list(SYSTEM_FLAGS) + sorted(self.keywords))

    def permanent_flags(self) -> bytes:
        if self.readonly:
            return response.code("PERMANENTFLAGS", b"()")
        names = list(SYSTEM_FLAGS) + sorted(self.keywords) + ["\\*"]
        return response.code("PERMANENTFLAGS", response.flag_list(names))
