"""SEARCH / SORT / THREAD argument grammar (RFC 3501 §6.4.4, RFC 9051 §6.4.4, RFC 4731
ESEARCH RETURN, RFC 5182 `$`, RFC 5256 SORT/THREAD, RFC 5957 DISPLAYFROM/DISPLAYTO,
RFC 7162 §3.1.5 MODSEQ, RFC 5032 OLDER/YOUNGER).

`[CHARSET name]` decodes every string argument; US-ASCII and UTF-8 always work, any other
charset Python knows is accepted (Dovecot converts with iconv), an unknown one raises
BadCharset (tagged `NO [BADCHARSET (US-ASCII UTF-8)]`, RFC 3501 §6.4.4).
Invariants: raises only ArgError/BadCharset. Security: nesting of NOT/OR/lists is bounded by
MAX_SEARCH_DEPTH, the number of keys by MAX_KEYS.
"""

from __future__ import annotations

import codecs

from roost.proto.imap import searchkeys as k
from roost.proto.imap.args import ArgError, Args
from roost.proto.imap.lexer import ListArg
from roost.proto.imap.seqset import SequenceSet

MAX_SEARCH_DEPTH = 32
MAX_KEYS = 10_000
RETURN_OPTIONS = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}
SORT_KEYS = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
THREAD_ALGORITHMS = {"ORDEREDSUBJECT", "REFERENCES"}
_HEADER_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
_DATE_KEYS = {"BEFORE": ("before", False), "ON": ("on", False), "SINCE": ("since", False),
              "SENTBEFORE": ("before", True), "SENTON": ("on", True), "SENTSINCE": ("since", True)}


class BadCharset(Exception):
    pass


def _charset(name: str) -> str:
    lower = name.lower()
    if lower in ("utf-8", "us-ascii", "utf8"):
        return "utf-8"  # US-ASCII strings are a subset; 8-bit in them is still decodable
    try:
        info = codecs.lookup(lower)
    except (LookupError, ValueError):  # unknown charset, or a name Python refuses (NUL)
        raise BadCharset(name) from None
    if not getattr(info, "_is_text_encoding", True):  # base64, zlib...: codecs, not charsets
        raise BadCharset(name)
    return lower


class _SearchReader:
    def __init__(self, charset: str):
        self.charset = charset
        self.count = 0

    def program(self, args: Args) -> object:
        keys = []
        while args.more():
            keys.append(self.key(args, 0))
        if not keys:
            raise ArgError("Missing search parameters")
        return keys[0] if len(keys) == 1 else k.And(tuple(keys))

    def key(self, args: Args, depth: int) -> object:
        self.count += 1
        if depth > MAX_SEARCH_DEPTH or self.count > MAX_KEYS:
            raise ArgError("Search program too complex")
        item = args.peek()
        if isinstance(item, ListArg):
            inner = args.list()
            keys = []
            while inner.more():
                keys.append(self.key(inner, depth + 1))
            if not keys:
                raise ArgError("Empty search list")
            return keys[0] if len(keys) == 1 else k.And(tuple(keys))
        word = args.atom()
        name = word.upper()
        if name == "ALL":
            return k.All()
        if name in k.SYSTEM_FLAG_KEYS:
            return k.Flag(k.SYSTEM_FLAG_KEYS[name], True)
        if name.startswith("UN") and name[2:] in k.SYSTEM_FLAG_KEYS:
            return k.Flag(k.SYSTEM_FLAG_KEYS[name[2:]], False)
        if name in ("KEYWORD", "UNKEYWORD"):
            return k.Flag(args.atom(), name == "KEYWORD")
        if name == "NEW":  # RFC 3501: RECENT UNSEEN
            return k.And((k.Recent(), k.Flag("\\Seen", False)))
        if name == "OLD":
            return k.Not(k.Recent())
        if name == "RECENT":
            return k.Recent()
        if name in _HEADER_KEYS:
            kind = "compress" if name == "SUBJECT" else "address"
            return k.Header(_HEADER_KEYS[name], args.text(self.charset), kind)
        if name == "HEADER":
            field = args.string_bytes().decode("latin-1")
            return k.Header(field, args.text(self.charset))
        if name == "BODY":
            return k.Body(args.text(self.charset))
        if name == "TEXT":
            return k.Text(args.text(self.charset))
        if name in _DATE_KEYS:
            op, sent = _DATE_KEYS[name]
            return k.Date(op, sent, args.date())
        if name in ("LARGER", "SMALLER"):
            return k.Size(name == "LARGER", args.number64())
        if name == "NOT":
            return k.Not(self.key(args, depth + 1))
        if name == "OR":
            return k.Or(self.key(args, depth + 1), self.key(args, depth + 1))
        if name == "UID":
            return k.Uid(_sequence(args.atom()))
        if name == "MODSEQ":  # RFC 7162 §3.1.5: [entry-name entry-type] mod-sequence-valzer
            if args.peek_atom() is None or not args.peek_atom().isdigit():
                args.string_bytes()
                entry_type = args.atom().lower()
                if entry_type not in ("priv", "shared", "all"):
                    raise ArgError("Invalid MODSEQ entry type")
            return k.ModSeq(args.number64())
        if name in ("OLDER", "YOUNGER"):
            return k.Within(name == "OLDER", args.number(nonzero=True))
        try:
            return k.Sequence(SequenceSet.parse(word))
        except ValueError:
            raise ArgError(f"Unknown argument {name}") from None


