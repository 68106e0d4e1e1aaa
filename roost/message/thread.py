"""THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256 §3).

ORDEREDSUBJECT: sort by (base subject, sent date), split into runs of equal subject; the
first message of a run is the parent of the others; runs are ordered by their first
message's sent date. REFERENCES: the message-id linking of RFC 5256 §3 steps 1-6 (link the
References chain without creating loops, the message's parent is its last reference, prune
dummies, sort the root set, merge roots by base subject, sort siblings by sent date). The
sent date falls back to the internal date, and ties fall back to the sequence number.
Output: a list of (number, children) trees, number None for a dummy; `response.thread_tree`
renders them.

Invariants: never raises; every input message appears exactly once in the output; no cycles.
Security: linking refuses loops, and the reference chain is capped at MAX_REFERENCES.
"""

from __future__ import annotations

from roost.message.sort import SortItem

MAX_REFERENCES = 1000


def _date(item: SortItem) -> float:
    return item.data.sent if item.data.sent is not None else item.internal_date


def ordered_subject(items: list[SortItem], use_uid: bool = False) -> list[tuple]:
    ordered = sorted(items, key=lambda i: (i.data.subject, _date(i), i.seq))
    threads: list[tuple[SortItem, list[SortItem]]] = []
    for item in ordered:
        if threads and threads[-1][0].data.subject == item.data.subject:
            threads[-1][1].append(item)
        else:
            threads.append((item, []))
    threads.sort(key=lambda t: (_date(t[0]), t[0].seq))

    def number(item: SortItem) -> int:
        return item.uid if use_uid else item.seq
    return [(number(first), [(number(c), []) for c in rest]) for first, rest in threads]


class _Node:
    __slots__ = ("item", "parent", "children")

    def __init__(self, item: SortItem | None = None):
        self.item = item
        self.parent: _Node | None = None
        self.children: list[_Node] = []

    def is_ancestor_of(self, other: "_Node") -> bool:
        node = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def detach(self) -> None:
        if self.parent is not None:
            self.parent.children.remove(self)
            self.parent = None

    def attach(self, parent: "_Node") -> None:
        self.detach()
        self.parent = parent
        parent.children.append(self)


def _sort_key(node: _Node) -> tuple[float, int]:
    if node.item is not None:
        return _date(node.item), node.item.seq
    if node.children:  # a dummy sorts as its first child (children are sorted first)
        return _sort_key(node.children[0])
    return 0.0, 0


def _sort_tree(nodes: list[_Node]) -> None:
    for node in nodes:
        _sort_tree(node.children)
    nodes.sort(key=_sort_key)


def _prune(nodes: list[_Node], at_root: bool) -> list[_Node]:
    """RFC 5256 §3 step (3): drop empty dummies, promote a dummy's children (at the root only
    when it has a single child)."""
    out: list[_Node] = []
    for node in nodes:
        node.children = _prune(node.children, False)
        for child in node.children:
            child.parent = node
        if node.item is None:
            if not node.children:
                continue
            if not at_root or len(node.children) == 1:
                for child in node.children:
                    child.parent = node.parent
                out.extend(node.children)
                continue
        out.append(node)
    return out


def references(items: list[SortItem], use_uid: bool = False) -> list[tuple]:
    by_id: dict[str, _Node] = {}
    nodes: list[_Node] = []
    for item in sorted(items, key=lambda i: i.seq):
        ident = item.data.message_id
        node = by_id.get(ident) if ident else None
        if node is None or node.item is not None:  # missing or duplicate id: a unique node
            node = _Node(item)
            if ident and ident not in by_id:
                by_id[ident] = node
        else:
            node.item = item
        nodes.append(node)
        chain: list[_Node] = []
        for ref in item.data.references[:MAX_REFERENCES]:  # step 1.B
            ref_node = by_id.get(ref)
            if ref_node is None:
                ref_node = by_id[ref] = _Node()
            chain.append(ref_node)
        for parent, child in zip(chain, chain[1:]):
            if child.parent is None and parent is not child and not child.is_ancestor_of(parent):
                child.attach(parent)
        if chain:  # step 1.C: the last reference is the parent, replacing an older link;
            # the old link goes even when the new one would make a loop (Dovecot, imaptest)
            last = chain[-1]
            node.detach()
            if last is not node and not node.is_ancestor_of(last):
                node.attach(last)
        elif node.parent is not None:
            node.detach()
    roots = [n for n in {id(n): n for n in list(by_id.values()) + nodes}.values() if n.parent is None]
    roots = _prune(roots, True)
    _sort_tree(roots)
    roots = _merge_subjects(roots)
    _sort_tree(roots)

    def render(node: _Node) -> tuple:
        number = None
        if node.item is not None:
            number = node.item.uid if use_uid else node.item.seq
        return number, [render(c) for c in node.children]
    return [render(n) for n in roots]


def _subject_of(node: _Node) -> tuple[str, bool]:
    item = node.item if node.item is not None else (node.children[0].item if node.children else None)
    if item is None:
        return "", False
    return item.data.subject, item.data.is_reply


def _merge_subjects(roots: list[_Node]) -> list[_Node]:
    """RFC 5256 §3 step (5): gather root threads with the same base subject."""
    table: dict[str, _Node] = {}
    for node in roots:
        subject, _ = _subject_of(node)
        if not subject:
            continue
        current = table.get(subject)
        if current is None or (node.item is None and current.item is not None) or \
                (current.item is not None and _subject_of(current)[1] and not _subject_of(node)[1]):
            table[subject] = node
    out: list[_Node] = []
    replaced: dict[int, _Node] = {}
    for node in roots:
        subject, is_reply = _subject_of(node)
        target = table.get(subject) if subject else None
        if target is None or target is node:
            out.append(node)
            continue
        target = replaced.get(id(target), target)
        if target.item is None and node.item is None:
            for child in list(node.children):
                child.attach(target)
        elif target.item is None:
            node.attach(target)
        elif node.item is not None and is_reply and not target.item.data.is_reply:
            node.attach(target)
        else:
            dummy = _Node()
            position = out.index(target) if target in out else None
            target.attach(dummy)
            node.attach(dummy)
            replaced[id(target)] = dummy
            if position is not None:
                out[position] = dummy
            else:
                out.append(dummy)
    return [n for n in out if n.parent is None]
