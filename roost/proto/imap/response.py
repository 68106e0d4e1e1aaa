"""IMAP server responses as bytes (RFC 3501 §7, RFC 9051 §7 and the extensions' data).

Status responses `TAG OK|NO|BAD [CODE args] text`, untagged `* ...`, continuation `+ text`
(§7.1, §7.5); response codes per RFC 3501 §7.1, RFC 5530 (the IMAP response code registry:
TRYCREATE, NONEXISTENT, ALREADYEXISTS, OVERQUOTA, SERVERBUG, AUTHENTICATIONFAILED...),
RFC 4315 APPENDUID/COPYUID, RFC 7162 HIGHESTMODSEQ/MODIFIED/NOMODSEQ/CLOSED, RFC 4469 TOOBIG.
Data responses: FETCH, LIST/LSUB (mailbox names as modified UTF-7 astrings, RFC 3501 §5.1.3,
or UTF-8 quoted strings once UTF8=ACCEPT is enabled, RFC 6855 §3), STATUS, SEARCH, ESEARCH
(RFC 4731 §3.1), SORT, THREAD (RFC 5256 §4), VANISHED (RFC 7162 §3.2.10), ENABLED, ID, QUOTA.
Invariants: every function returns whole CRLF-terminated responses. Security: free text is
stripped of CR, LF and NUL so client input echoed in a reason cannot forge a response.
"""

from __future__ import annotations

import re
import time

from roost.proto.imap.quote import NIL, astring, nstring, string
from roost.proto.imap.seqset import compact
from roost.proto.imap.utf7 import encode_mailbox

_UNSAFE = re.compile(r"[\x00\r\n]")


def _text(text: str) -> bytes:
    return _UNSAFE.sub(" ", text).encode("utf-8", "replace")


def code(name: str, *args: str | bytes) -> bytes:
    """A response code `[NAME args]` (RFC 3501 §7.1)."""
    parts = [name.encode("ascii")] + [a if isinstance(a, bytes) else a.encode("utf-8") for a in args]
    return b"[" + b" ".join(parts) + b"]"


def status(tag: str | None, kind: str, text: str, resp_code: bytes | None = None) -> bytes:
    """`TAG OK [code] text` / `* NO ...` / `* BYE ...` (RFC 3501 §7.1)."""
    head = (tag or "*").encode("ascii", "replace") + b" " + kind.encode("ascii")
    if resp_code:
        head += b" " + resp_code
    return head + b" " + _text(text) + b"\r\n"


def ok(tag: str | None, text: str, resp_code: bytes | None = None) -> bytes:
    return status(tag, "OK", text, resp_code)


def no(tag: str | None, text: str, resp_code: bytes | None = None) -> bytes:
    return status(tag, "NO", text, resp_code)


def bad(tag: str | None, text: str, resp_code: bytes | None = None) -> bytes:
    return status(tag, "BAD", text, resp_code)


def bye(text: str, resp_code: bytes | None = None) -> bytes:
    return status(None, "BYE", text, resp_code)


def continuation(text: str | bytes = b"OK") -> bytes:
    """`+ text` (RFC 3501 §7.5); bytes are sent as given (base64 SASL challenges)."""
    body = text if isinstance(text, bytes) else _text(text)
    return b"+ " + body + b"\r\n" if body else b"+ \r\n"


def untagged(data: bytes | str) -> bytes:
    body = data if isinstance(data, bytes) else data.encode("utf-8")
    return b"* " + body + b"\r\n"


def mailbox(name: str, utf8: bool = False) -> bytes:
    """A mailbox name on the wire (RFC 3501 §5.1.3 mUTF-7, or UTF-8 with UTF8=ACCEPT)."""
    if utf8:
        return astring(name.encode("utf-8")) if name.isascii() else string(name.encode("utf-8"), utf8=True)
    return astring(encode_mailbox(name))


def flag_list(flags) -> bytes:
    return b"(" + " ".join(flags).encode("utf-8") + b")"


def capability(caps: list[str]) -> bytes:
    return untagged("CAPABILITY " + " ".join(caps))


def exists(count: int) -> bytes:
    return untagged(b"%d EXISTS" % count)


def recent(count: int) -> bytes:
    return untagged(b"%d RECENT" % count)


def expunge(seq: int) -> bytes:
    return untagged(b"%d EXPUNGE" % seq)


def vanished(uids: list[int], earlier: bool = False) -> bytes:
    return untagged(b"VANISHED " + (b"(EARLIER) " if earlier else b"") + compact(uids).encode())