def _sequence(text: str) -> SequenceSet:
    try:
        return SequenceSet.parse(text)
    except ValueError:
        raise ArgError("Invalid messageset") from None


def parse_charset_and_program(args: Args, charset_required: bool = False) -> tuple[str, object]:
    charset = "utf-8"
    if charset_required or args.peek_atom() == "CHARSET":
        if not charset_required:
            args.next()
        name = args.text("latin-1")
        try:
            charset = _charset(name)
        except BadCharset:  # the program is read first: its syntax errors are BAD (Dovecot)
            _SearchReader("latin-1").program(args)
            raise
    return charset, _SearchReader(charset).program(args)


def parse_return(args: Args) -> tuple[str, ...] | None:
    """ESEARCH `RETURN (opts)` (RFC 4731 §3.1); `RETURN ()` means ALL."""
    if args.peek_atom() != "RETURN":
        return None
    args.next()
    opts = args.list()
    out = []
    while opts.more():
        opt = opts.atom().upper()
        if opt not in RETURN_OPTIONS:
            raise ArgError(f"Unknown return option: {opt}")
        out.append(opt)
    return tuple(out) if out else ("ALL",)


def parse_search(args: Args) -> tuple[str, object, tuple[str, ...] | None]:
    returns = parse_return(args)
    charset, program = parse_charset_and_program(args)
    return charset, program, returns


def parse_sort(args: Args) -> tuple[tuple[tuple[str, bool], ...], str, object, tuple[str, ...] | None]:
    """SORT [RETURN (..)] (criteria) charset search-key... (RFC 5256 §3, RFC 5267 ESORT)."""
    returns = parse_return(args)
    crit_args = args.list()
    criteria = []
    reverse = False
    while crit_args.more():
        word = crit_args.atom().upper()
        if word == "REVERSE":
            reverse = True
            continue
        if word not in SORT_KEYS:
            raise ArgError(f"Unknown sort argument: {word}")
        criteria.append((word, reverse))
        reverse = False
    if reverse or not criteria:
        raise ArgError("Invalid sort criteria")
    charset, program = parse_charset_and_program(args, charset_required=True)
    return tuple(criteria), charset, program, returns


def parse_thread(args: Args) -> tuple[str, str, object]:
    algorithm = args.atom().upper()
    if algorithm not in THREAD_ALGORITHMS:
        raise ArgError(f"Unknown thread algorithm: {algorithm}")
    charset, program = parse_charset_and_program(args, charset_required=True)
    return algorithm, charset, program
