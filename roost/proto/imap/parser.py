"""Command grammar: generic arguments of one framed command → a typed Command (RFC 3501 §6,
§9; RFC 9051 §6, §9; extensions listed in roost.proto.imap.commands).

Order of checks follows Dovecot 2.3 (observed): the tag (`* BAD Error in IMAP tag: Invalid
tag`), the command name (`TAG BAD Error in IMAP command: Invalid command name`), whether the
state allows it (`TAG BAD No mailbox selected`), then the arguments (`TAG BAD Error in IMAP
command NAME: reason`). An unknown CHARSET is `TAG NO [BADCHARSET (US-ASCII UTF-8)]` (after
the program parsed). Commands Dovecot reads lazily (_LAZY) ignore whatever follows their
arguments, even malformed; the others must end exactly where their grammar ends.
Invariants: `parse_command` raises only CommandError. Security: all limits are enforced by
the argument readers (lexer/args/searchparse/fetchatt); no value is trusted unchecked.
"""

from __future__ import annotations

import re

from roost.proto.imap import commands as c
from roost.proto.imap.args import ArgError, ArgRefused, Args, parse_date_time, parse_flag
from roost.proto.imap.fetchatt import parse_items, parse_modifiers
from roost.proto.imap.lexer import Atom, ListArg, Literal, Quoted, tokenize_lenient
from roost.proto.imap.searchparse import BadCharset, parse_search, parse_sort, parse_thread
from roost.proto.imap.seqset import STAR, SequenceSet
from roost.proto.imap.states import UID_COMMANDS, State, check_allowed
from roost.proto.imap.utf7 import decode_mailbox

TAG = re.compile(r'\A[^\x00-\x20\x7f(){%*"\\+]+\Z')  # RFC 3501 §9 tag: astring-chars minus "+"
COMMAND_NAME = re.compile(r"\A[A-Za-z]+\Z")
STATUS_ITEMS = {"MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
                "DELETED", "APPENDLIMIT"}
MAX_APPEND_MESSAGES = 1000
# commands whose extra arguments Dovecot never reads (observed: `EXPUNGE x (`, `SUBSCRIBE a b`,
# `COPY 1 box junk`, `ID junk` are all accepted); the others must end where their grammar does
_LAZY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "UNSELECT",
                   "NAMESPACE", "IDLE", "EXPUNGE", "SUBSCRIBE", "UNSUBSCRIBE", "DELETE", "CREATE",
                   "RENAME", "STATUS", "COPY", "MOVE", "GETQUOTAROOT", "GETQUOTA"})


class CommandError(Exception):
    """A command to refuse: `tag` (None → `*`), `kind` BAD/NO, `text` after the kind."""

    def __init__(self, tag: str | None, text: str, kind: str = "BAD"):
        super().__init__(text)
        self.tag = tag
        self.text = text
        self.kind = kind

    def reply(self) -> bytes:
        return f"{self.tag or '*'} {self.kind} {self.text}\r\n".encode("utf-8", "replace")


def split_tag(line: bytes) -> tuple[str | None, str | None]:
    """(tag, command name) of a command's first line when they are well formed."""
    parts = line.split(b" ", 2)
    try:
        tag = parts[0].decode("ascii")
    except UnicodeDecodeError:
        return None, None
    if not TAG.match(tag):
        return None, None
    name = parts[1].decode("ascii", "replace") if len(parts) > 1 else ""
    return tag, name