def flags(flag_names) -> bytes:
    return untagged(b"FLAGS " + flag_list(flag_names))


def fetch(seq: int, items: list[tuple[str, bytes]]) -> bytes:
    """`* n FETCH (label value ...)`; values are already IMAP-encoded bytes."""
    body = b" ".join(label.encode("ascii") + b" " + value for label, value in items)
    return untagged(b"%d FETCH (" % seq + body + b")")


def list_entry(kind: str, attributes, separator: str | None, name: str, utf8: bool = False,
               extended: list[bytes] | None = None) -> bytes:
    """`* LIST (\\HasNoChildren) "." INBOX` (RFC 3501 §7.2.2, RFC 5258 §3.5 extended items)."""
    sep = NIL if separator is None else string(separator.encode("ascii"))
    line = kind.encode() + b" " + flag_list(attributes) + b" " + sep + b" " + mailbox(name, utf8)
    if extended:
        line += b" (" + b" ".join(extended) + b")"
    return untagged(line)


def status_data(name: str, items: list[tuple[str, int]], utf8: bool = False) -> bytes:
    body = " ".join(f"{k} {v}" for k, v in items).encode()
    return untagged(b"STATUS " + mailbox(name, utf8) + b" (" + body + b")")


def search(numbers: list[int], highest_modseq: int | None = None) -> bytes:
    line = b"SEARCH" + b"".join(b" %d" % n for n in numbers)
    if highest_modseq is not None and numbers:  # RFC 7162 §3.1.5
        line += b" (MODSEQ %d)" % highest_modseq
    return untagged(line)


def esearch(tag: str, uid: bool, results: list[tuple[str, str | int]]) -> bytes:
    """`* ESEARCH (TAG "a") UID MIN 1 COUNT 3` (RFC 4731 §3.1)."""
    line = b"ESEARCH (TAG " + string(tag.encode()) + b")"
    if uid:
        line += b" UID"
    for name, value in results:
        line += f" {name} {value}".encode()
    return untagged(line)


def sort(numbers: list[int]) -> bytes:
    return untagged(b"SORT" + b"".join(b" %d" % n for n in numbers))


def thread_tree(nodes) -> bytes:
    """RFC 5256 §4 thread list; `nodes` are (number, children) trees with number None for a
    dummy parent. A chain of single children is written flat: (1 2 3)."""
    def render(node) -> bytes:
        number, children = node
        parts: list[bytes] = []
        while True:
            if number is not None:
                parts.append(b"%d" % number)
            if len(children) == 1:
                number, children = children[0]
                continue
            break
        out = b" ".join(parts)
        if children:
            sub = b"".join(render(child) for child in children)
            out = out + (b" " if out else b"") + sub
        return b"(" + out + b")"
    return untagged(b"THREAD " + b"".join(render(n) for n in nodes) if nodes else b"THREAD")


def enabled(caps: list[str]) -> bytes:
    return untagged("ENABLED" + "".join(" " + c for c in caps))


def id_data(params: list[tuple[str, str | None]] | None) -> bytes:
    if not params:
        return untagged(b"ID NIL")
    body = b" ".join(string(k.encode()) + b" " + nstring(None if v is None else v.encode())
                     for k, v in params)
    return untagged(b"ID (" + body + b")")


def quota(root: str, resources: list[tuple[str, int, int]]) -> bytes:
    body = " ".join(f"{n} {used} {limit}" for n, used, limit in resources)
    return untagged(b"QUOTA " + astring(root.encode()) + b" (" + body.encode() + b")")


def quota_root(mailbox_name: str, roots: list[str], utf8: bool = False) -> bytes:
    return untagged(b"QUOTAROOT " + mailbox(mailbox_name, utf8) +
                    b"".join(b" " + astring(r.encode()) for r in roots))


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def internal_date(timestamp: float) -> bytes:
    """RFC 3501 §9 date-time `"dd-Mon-yyyy hh:mm:ss +zzzz"` in the server's local zone
    (two-digit day with a leading zero, as Dovecot writes it)."""
    local = time.localtime(timestamp)
    offset = local.tm_gmtoff // 60
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    return (f'"{local.tm_mday:02d}-{_MONTHS[local.tm_mon - 1]}-{local.tm_year:04d} '
            f'{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} '
            f'{sign}{offset // 60:02d}{offset % 60:02d}"').encode("ascii")


