"""The mail store contract: what LMTP, POP3, IMAP and local delivery code against.

Implements the storage model IMAP needs (RFC 3501 §2.3: UID, UIDVALIDITY, flags, keywords,
internal date, RFC822.SIZE; RFC 7162 §3.1: MODSEQ/HIGHESTMODSEQ;
§3.2: which UIDs were expunged since a MODSEQ) over any backend (Maildir,
mbox). Backends subclass UserStore / Mailbox / SessionLock; callers only see these names.

Invariants: `deliver`/`append` return only once the message is durable (file and directory
fsynced); a Mailbox is a snapshot that changes only in `refresh` (and the calls of the same
object that change it); UIDs ascend and are never reused within one UIDVALIDITY; every
StoreError's str() is safe to show to the user.
Security: mailbox names come from clients; backends refuse names that would leave the mail
root (InvalidMailboxName) before touching the file system.

Blocking calls (deliver, refresh, expunge...) do file I/O and fsync: asyncio callers run them
with `asyncio.to_thread`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import BinaryIO, Iterable

SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
SPECIAL_USES = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent",
                          "\\Trash"})  # RFC 6154 §2


class StoreError(Exception):
    """Base of every store failure; str() is a user-presentable reason."""


class MailboxNotFound(StoreError):
    """The mailbox does not exist (IMAP [NONEXISTENT], LMTP falls back to INBOX)."""


class MailboxExists(StoreError):
    """create/rename onto a name that already exists (IMAP [ALREADYEXISTS])."""


class InvalidMailboxName(StoreError):
    """The name escapes the mail root, has forbidden characters or is too long."""


class QuotaExceeded(StoreError):
    """Storing would go over the user's quota; LMTP answers 552 5.2.2."""

    def __init__(self, message: str = "Quota exceeded (mailbox for user is full)",
                 used: int = 0, limit: int = 0):
        super().__init__(message)
        self.used = used  # bytes used before the refused message
        self.limit = limit  # bytes allowed


class MailboxInUse(StoreError):
    """lock_session refused: another session holds the mailbox (POP3 -ERR [IN-USE])."""


class MessageGone(StoreError):
    """The message was expunged by another session (IMAP answers NO for it)."""


@dataclass(frozen=True)
class MessageInfo:
    """One message as a snapshot sees it."""
    uid: int
    flags: frozenset[str]  # IMAP system flags: \Seen \Answered \Flagged \Deleted \Draft
    keywords: frozenset[str]
    size: int  # RFC822.SIZE: the size with CRLF line endings
    internal_date: float  # seconds since the epoch
    modseq: int
    guid: str  # stable per-message id (the Maildir base name); POP3 UIDL uses it


@dataclass(frozen=True)
class MailboxInfo:
    """One LIST entry."""
    name: str
    attributes: frozenset[str]  # \Noselect \HasChildren \HasNoChildren \NonExistent
    special_use: str | None  # \Sent \Drafts \Trash \Junk \Archive


@dataclass(frozen=True)
class Change:
    """What `refresh` saw change since the previous snapshot."""
    kind: str  # "exists" | "expunge" | "flags"
    uid: int
    info: MessageInfo | None  # None for "expunge"


class SessionLock(abc.ABC):
    """An exclusive session on one mailbox (POP3's maildrop lock, RFC 1939 §8)."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give the mailbox back; idempotent."""

    def __enter__(self) -> "SessionLock":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