def parse_command(segments: list[bytes], literals: list, state: State, utf8: bool = False,
                  enabled: frozenset[str] = frozenset()) -> c.Command:
    """Parse one framed command; `enabled` are the ENABLEd extensions (RFC 5161)."""
    tag, name = split_tag(segments[0])
    if tag is None:
        raise CommandError(None, "Error in IMAP tag: Invalid tag")
    if not name or not COMMAND_NAME.match(name):
        raise CommandError(tag, "Error in IMAP command: Invalid command name")
    name = name.upper()
    refusal = check_allowed(name, state)
    if refusal is not None and refusal != "No mailbox selected":
        raise CommandError(tag, f"Error in IMAP command {name}: {refusal}")
    items, lex_error = tokenize_lenient(segments, literals)
    if len(items) < 2:
        raise CommandError(tag, f"Error in IMAP command {name}: {lex_error or 'Invalid arguments'}")
    items = items[2:]
    if lex_error is not None and name not in _LAZY:  # these read every argument
        raise CommandError(tag, f"Error in IMAP command {name}: {lex_error}")
    if refusal is not None:  # the arguments were read first (Dovecot, observed)
        raise CommandError(tag, refusal)
    uid = False
    args = Args(items, utf8, lex_error)
    try:
        if name == "UID":
            sub = args.atom().upper()
            if sub not in UID_COMMANDS:
                raise ArgError("Unknown UID command " + sub)
            name, uid = sub, True
        builder = _BUILDERS.get(name)
        if builder is None:
            raise ArgError("Unknown command")
        command = builder(tag, name, uid, args)
    except ArgRefused as error:
        raise CommandError(tag, str(error), "NO") from None
    except ArgError as error:
        label = f"UID {name}" if uid else name
        if isinstance(error, QresyncArgError) and "QRESYNC" not in enabled:
            error = ArgError("QRESYNC not enabled")  # Dovecot checks that first (observed)
        raise CommandError(tag, f"Error in IMAP command {label}: {error}") from None
    except BadCharset:
        raise CommandError(tag, "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset", "NO") from None
    if isinstance(command, c.Fetch) and command.vanished and "QRESYNC" not in enabled:
        raise CommandError(tag, f"Error in IMAP command UID {name}: QRESYNC not enabled")
    if isinstance(command, c.Select) and command.qresync and "QRESYNC" not in enabled:
        # RFC 7162 §3.2.5: "MUST respond with a tagged BAD" before ENABLE QRESYNC
        raise CommandError(tag, f"Error in IMAP command {name}: QRESYNC not enabled")
    return command


def _simple(tag, name, uid, args):
    # Dovecot ignores the arguments of argument-less commands (observed: CAPABILITY x is OK)
    return c.Command(tag, name, uid)


def _login(tag, name, uid, args):
    user, password = args.string_bytes(), args.string_bytes()
    args.end()
    return c.Login(tag, name, uid, user, password)


def _authenticate(tag, name, uid, args):
    mechanism = args.atom().upper()
    initial = args.string_bytes() if args.more() else None  # SASL-IR (RFC 4959 §3)
    args.end()
    return c.Authenticate(tag, name, uid, mechanism, initial)


def _select(tag, name, uid, args):
    mailbox = args.mailbox()
    condstore, qresync = False, None
    if args.more():
        params = args.list()
        while params.more():
            param = params.atom().upper()
            if param == "CONDSTORE":
                condstore = True
            elif param == "QRESYNC":  # RFC 7162 §3.2.5
                qresync = _qresync_parameters(params)
            else:
                raise ArgError(f"Unknown SELECT parameter: {param}")
    args.end()
    return c.Select(tag, name, uid, mailbox, name == "EXAMINE", condstore, qresync)


class QresyncArgError(ArgError):
    """Malformed QRESYNC select parameters (refused as "not enabled" before ENABLE)."""


def _qresync_parameters(params) -> tuple:
    """`(uidvalidity mod-sequence-value [known-uids] [(known-seqs known-uids)])` (RFC 7162
    §3.2.5, §7 select-param: known-uids and the seq-match sets hold no `*`), with Dovecot
    2.3's reason for each malformed part (observed)."""
    if not isinstance(params.peek(), ListArg):
        raise QresyncArgError("QRESYNC parameters missing")
    q = params.list()
    try:
        # Dovecot takes any unsigned 64-bit MODSEQ here (observed), past RFC 7162's 63 bits
        validity, modseq = q.number(), q.number(limit=2**64 - 1)
    except ArgError:
        raise QresyncArgError("Invalid QRESYNC parameters") from None
    known = match = None
    if q.peek_atom() is not None:
        known = _uid_set(q.atom(), "known-uids")
    if isinstance(q.peek(), ListArg):
        m = q.list()
        seqs = _uid_set(m.atom() if m.peek_atom() is not None else "", "known-sequence-set")
        uids = _uid_set(m.atom() if m.peek_atom() is not None else "", "known-uid-set")
        if m.more() or _count(seqs) != _count(uids):
            raise QresyncArgError("Invalid QRESYNC sets")
        match = (seqs, uids)
    if q.more():
        raise QresyncArgError("Invalid QRESYNC parameters")
    return validity, modseq, known, match


def _uid_set(text: str, what: str) -> SequenceSet:
    try:
        found = SequenceSet.parse(text)
    except ValueError:
        found = None
    if found is None or found.saved or any(STAR in pair for pair in found.ranges):
        raise QresyncArgError(f"Invalid QRESYNC {what}")
    return found


def _count(numbers: SequenceSet) -> int:
    return sum(abs(high - low) + 1 for low, high in numbers.ranges)


def _mailbox_only(tag, name, uid, args):
    mailbox = args.mailbox()  # anything after it is ignored (_LAZY)
    return c.MailboxCommand(tag, name, uid, mailbox)