SYSTEM_FLAG_ORDER = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")


def message_flags(flag_names, keywords, recent: bool = False, keyword_order=None) -> bytes:
    """FETCH FLAGS value in Dovecot's order (observed): system flags in the order \\Answered
    \\Flagged \\Deleted \\Seen \\Draft \\Recent, then keywords in the mailbox's keyword order
    (`keyword_order`, e.g. the FLAGS response; alphabetical when not given)."""
    present = {f.lower() for f in flag_names}
    if recent:
        present.add("\\recent")
    out = [f for f in SYSTEM_FLAG_ORDER if f.lower() in present]
    if keyword_order is not None:
        rank = {k: i for i, k in enumerate(keyword_order)}
        out += sorted(keywords, key=lambda k: (rank.get(k, len(rank)), k))
    else:
        out += sorted(keywords)
    return flag_list(out)


def esearch_items(numbers: list[int], returns: tuple[str, ...], sorted_result: bool = False):
    """The ESEARCH result items for RETURN options (RFC 4731 §3.1, RFC 5267 §3.2 for ESORT),
    in Dovecot's order MIN MAX ALL COUNT (observed); None when only SAVE was asked, which
    gives no ESEARCH response (RFC 5182 §2.1). Empty results carry only COUNT 0."""
    wanted = set(returns)
    if wanted <= {"SAVE"}:
        return None
    items: list[tuple[str, str | int]] = []
    if numbers:
        if "MIN" in wanted:
            items.append(("MIN", numbers[0] if sorted_result else min(numbers)))
        if "MAX" in wanted:
            items.append(("MAX", numbers[-1] if sorted_result else max(numbers)))
        if "ALL" in wanted:
            items.append(("ALL", compact(numbers if sorted_result else sorted(numbers))))
    if "COUNT" in wanted:
        items.append(("COUNT", len(numbers)))
    return items


def select_responses(tag: str, *, keywords=(), exists: int, recent: int, first_unseen: int | None,
                     uidvalidity: int, uidnext: int, readonly: bool, examine: bool = False,
                     highestmodseq: int | None = None, previous_closed: bool = False,
                     can_create_keywords: bool = True) -> list[bytes]:
    """SELECT / EXAMINE answers in Dovecot 2.3's form and order (RFC 3501 §6.3.1-2, RFC 7162
    §3.1.2.1 HIGHESTMODSEQ and §3.2.11 CLOSED; observed): [CLOSED] when a mailbox was already
    selected, FLAGS, PERMANENTFLAGS (empty when read-only), EXISTS, RECENT, [UNSEEN n] when a
    message is unseen, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ with CONDSTORE, then the tagged OK."""
    flag_names = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", *keywords]
    out = []
    if previous_closed:
        out.append(ok(None, "Previous mailbox closed.", code("CLOSED")))
    out.append(flags(flag_names))
    if readonly:
        out.append(ok(None, "Read-only mailbox.", code("PERMANENTFLAGS", b"()")))
    else:
        permanent = flag_names + (["\\*"] if can_create_keywords else [])
        out.append(ok(None, "Flags permitted.", code("PERMANENTFLAGS", flag_list(permanent))))
    out += [untagged(b"%d EXISTS" % exists), untagged(b"%d RECENT" % recent)]
    if first_unseen is not None:
        out.append(ok(None, "First unseen.", code("UNSEEN", str(first_unseen))))
    out.append(ok(None, "UIDs valid", code("UIDVALIDITY", str(uidvalidity))))
    out.append(ok(None, "Predicted next UID", code("UIDNEXT", str(uidnext))))
    if highestmodseq is not None:
        out.append(ok(None, "Highest", code("HIGHESTMODSEQ", str(highestmodseq))))
    verb = "Examine" if examine else "Select"
    out.append(ok(tag, f"{verb} completed.", code("READ-ONLY" if readonly else "READ-WRITE")))
    return out


def namespace(personal=(("", "."),), other=None, shared=None) -> bytes:
    """`* NAMESPACE (("" ".")) NIL NIL` (RFC 2342 §5): (prefix, separator) per namespace."""
    def group(spaces) -> bytes:
        if not spaces:
            return NIL
        return b"(" + b"".join(b"(" + string(p.encode("utf-8")) + b" " +
                               (string(s.encode()) if s else NIL) + b")" for p, s in spaces) + b")"
    return untagged(b"NAMESPACE " + group(personal) + b" " + group(other) + b" " + group(shared))
