"""QRESYNC resynchronisation: which UIDs to announce as VANISHED (EARLIER) and which messages
changed since a MODSEQ (RFC 7162 §3.2.5 SELECT/EXAMINE QRESYNC, §3.2.6 UID FETCH VANISHED).

The store's expunge history (Mailbox.vanished_since) answers "expunged after MODSEQ m" when it
reaches back to m. When it does not, every UID the client may hold (its known-uids, else
1..UIDNEXT-1) that is absent now is reported: §3.2.5.2 allows UIDs that were expunged before
m or never existed, and a client must ignore those it does not have. The seq-match-data narrows
that fallback: if the client's message number n still holds UID u, exactly n-1 messages have
lower UIDs in both views, and since UIDs only grow, none of them was expunged — only UIDs above
the highest such u need reporting (§3.2.5.2). UIDs still in the session's view (expunges it
has not been told about yet) are never reported as EARLIER; they come as `* VANISHED` when
§7.4.1 allows (as Dovecot 2.3 does, observed).

Invariants: pure functions over the view and the mailbox snapshot; UID ranges are handled as
ranges (a `1:4294967295` known-uids set never becomes a list).
Security: output is bounded by the mailbox's UIDNEXT, never by client-sent numbers.
"""

from __future__ import annotations

import bisect

from roost.proto.imap import response


def _clip(bounds, limit: int) -> list[tuple[int, int]]:
    """Ascending, merged ranges of `bounds` within 1..limit."""
    out: list[tuple[int, int]] = []
    ordered = ((min(lo, hi), max(lo, hi)) for lo, hi in bounds)
    for low, high in sorted((max(1, lo), min(limit, hi)) for lo, hi in ordered):
        if low > high:
            continue
        if out and low <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], high))
        else:
            out.append((low, high))
    return out


def absent(bounds, present: list[int], limit: int) -> list[tuple[int, int]]:
    """Ranges of the UIDs in `bounds` (and 1..limit) that are not in ascending `present`."""
    out: list[tuple[int, int]] = []
    for low, high in _clip(bounds, limit):
        start = bisect.bisect_left(present, low)
        cursor = low
        for uid in present[start:bisect.bisect_right(present, high)]:
            if uid > cursor:
                out.append((cursor, uid - 1))
            cursor = uid + 1
        if cursor <= high:
            out.append((cursor, high))
    return out


def ranges_text(ranges: list[tuple[int, int]]) -> str:
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in ranges)


def _membership(ranges: list[tuple[int, int]]):
    """A test for "uid is in one of `ranges`" (ascending, merged: _clip's output), by
    bisection: O(log r) per UID, however many ranges the client sent."""
    starts = [low for low, _high in ranges]

    def contains(uid: int) -> bool:
        at = bisect.bisect_right(starts, uid) - 1
        return at >= 0 and uid <= ranges[at][1]
    return contains


MAX_PAIRS = 100_000  # seq-match-data pairs looked at (the client's sets are unbounded)


def _expand(numbers, largest: int):
    """The numbers of a sequence set in the client's order, `*` = largest."""
    for low, high in numbers.bounds(largest):
        yield from range(low, high + 1)


def matched_floor(view_uids: list[int], seq_match) -> int:
    """The highest UID the client's seq-match-data proves nothing below it was expunged
    (0: none)."""
    if seq_match is None or not view_uids:
        return 0
    seqs, uids = seq_match
    floor = 0
    pairs = zip(_expand(seqs, len(view_uids)), _expand(uids, view_uids[-1]))
    for count, (seq, uid) in enumerate(pairs):  # RFC 7162 §3.2.5.2
        if count >= MAX_PAIRS:
            break
        if 1 <= seq <= len(view_uids) and view_uids[seq - 1] == uid:
            floor = max(floor, uid)
    return floor


def vanished_earlier(mailbox, view_uids: list[int], modseq: int, bounds,
                     seq_match=None) -> bytes | None:
    """`* VANISHED (EARLIER) ...` for the UIDs in `bounds` expunged since `modseq`; None when
    there are none. `view_uids` are the UIDs the session still shows (ascending)."""
    limit = max(mailbox.uidnext - 1, view_uids[-1] if view_uids else 0)
    wanted = _clip(bounds, limit)
    history = mailbox.vanished_since(modseq)
    if history is not None:
        shown, contains = set(view_uids), _membership(wanted)
        uids = sorted(uid for uid in history if uid not in shown and contains(uid))
        ranges = [(uid, uid) for uid in uids]
    else:
        floor = matched_floor(view_uids, seq_match)
        ranges = absent([(max(low, floor + 1), high) for low, high in wanted], view_uids, limit)
    if not ranges:
        return None
    # one VANISHED line; compact() merges neighbouring single UIDs into ranges
    if history is not None:
        return response.vanished([lo for lo, _hi in ranges], earlier=True)
    return response.untagged(b"VANISHED (EARLIER) " + ranges_text(ranges).encode())


def changed_fetches(view, modseq: int, bounds=None) -> list[bytes]:
    """`* n FETCH (UID u FLAGS (...) MODSEQ (m))` for the view's messages changed since
    `modseq` (RFC 7162 §3.2.5.2), only those in `bounds` (known-uids) when given."""
    out = []
    contains = _membership(_clip(bounds, view.uids[-1])) if bounds is not None and view.uids \
        else None
    for seq, uid in enumerate(view.uids, 1):
        info = view.infos.get(uid)
        if info is None or info.modseq <= modseq:
            continue
        if contains is not None and not contains(uid):
            continue
        out.append(response.fetch(seq, [("UID", b"%d" % uid),
                                        ("FLAGS", response.flag_list(view.flags_of(info))),
                                        ("MODSEQ", b"(%d)" % info.modseq)]))
    return out


def select_resync(view, params) -> list[bytes]:
    """What SELECT/EXAMINE (QRESYNC (uidvalidity modseq [known-uids [seq-match]])) adds
    after the usual responses; nothing when UIDVALIDITY changed (§3.2.5: the client must
    then resync from scratch)."""
    uidvalidity, modseq, known, seq_match = params
    if uidvalidity != view.mailbox.uidvalidity:
        return []
    largest = max(view.mailbox.uidnext - 1, view.uids[-1] if view.uids else 0)
    bounds = known.bounds(largest) if known is not None else [(1, largest)]
    out = []
    earlier = vanished_earlier(view.mailbox, view.uids, modseq, bounds, seq_match)
    if earlier is not None:
        out.append(earlier)
    out += changed_fetches(view, modseq, bounds if known is not None else None)
    return out