def _create(tag, name, uid, args):
    mailbox = args.mailbox()
    uses: list[str] = []
    following = args.peek()
    if isinstance(following, ListArg) and following.items and isinstance(following.items[0], Atom) \
            and following.items[0].value.upper() == "USE":  # RFC 6154 §3: (USE (\Sent ...))
        params = args.list()
        params.next()
        uses = [a.value for a in params.list().items if isinstance(a, Atom)]
    return c.Create(tag, name, uid, mailbox, tuple(uses))  # other arguments are ignored


def _rename(tag, name, uid, args):
    old, new = args.mailbox(), args.mailbox()
    return c.Rename(tag, name, uid, old, new)


def _pattern(args: Args) -> str:
    raw = args.string_bytes()
    if args.utf8:
        return raw.decode("utf-8", "replace")
    try:
        return decode_mailbox(raw)
    except ValueError:
        return raw.decode("latin-1")


def _list(tag, name, uid, args):
    selection: set[str] = set()
    extended = False
    if name == "LIST" and isinstance(args.peek(), ListArg):  # RFC 5258 §3 selection options
        extended = True
        sel = args.list()
        while sel.more():
            selection.add(sel.atom().upper())
        unknown = selection - {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
        if unknown:
            raise ArgError(f"List selection option unknown: {sorted(unknown)[0]}")
        if selection == {"RECURSIVEMATCH"} or ("RECURSIVEMATCH" in selection and
                                                 not selection & {"SUBSCRIBED", "SPECIAL-USE"}):
            raise ArgError("RECURSIVEMATCH must not be the only selection option")
    reference = _pattern(args)
    patterns: list[str] = []
    if isinstance(args.peek(), ListArg):  # several patterns; Dovecot takes them for LSUB too
        extended = name == "LIST"
        plist = args.list()
        while plist.more():
            patterns.append(_pattern(plist))
    else:
        patterns.append(_pattern(args))
    returns: set[str] = set()
    status_items: list[str] = []
    if name == "LIST" and args.peek_atom() == "RETURN":
        extended = True
        args.next()
        opts = args.list()
        while opts.more():
            opt = opts.atom().upper()
            if opt == "STATUS":  # RFC 5819
                status_items = _status_items(opts.list())
            elif opt not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "MYRIGHTS"):
                raise ArgError(f"Unknown LIST return option: {opt}")
            returns.add(opt)
    args.end()
    return c.ListCommand(tag, name, uid, reference, tuple(patterns), frozenset(selection),
                         frozenset(returns), tuple(status_items), extended)


def _status_items(items: Args) -> list[str]:
    out = []
    while items.more():
        item = items.atom().upper()
        if item not in STATUS_ITEMS:
            raise ArgError(f"Invalid status item {item}")
        out.append(item)
    if not out:
        raise ArgError("Empty status list")
    return out


def _status(tag, name, uid, args):
    mailbox = args.mailbox()
    items = _status_items(args.list())
    return c.Status(tag, name, uid, mailbox, tuple(items))


def _append(tag, name, uid, args):
    mailbox = args.mailbox()
    messages: list[c.AppendMessage] = []
    while True:  # RFC 3502 MULTIAPPEND: repeated [flags] [date-time] literal
        flags: list[str] = []
        when = None
        if isinstance(args.peek(), ListArg):
            flags = args.flag_list()
        if isinstance(args.peek(), Quoted):
            when = parse_date_time(args.next().value.decode("latin-1"))
            if when is None:
                raise ArgError("Invalid internal date")
        item = args.next()
        utf8 = False
        if isinstance(item, Atom) and item.value.upper() == "UTF8":  # RFC 6855 §4
            inner = args.list()
            item = inner.next()
            inner.end()
            utf8 = True
            if not isinstance(item, Literal) or not item.binary:
                raise ArgError("UTF8 requires a literal8")
        if not isinstance(item, Literal):
            raise ArgError("Messages must be sent as literals")
        messages.append(c.AppendMessage(tuple(flags), when, item.value, item.binary, utf8))
        if not args.more():
            break
        if len(messages) >= MAX_APPEND_MESSAGES:
            raise ArgError("Too many messages")
    return c.Append(tag, name, uid, mailbox, tuple(messages))


def _enable(tag, name, uid, args):
    caps = []
    while args.more():  # an empty ENABLE is OK (Dovecot, observed)
        caps.append(args.atom().upper())
    return c.Enable(tag, name, uid, tuple(caps))