class Mailbox(abc.ABC):
    """An opened mailbox: a snapshot of its messages plus the calls that change them."""
    __slots__ = ()  # backends may use slots: every open session keeps one
    name: str
    readonly: bool
    uidvalidity: int
    uidnext: int
    highestmodseq: int

    @abc.abstractmethod
    def messages(self) -> list[MessageInfo]:
        """The snapshot as of the last refresh, ascending uid."""

    @abc.abstractmethod
    def refresh(self) -> list[Change]:
        """Rescan: see what other processes and programs did since the last snapshot."""

    @abc.abstractmethod
    def open_message(self, uid: int) -> BinaryIO:
        """The message with CRLF line endings, streamed (not read whole); MessageGone
        (a StoreError) when it was expunged meanwhile."""

    @abc.abstractmethod
    def set_flags(self, uids: Iterable[int], flags: frozenset[str], keywords: frozenset[str],
                  mode: str, unchangedsince: int | None = None
                  ) -> tuple[list[MessageInfo], list[int]]:
        """mode "add" | "remove" | "replace"; returns (changed messages, uids that failed
        the UNCHANGEDSINCE test, RFC 7162 §3.1.3)."""

    @abc.abstractmethod
    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """Remove messages: None means every \\Deleted one; given uids are removed whatever
        their flags (IMAP UID EXPUNGE passes only its \\Deleted ones); returns the expunged
        uids."""

    @abc.abstractmethod
    def append(self, source: BinaryIO, *, flags: frozenset[str] = frozenset(),
               keywords: frozenset[str] = frozenset(), internal_date: float | None = None
               ) -> int:
        """Store a message here; durable when it returns; the new uid."""

    @abc.abstractmethod
    def copy(self, uids: Iterable[int], dest: str) -> list[tuple[int, int]]:
        """Copy to mailbox `dest`; (source uid, destination uid) pairs."""

    @abc.abstractmethod
    def move(self, uids: Iterable[int], dest: str) -> list[tuple[int, int]]:
        """Copy then expunge here (RFC 6851); (source uid, destination uid) pairs."""

    def vanished_since(self, modseq: int) -> set[int] | None:
        """UIDs expunged with a MODSEQ above `modseq` (RFC 7162 §3.2.5.2, §3.2.6: VANISHED
        (EARLIER)), from what the last refresh saw; None when the store does not remember
        that far back, and the caller reports every absent UID instead (§3.2.5.2 allows
        UIDs that were expunged earlier or never existed)."""
        return None

    @abc.abstractmethod
    async def wait_changed(self, timeout: float) -> bool:
        """Wait until another process may have changed the mailbox (wakes within 1 s of a
        change); False on timeout. Call refresh() to see what changed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the mailbox's resources; idempotent."""

    def __enter__(self) -> "Mailbox":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class UserStore(abc.ABC):
    """One user's mailboxes."""
    user: str
    separator: str  # hierarchy separator of mailbox names ("." Maildir++, "/" LAYOUT=fs)

    @abc.abstractmethod
    def deliver(self, mailbox: str, source: BinaryIO, *, flags: frozenset[str] = frozenset(),
                keywords: frozenset[str] = frozenset(), internal_date: float | None = None
                ) -> int:
        """Store a message (CRLF or LF lines; stored with LF as Dovecot's
        mail_save_crlf=no); durable when it returns; the uid. Raises QuotaExceeded,
        MailboxNotFound."""

    @abc.abstractmethod
    def list_mailboxes(self) -> list[MailboxInfo]:
        """Every mailbox, INBOX first."""

    @abc.abstractmethod
    def create_mailbox(self, name: str) -> None:
        """Create `name` (and its missing parents); MailboxExists, InvalidMailboxName."""

    @abc.abstractmethod
    def delete_mailbox(self, name: str) -> None:
        """Delete `name`; MailboxNotFound; INBOX cannot be deleted."""

    @abc.abstractmethod
    def rename_mailbox(self, old: str, new: str) -> None:
        """Rename `old` and its children (RFC 3501 §6.3.5: renaming INBOX moves its
        messages into a new mailbox and leaves INBOX empty)."""

    @abc.abstractmethod
    def subscriptions(self) -> list[str]:
        """Subscribed mailbox names."""

    @abc.abstractmethod
    def set_subscribed(self, name: str, subscribed: bool) -> None:
        """Add or remove `name` from the subscriptions."""

    @abc.abstractmethod
    def open_mailbox(self, name: str, *, readonly: bool = False) -> Mailbox:
        """Open a snapshot of `name`; MailboxNotFound."""

    @abc.abstractmethod
    def lock_session(self, name: str, purpose: str = "pop3") -> SessionLock:
        """Take the exclusive session lock of `name`; MailboxInUse when already held."""

    @abc.abstractmethod
    def quota_usage(self) -> tuple[int, int | None]:
        """(bytes used, limit in bytes or None for no limit)."""
