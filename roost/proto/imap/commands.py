"""Parsed IMAP commands as typed, immutable values (RFC 3501 §6, RFC 9051 §6 and extensions).

One dataclass per command shape; every command carries its tag and upper-case name, and
`uid` for the UID-prefixed forms (RFC 3501 §6.4.8). Extensions: CONDSTORE/QRESYNC
(RFC 7162: SELECT parameters, FETCH CHANGEDSINCE/VANISHED, STORE UNCHANGEDSINCE), ESEARCH
(RFC 4731 RETURN options), SEARCHRES (RFC 5182), SORT/THREAD (RFC 5256), LIST-EXTENDED
(RFC 5258) and LIST-STATUS (RFC 5819), SPECIAL-USE (RFC 6154 CREATE USE), MULTIAPPEND
(RFC 3502), UTF8=ACCEPT APPEND (RFC 6855), ENABLE (RFC 5161), ID (RFC 2971), IDLE (RFC 2177),
SASL-IR (RFC 4959), COMPRESS (RFC 4978), QUOTA (RFC 9208), BINARY (RFC 3516).
Invariants: values only (no behaviour); mailbox names are decoded str.
Security: secrets (LOGIN password, SASL initial response) are kept out of repr().
"""

from __future__ import annotations

from dataclasses import dataclass, field

from roost.proto.imap.seqset import SequenceSet


@dataclass(frozen=True)
class Command:
    tag: str
    name: str
    uid: bool = False


@dataclass(frozen=True)
class Login(Command):
    user: bytes = b""
    password: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Authenticate(Command):
    mechanism: str = ""
    initial_response: bytes | None = field(default=None, repr=False)  # SASL-IR, still base64


@dataclass(frozen=True)
class Select(Command):                     # SELECT and EXAMINE
    mailbox: str = ""
    readonly: bool = False
    condstore: bool = False
    qresync: tuple | None = None           # (uidvalidity, modseq, known_uids, (seqs, uids))


@dataclass(frozen=True)
class MailboxCommand(Command):             # DELETE SUBSCRIBE UNSUBSCRIBE GETQUOTAROOT
    mailbox: str = ""


@dataclass(frozen=True)
class Create(Command):
    mailbox: str = ""
    special_use: tuple[str, ...] = ()      # RFC 6154 §3 CREATE ... (USE (\Sent))


@dataclass(frozen=True)
class Rename(Command):
    old: str = ""
    new: str = ""


@dataclass(frozen=True)
class ListCommand(Command):                # LIST, LSUB
    reference: str = ""
    patterns: tuple[str, ...] = ()
    selection: frozenset[str] = frozenset()   # SUBSCRIBED REMOTE RECURSIVEMATCH SPECIAL-USE
    returns: frozenset[str] = frozenset()     # SUBSCRIBED CHILDREN SPECIAL-USE STATUS
    status_items: tuple[str, ...] = ()        # RETURN (STATUS (...)) (RFC 5819)
    extended: bool = False                    # the LIST-EXTENDED syntax was used


@dataclass(frozen=True)
class Status(Command):
    mailbox: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppendMessage:
    flags: tuple[str, ...]
    internal_date: float | None
    data: bytes = field(repr=False)
    binary: bool = False                   # literal8 (RFC 3516 §4.4)
    utf8: bool = False                     # UTF8 (...) wrapper (RFC 6855 §4)


@dataclass(frozen=True)
class Append(Command):
    mailbox: str = ""
    messages: tuple[AppendMessage, ...] = ()


@dataclass(frozen=True)
class Enable(Command):
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Id(Command):
    params: tuple[tuple[str, str | None], ...] | None = None


@dataclass(frozen=True)
class Compress(Command):
    mechanism: str = ""


@dataclass(frozen=True)
class Expunge(Command):
    uids: SequenceSet | None = None        # UID EXPUNGE (RFC 4315 §2.1)


@dataclass(frozen=True)
class Copy(Command):                       # COPY and MOVE (RFC 6851)
    sequence: SequenceSet = SequenceSet()
    mailbox: str = ""


@dataclass(frozen=True)
class Store(Command):
    sequence: SequenceSet = SequenceSet()
    mode: str = "replace"                  # add | remove | replace
    silent: bool = False
    flags: tuple[str, ...] = ()
    unchangedsince: int | None = None


@dataclass(frozen=True)
class Section:
    """BODY[...] section (RFC 3501 §6.4.5): part numbers, then an optional text part."""
    part: tuple[int, ...] = ()
    text: str | None = None                # HEADER HEADER.FIELDS HEADER.FIELDS.NOT TEXT MIME
    fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class FetchItem:
    name: str                              # FLAGS UID BODY BINARY BINARY.SIZE RFC822 ...
    section: Section | None = None         # for BODY[..], BINARY[..], BINARY.SIZE[..]
    partial: tuple[int, int | None] | None = None  # <origin.length>; <origin> alone: to the end
    peek: bool = False                     # BODY.PEEK / BINARY.PEEK: do not set \Seen
    label: str = ""                        # how the item is echoed back in the response


@dataclass(frozen=True)
class Fetch(Command):
    sequence: SequenceSet = SequenceSet()
    items: tuple[FetchItem, ...] = ()
    changedsince: int | None = None
    vanished: bool = False


@dataclass(frozen=True)
class Search(Command):
    charset: str = "utf-8"
    key: object = None
    returns: tuple[str, ...] | None = None   # ESEARCH RETURN (...) options; () = ALL


@dataclass(frozen=True)
class Sort(Command):
    criteria: tuple[tuple[str, bool], ...] = ()   # (key, reverse)
    charset: str = "utf-8"
    key: object = None
    returns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Thread(Command):
    algorithm: str = "REFERENCES"
    charset: str = "utf-8"
    key: object = None


@dataclass(frozen=True)
class QuotaCommand(Command):               # GETQUOTA root / SETQUOTA root (limits)
    root: str = ""
    limits: tuple[tuple[str, int], ...] = ()