def _id(tag, name, uid, args):
    if not isinstance(args.peek(), ListArg):  # NIL, nothing, or junk: Dovecot answers anyway
        return c.Id(tag, name, uid, None)
    plist = args.list()
    params = []
    while plist.more():  # RFC 2971 §3.3: (field value ...) with at most 30 pairs
        key = plist.string_bytes().decode("utf-8", "replace")
        if not plist.more():  # a key without value is ignored, as Dovecot does (observed)
            break
        value = plist.nstring_bytes()
        params.append((key, None if value is None else value.decode("utf-8", "replace")))
        if len(params) > 30:
            raise ArgError("Too many ID parameters")
    return c.Id(tag, name, uid, tuple(params))


def _compress(tag, name, uid, args):
    mechanism = args.atom().upper()
    args.end()
    return c.Compress(tag, name, uid, mechanism)


def _sequence(args: Args) -> SequenceSet:
    text = args.atom()
    try:
        return SequenceSet.parse(text)
    except ValueError:
        if text[:1].isdigit() or text[:1] in ("*", "$"):
            raise ArgError("Invalid messageset") from None
        raise ArgError("Invalid arguments") from None


def _expunge(tag, name, uid, args):
    uids = _sequence(args) if uid else None
    return c.Expunge(tag, name, uid, uids)


def _copy(tag, name, uid, args):
    sequence = _sequence(args)
    mailbox = args.mailbox()
    return c.Copy(tag, name, uid, sequence, mailbox)


def _store(tag, name, uid, args):
    sequence = _sequence(args)
    unchangedsince = None
    if isinstance(args.peek(), ListArg):  # RFC 7162 §3.1.3 (UNCHANGEDSINCE n)
        mods = args.list()
        if mods.atom().upper() != "UNCHANGEDSINCE":
            raise ArgError("Unknown STORE modifier")
        unchangedsince = mods.number64()
        mods.end()
    action = args.atom().upper()
    silent = action.endswith(".SILENT")
    base = action[:-7] if silent else action
    modes = {"FLAGS": "replace", "+FLAGS": "add", "-FLAGS": "remove"}
    if base not in modes:
        raise ArgError("Invalid arguments")
    if isinstance(args.peek(), ListArg):
        flags = args.flag_list()
        args.end()
    else:
        flags = []
        while args.more():
            flags.append(parse_flag(args.atom()))
    return c.Store(tag, name, uid, sequence, modes[base], silent, tuple(flags), unchangedsince)


def _fetch(tag, name, uid, args):
    sequence = _sequence(args)
    items = parse_items(args)
    changedsince, vanished = parse_modifiers(args)
    if vanished and not uid:
        raise ArgError("Unknown FETCH modifier")  # Dovecot's text for VANISHED without UID
    return c.Fetch(tag, name, uid, sequence, items, changedsince, vanished)


def _search(tag, name, uid, args):
    charset, key, returns = parse_search(args)
    return c.Search(tag, name, uid, charset, key, returns)


def _sort(tag, name, uid, args):
    criteria, charset, key, returns = parse_sort(args)
    return c.Sort(tag, name, uid, criteria, charset, key, returns)


def _thread(tag, name, uid, args):
    algorithm, charset, key = parse_thread(args)
    return c.Thread(tag, name, uid, algorithm, charset, key)


def _quota(tag, name, uid, args):
    root = args.string_bytes().decode("utf-8", "replace")
    limits = []
    if name == "SETQUOTA":
        lst = args.list()
        while lst.more():
            limits.append((lst.atom().upper(), lst.number64()))
        args.end()
    return c.QuotaCommand(tag, name, uid, root, tuple(limits))


_BUILDERS = {
    "CAPABILITY": _simple, "NOOP": _simple, "LOGOUT": _simple, "STARTTLS": _simple,
    "CHECK": _simple, "CLOSE": _simple, "UNSELECT": _simple, "NAMESPACE": _simple, "IDLE": _simple,
    "LOGIN": _login, "AUTHENTICATE": _authenticate, "SELECT": _select, "EXAMINE": _select,
    "CREATE": _create, "DELETE": _mailbox_only, "SUBSCRIBE": _mailbox_only,
    "UNSUBSCRIBE": _mailbox_only, "GETQUOTAROOT": _mailbox_only, "RENAME": _rename,
    "LIST": _list, "LSUB": _list, "STATUS": _status, "APPEND": _append, "ENABLE": _enable,
    "ID": _id, "COMPRESS": _compress, "EXPUNGE": _expunge, "COPY": _copy, "MOVE": _copy,
    "STORE": _store, "FETCH": _fetch, "SEARCH": _search, "SORT": _sort, "THREAD": _thread,
    "GETQUOTA": _quota, "SETQUOTA": _quota,
}
