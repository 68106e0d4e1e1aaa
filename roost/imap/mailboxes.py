"""LIST, LSUB and STATUS answers over the store's mailbox list (RFC 3501 §6.3.8-§6.3.10,
RFC 5258 LIST-EXTENDED, RFC 6154 SPECIAL-USE, RFC 5819 LIST-STATUS, RFC 8438 STATUS=SIZE).

Pattern matching (§6.3.8): the reference is prefixed to the pattern; `*` matches anything,
`%` anything but the hierarchy separator; INBOX matches case-insensitively. LIST "" ""
answers the separator with `\\Noselect` and an empty name. Attributes: the store's
(`\\HasChildren`/`\\HasNoChildren`, `\\Noselect`) plus the special-use flag, and
`\\Subscribed` when RETURN (SUBSCRIBED) or the SUBSCRIBED selection asks for it.

Invariants: names are the store's Unicode names; the wire encoding (mUTF-7 or UTF-8) is the
response module's business.
Security: patterns are matched with a linear-time matcher (no regular expression built from
client text), so `%*%*%*...` cannot blow up.
"""

from __future__ import annotations

from roost.imap.recent import count_recent
from roost.proto.imap import response


def pattern_matches(pattern: str, name: str, separator: str) -> bool:
    """RFC 3501 §6.3.8 wildcard match: `*` any run, `%` any run without the separator.
    A set of reachable positions is carried through the pattern: O(len(pattern) * len(name))
    for `*`, at most quadratic in the name for `%`."""
    if name.upper().startswith("INBOX") and pattern.upper().startswith("INBOX"):
        name, pattern = "INBOX" + name[5:], "INBOX" + pattern[5:]
    size = len(name)
    reach = [False] * (size + 1)
    reach[0] = True
    for char in pattern:
        new = [False] * (size + 1)
        if char == "*":
            seen = False
            for index in range(size + 1):
                seen = seen or reach[index]
                new[index] = seen
        elif char == "%":
            for index in range(size + 1):
                if reach[index] and not new[index]:
                    new[index] = True
                    cursor = index
                    while cursor < size and name[cursor] != separator:
                        cursor += 1
                        new[cursor] = True
        else:
            for index in range(size):
                if reach[index] and name[index] == char:
                    new[index + 1] = True
        reach = new
        if not any(reach):
            return False
    return reach[size]


def list_attributes(info, subscribed: bool, with_subscribed: bool,
                    with_special_use: bool = True) -> list[str]:
    attributes = sorted(info.attributes)
    if with_subscribed and subscribed:
        attributes.append("\\Subscribed")
    if with_special_use and info.special_use:
        attributes.append(info.special_use)
    return attributes


def list_responses(store, command, utf8: bool) -> list[bytes]:
    separator = store.separator
    if command.name == "LIST" and not command.extended and command.patterns == ("",):
        return [response.list_entry("LIST", ["\\Noselect"], separator, "", utf8)]
    subscribed = set(store.subscriptions())
    kind = command.name
    only_subscribed = kind == "LSUB" or "SUBSCRIBED" in command.selection
    show_subscribed = "SUBSCRIBED" in command.returns or "SUBSCRIBED" in command.selection
    patterns = [command.reference + pattern for pattern in command.patterns]

    def matches(name: str) -> bool:
        return any(pattern_matches(p, name, separator) for p in patterns)

    infos = {info.name: info for info in store.list_mailboxes()}
    entries: dict[str, tuple[list[str], list[bytes]]] = {}
    for name, info in infos.items():
        if not matches(name):
            continue
        if only_subscribed and name not in subscribed:
            continue
        if "SPECIAL-USE" in command.selection and not info.special_use:
            continue
        attributes = list_attributes(info, name in subscribed, show_subscribed, kind == "LIST")
        if kind == "LSUB":
            attributes = [a for a in attributes if a not in ("\\HasChildren", "\\HasNoChildren")]
        entries[name] = (attributes, [])
    if only_subscribed:
        for name in sorted(subscribed - set(infos)):  # subscribed, but gone
            if matches(name):
                entries[name] = ((["\\NonExistent", "\\Subscribed"] if kind == "LIST"
                                  else ["\\Noselect"]), [])
        # RFC 3501 §6.3.9 (LSUB with %) and RFC 5258 §3.5 (RECURSIVEMATCH): an ancestor that
        # matches, of a subscribed mailbox that does not, is reported.
        parents: list[str] = []
        for name in sorted(subscribed):
            if matches(name) or not separator:
                continue
            parts = name.split(separator)
            for depth in range(1, len(parts)):
                ancestor = separator.join(parts[:depth])
                if matches(ancestor) and ancestor not in parents:
                    parents.append(ancestor)
        for ancestor in parents:
            if kind == "LSUB":
                if ancestor not in entries:
                    entries[ancestor] = (["\\Noselect"], [])
            elif "RECURSIVEMATCH" in command.selection:
                if ancestor in entries:
                    entries[ancestor][1].append(b'CHILDINFO ("SUBSCRIBED")')
                else:
                    info = infos.get(ancestor)
                    attributes = (list_attributes(info, False, False, True) if info is not None
                                  else ["\\NonExistent"])
                    entries[ancestor] = (attributes, [b'CHILDINFO ("SUBSCRIBED")'])
    return [response.list_entry(kind, attributes, separator, name, utf8, extended or None)
            for name, (attributes, extended) in entries.items()]


def status_items(mailbox, items, size_of=None) -> list[tuple[str, int]]:
    """STATUS values (RFC 3501 §6.3.10, RFC 7162 HIGHESTMODSEQ, RFC 8438 SIZE, RFC 9051
    DELETED) in the order asked."""
    messages = mailbox.messages()
    values = {
        "MESSAGES": lambda: len(messages),
        "RECENT": lambda: count_recent(mailbox),
        "UIDNEXT": lambda: mailbox.uidnext,
        "UIDVALIDITY": lambda: mailbox.uidvalidity,
        "UNSEEN": lambda: sum(1 for m in messages if "\\Seen" not in m.flags),
        "HIGHESTMODSEQ": lambda: mailbox.highestmodseq,
        "SIZE": lambda: sum(m.size for m in messages),
        "DELETED": lambda: sum(1 for m in messages if "\\Deleted" in m.flags),
    }
    return [(item, values[item]()) for item in items if item in values]
