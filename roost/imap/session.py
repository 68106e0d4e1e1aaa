"""An authenticated IMAP session: runs parsed commands against the user's mail store.

Implements the AUTHENTICATED and SELECTED states of RFC 3501 §6.3-§6.4 / RFC 9051 with
NAMESPACE (RFC 2342, the store's prefix), ENABLE (RFC 5161: CONDSTORE, UTF8=ACCEPT, and
IMAP4rev2, after which SEARCH answers ESEARCH, SELECT sends LIST and no RECENT, and the Recent flag
is not shown: RFC 9051 §6.3.2, §6.4.4, appendix E),
UIDPLUS (RFC 4315 APPENDUID/COPYUID, UID EXPUNGE), MOVE (RFC 6851), UNSELECT (RFC 3691),
ESEARCH/SEARCHRES (RFC 4731, RFC 5182), SORT/THREAD (RFC 5256), CONDSTORE (RFC 7162
MODSEQ, UNCHANGEDSINCE, HIGHESTMODSEQ), QRESYNC (RFC 7162 §3.2: SELECT/EXAMINE QRESYNC,
UID FETCH VANISHED, `* VANISHED` instead of EXPUNGE once enabled; roost.imap.qresync),
BINARY APPEND (RFC 3516 §4.4, roost.message.binaryappend), QUOTA (RFC 9208 GETQUOTA/GETQUOTAROOT),
SPECIAL-USE and LIST-EXTENDED/LIST-STATUS (roost.imap.mailboxes). Reply texts are Dovecot
2.3's without its timing suffix.

FETCH of ENVELOPE/header items reads the store's cached header block (MaildirMailbox.header)
and keeps each ENVELOPE in roost.imap.envelopes, so a repeated `UID FETCH 1:* (... ENVELOPE)`
opens no files. `execute(command)` is synchronous and does file I/O: the network layer runs it in a thread
and writes the returned responses. After each command the selected mailbox is refreshed and
the client told what other sessions and deliveries changed (roost.imap.view), expunges only
where RFC 3501 §7.4.1 allows them.

Invariants: every command returns exactly one tagged response, last; store errors become NO
with a response code, never an exception out of `execute`.
Security: mailbox names go to the store, which refuses names escaping the mail root
(InvalidMailboxName); nothing is done before the login that built this session.
"""

from __future__ import annotations

import io

from roost.message import fetch as fetching
from roost.imap import envelopes
from roost.imap.mailboxes import list_responses, status_items
from roost.imap.qresync import select_resync, vanished_earlier
from roost.imap.view import SelectedView, flag_names
from roost.message import search as searching
from roost.message.binaryappend import convert_binary_parts
from roost.message.sort import SortItem, sort_data, sort_items
from roost.message.thread import ordered_subject, references
from roost.proto.imap import response
from roost.proto.imap.searchkeys import needs_message
from roost.proto.imap.quote import string as quote_string
from roost.proto.imap.seqset import compact
from roost.proto.imap.states import State

CAPABILITIES = ("IMAP4rev1", "IMAP4rev2", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "SORT",
                "SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "MULTIAPPEND",
                "UNSELECT", "CHILDREN", "NAMESPACE", "UIDPLUS", "LIST-EXTENDED", "I18NLEVEL=1",
                "CONDSTORE", "QRESYNC", "ESEARCH", "SEARCHRES", "WITHIN", "LIST-STATUS", "BINARY",
                "MOVE", "STATUS=SIZE", "LITERAL+", "SPECIAL-USE", "QUOTA", "UTF8=ACCEPT",
                "COMPRESS=DEFLATE")
ENABLEABLE = ("CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4rev2")
_ENABLE_NAMES = {name.upper(): name for name in ENABLEABLE}
NOTHING_SAVED: frozenset[int] = frozenset()  # shared: an empty frozenset is 216 bytes a session


def capabilities(literal_minus: bool = False) -> list[str]:
    """The post-login list; LITERAL- instead of LITERAL+ with imap_literal_minus (RFC 7888)."""
    return [("LITERAL-" if literal_minus and cap == "LITERAL+" else cap) for cap in CAPABILITIES]


class MessageGone(Exception):
    """The message went away (another session expunged it) while a command read it."""


class Session:
    def __init__(self, store, user: str, connection, log):
        self.store = store
        self.user = user
        self.connection = connection  # roost.proto.imap.connection.ImapConnection
        self.log = log
        self.view: SelectedView | None = None
        self.enabled: frozenset[str] = frozenset()  # one shared empty set for idle sessions
        self.saved: frozenset[int] = NOTHING_SAVED
        self.logout = False

    # ---- dispatch ------------------------------------------------------------------------

    def execute(self, command) -> list[bytes]:
        from roost.store import StoreError
        handler = getattr(self, "cmd_" + command.name.lower().replace("-", "_"), None)
        if handler is None:
            return [response.bad(command.tag, f"Unknown command {command.name}")]
        try:
            out = handler(command)
        except StoreError as error:
            out = [self.store_error(command.tag, error, command.name)]
        except Exception as error:  # noqa: BLE001 - a bug answers NO [SERVERBUG], never kills
            self.log.error(f"{command.name} failed: {type(error).__name__}: {error}")
            out = [response.no(command.tag, "Internal error occurred. Refer to server log "
                                            "for more information.", response.code("SERVERBUG"))]
        return out

    def store_error(self, tag: str, error, name: str = "") -> bytes:
        from roost.store import (InvalidMailboxName, MailboxExists, MailboxNotFound,
                                 QuotaExceeded)
        if isinstance(error, MailboxNotFound):
            text = str(error)  # the stores say "Mailbox doesn't exist: <name>" already
            if not text.startswith("Mailbox doesn't exist"):
                text = f"Mailbox doesn't exist: {text}"
            # Dovecot 2.3 (observed) gives SELECT, EXAMINE and STATUS no response code
            plain = name in ("SELECT", "EXAMINE", "STATUS")
            return response.no(tag, text, None if plain else response.code("NONEXISTENT"))
        if isinstance(error, MailboxExists):
            return response.no(tag, "Mailbox already exists", response.code("ALREADYEXISTS"))
        if isinstance(error, QuotaExceeded):
            return response.no(tag, "Quota exceeded (mailbox for user is full)",
                               response.code("OVERQUOTA"))
        if isinstance(error, InvalidMailboxName):
            return response.no(tag, f"Invalid mailbox name: {error}", response.code("CANNOT"))
        return response.no(tag, str(error) or "Operation failed", response.code("SERVERBUG"))

    def finish(self, tag: str, text: str, allow_expunge: bool = True, uid: bool = False,
               resp_code: bytes | None = None, changed: bool = False) -> list[bytes]:
        updates = self.sync(allow_expunge, uid)
        if resp_code is None and (updates or changed):
            resp_code = self.highestmodseq_code()
        return updates + [response.ok(tag, text, resp_code)]

    def highestmodseq_code(self) -> bytes | None:
        """With QRESYNC, a command after which the client saw changes ends with
        `OK [HIGHESTMODSEQ n]` (Dovecot 2.3, observed): the value a client resyncs from
        (RFC 7162 §3.2.5), so never while an expunge is still untold (§7.4.1 withheld it)."""
        view = self.view
        if view is None or not view.qresync or view.withheld:
            return None
        return response.code("HIGHESTMODSEQ", str(view.mailbox.highestmodseq))

    def sync(self, allow_expunge: bool = True, uid: bool = False) -> list[bytes]:
        if self.view is None:
            return []
        self.view.mailbox.refresh()
        return self.view.updates(allow_expunge, uid)

    def enable_condstore(self) -> list[bytes]:
        """RFC 7162 §3.1: a CONDSTORE-enabling command; in SELECTED state the first one
        brings `* OK [HIGHESTMODSEQ n]`."""
        if "CONDSTORE" in self.enabled and (self.view is None or self.view.condstore):
            return []
        self.enabled = self.enabled | {"CONDSTORE"}
        if self.view is None:
            return []
        self.view.condstore = True
        return [response.ok(None, "Highest", response.code(
            "HIGHESTMODSEQ", str(self.view.mailbox.highestmodseq)))]

    @property
    def utf8(self) -> bool:
        return "UTF8=ACCEPT" in self.enabled

    # ---- any state -----------------------------------------------------------------------

    @property
    def rev2(self) -> bool:
        """IMAP4rev2 ENABLEd (RFC 9051 §6.3.1): rev2 responses from then on."""
        return "IMAP4rev2" in self.enabled

    def cmd_capability(self, c):
        return [response.capability(capabilities(self.connection.limits.literal_minus)),
                response.ok(c.tag, "Capability completed.")]

    def cmd_noop(self, c):
        return self.finish(c.tag, "NOOP completed.")

    def cmd_check(self, c):
        return self.finish(c.tag, "Check completed.")

    def cmd_logout(self, c):
        self.logout = True
        self.close_view()
        return [response.bye("Logging out"), response.ok(c.tag, "Logout completed.")]

    def cmd_id(self, c):
        return [response.id_data([("name", "Dovecot")]), response.ok(c.tag, "ID completed.")]

    def cmd_enable(self, c):
        newly = []
        for capability in c.capabilities:
            name = capability.upper()
            name = _ENABLE_NAMES.get(name, name)  # RFC 5161 names are case-insensitive
            if name in ENABLEABLE and name not in self.enabled:
                self.enabled = self.enabled | {name}
                newly.append(name)
                if name in ("UTF8=ACCEPT", "IMAP4rev2"):  # RFC 9051 §5.1: UTF-8 names
                    self.connection.utf8 = True
                if name == "IMAP4rev2" and self.view is not None:
                    self.view.rev2 = True
                if name == "QRESYNC":  # RFC 7162 §3.2.3: implies CONDSTORE (not listed)
                    self.enabled = self.enabled | {"CONDSTORE"}
                    if self.view is not None:
                        self.view.qresync = True
                if name in ("CONDSTORE", "QRESYNC") and self.view is not None:
                    self.view.condstore = True
        # the parser refuses QRESYNC parameters and VANISHED until enabled (RFC 7162 §3.2.5)
        self.connection.enabled = self.enabled
        return [response.enabled(newly), response.ok(c.tag, "Enabled.")]

    def cmd_namespace(self, c):
        separator = self.store.separator.replace("\\", "\\\\")
        # RFC 2342 §5: the personal namespace's prefix is the store's (Dovecot's
        # namespace { prefix = INBOX. } style layouts), "" by default
        prefix = getattr(self.store, "prefix", "") or ""
        prefix = prefix.replace("\\", "\\\\").replace('"', '\\"')
        return [response.untagged(f'NAMESPACE (("{prefix}" "{separator}")) NIL NIL'),
                response.ok(c.tag, "Namespace completed.")]

    # ---- mailboxes -----------------------------------------------------------------------

    def cmd_select(self, c):
        from roost.store import StoreError
        out = []
        if self.view is not None:
            self.close_view()
            out.append(response.ok(None, "Previous mailbox closed.", response.code("CLOSED")))
            self.connection.state = State.AUTHENTICATED
        readonly = c.name == "EXAMINE"
        try:
            mailbox = self.store.open_mailbox(c.mailbox, readonly=readonly)
        except StoreError as error:  # RFC 7162 §3.2.11: [CLOSED] even when SELECT fails
            return out + [self.store_error(c.tag, error, c.name)]
        view = SelectedView(mailbox, readonly, condstore=c.condstore or "CONDSTORE" in self.enabled,
                            qresync="QRESYNC" in self.enabled, rev2=self.rev2)
        if c.condstore:
            self.enabled = self.enabled | {"CONDSTORE"}
        view.load()
        self.view = view
        self.connection.state = State.SELECTED
        out.append(view.flags_response())
        out.append(response.ok(None, "Flags permitted.", view.permanent_flags()))
        out.append(response.exists(view.count))
        if self.rev2:
            # RFC 9051 §6.3.2: LIST of the selected mailbox is required; RECENT is gone (§E)
            separator = self.store.separator.encode()
            name = "INBOX" if c.mailbox.upper() == "INBOX" else c.mailbox
            out.append(response.untagged(b"LIST () " + quote_string(separator) + b" "
                                         + quote_string(name.encode("utf-8"), utf8=True)))
        else:
            out.append(response.recent(len(view.recent)))
        unseen = next((i + 1 for i, uid in enumerate(view.uids)
                       if "\\Seen" not in view.infos[uid].flags), None)
        if unseen is not None:
            out.append(response.ok(None, f"First unseen.", response.code("UNSEEN", str(unseen))))
        out.append(response.ok(None, "UIDs valid",
                               response.code("UIDVALIDITY", str(mailbox.uidvalidity))))
        out.append(response.ok(None, "Predicted next UID",
                               response.code("UIDNEXT", str(mailbox.uidnext))))
        out.append(response.ok(None, "Highest",
                               response.code("HIGHESTMODSEQ", str(mailbox.highestmodseq))))
        if c.qresync is not None:  # RFC 7162 §3.2.5: VANISHED (EARLIER), then what changed
            out += select_resync(view, c.qresync)
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        out.append(response.ok(c.tag, f"{'Examine' if readonly else 'Select'} completed.",
                               response.code(mode)))
        return out

    cmd_examine = cmd_select

    def close_view(self) -> None:
        if self.view is not None:
            try:
                self.view.mailbox.close()
            finally:
                self.view = None

    def cmd_create(self, c):
        name = c.mailbox.rstrip(self.store.separator)
        if name.upper() == "INBOX":
            return [response.no(c.tag, "Mailbox already exists", response.code("ALREADYEXISTS"))]
        self.store.create_mailbox(name)
        return [response.ok(c.tag, "Create completed.")]

    def cmd_delete(self, c):
        if c.mailbox.upper() == "INBOX":
            return [response.no(c.tag, "INBOX can't be deleted.")]
        if self.view is not None and self.view.mailbox.name == c.mailbox:
            self.close_view()
            self.connection.state = State.AUTHENTICATED
        self.store.delete_mailbox(c.mailbox)
        return [response.ok(c.tag, "Delete completed.")]

    def cmd_rename(self, c):
        self.store.rename_mailbox(c.old, c.new)
        return [response.ok(c.tag, "Rename completed.")]

    def cmd_subscribe(self, c):
        self.store.set_subscribed(c.mailbox, True)
        return [response.ok(c.tag, "Subscribe completed.")]

    def cmd_unsubscribe(self, c):
        self.store.set_subscribed(c.mailbox, False)
        return [response.ok(c.tag, "Unsubscribe completed.")]

    def cmd_list(self, c):
        out = list_responses(self.store, c, self.utf8)
        if c.status_items:  # LIST-STATUS (RFC 5819)
            from roost.store import StoreError
            names = [info.name for info in self.store.list_mailboxes()]
            for name in names:
                if any(name.encode() in line for line in out):
                    try:
                        out.append(self.status_line(name, c.status_items))
                    except StoreError:
                        pass
        return out + self.finish(c.tag, f"{c.name.capitalize()} completed.")

    cmd_lsub = cmd_list

    def status_line(self, name: str, items) -> bytes:
        if self.view is not None and self.view.mailbox.name == name:
            mailbox, close = self.view.mailbox, False
        else:
            mailbox, close = self.store.open_mailbox(name, readonly=True), True
        try:
            return response.status_data(name, status_items(mailbox, items), self.utf8)
        finally:
            if close:
                mailbox.close()

    def cmd_status(self, c):
        return [self.status_line(c.mailbox, c.items)] + self.finish(c.tag, "Status completed.")

    def cmd_append(self, c):
        from roost.store import MailboxNotFound
        view = self.view
        if view is not None and not view.readonly and _same_name(view.mailbox.name, c.mailbox):
            # appending to the selected mailbox: its object appends as well as a new one,
            # without opening (and so scanning) the mailbox once more
            mailbox, opened = view.mailbox, False
        else:
            try:
                mailbox, opened = self.store.open_mailbox(c.mailbox), True
            except MailboxNotFound:
                return [response.no(c.tag, f"Mailbox doesn't exist: {c.mailbox}",
                                    response.code("TRYCREATE"))]
        try:
            uids = []
            for message in c.messages:
                flags = frozenset(f for f in message.flags if f.startswith("\\"))
                keywords = frozenset(f for f in message.flags if not f.startswith("\\"))
                data = message.data
                if message.binary:  # RFC 3516 §4.4: binary parts kept exact, as base64
                    data = convert_binary_parts(data)
                uids.append(mailbox.append(io.BytesIO(data), flags=flags,
                                           keywords=keywords,
                                           internal_date=message.internal_date))
            validity = mailbox.uidvalidity
        finally:
            if opened:
                mailbox.close()
        code = response.code("APPENDUID", str(validity), compact(sorted(uids)))
        return self.finish(c.tag, "Append completed.", resp_code=code)

    def cmd_getquotaroot(self, c):
        used, limit = self.store.quota_usage()
        out = [response.quota_root(c.mailbox, ["User quota"] if limit else [], self.utf8)]
        if limit:
            out.append(response.quota("User quota", [("STORAGE", used // 1024, limit // 1024)]))
        return out + [response.ok(c.tag, "Getquotaroot completed.")]

    def cmd_getquota(self, c):
        used, limit = self.store.quota_usage()
        if not limit or c.root != "User quota":
            return [response.no(c.tag, "Quota root doesn't exist")]
        return [response.quota("User quota", [("STORAGE", used // 1024, limit // 1024)]),
                response.ok(c.tag, "Getquota completed.")]

    # ---- selected state ------------------------------------------------------------------

    def cmd_close(self, c):
        view = self.view
        if not view.readonly:
            deleted = [uid for uid, info in view.infos.items() if "\\Deleted" in info.flags]
            if deleted:
                view.mailbox.expunge(deleted)
        self.close_view()
        self.connection.state = State.AUTHENTICATED
        return [response.ok(c.tag, "Close completed.")]

    def cmd_unselect(self, c):
        self.close_view()
        self.connection.state = State.AUTHENTICATED
        return [response.ok(c.tag, "Unselect completed.")]

    def cmd_expunge(self, c):
        view = self.view
        if view.readonly:
            return [response.no(c.tag, "Mailbox is read-only.", response.code("READ-ONLY"))]
        view.mailbox.refresh()
        current = {info.uid: info for info in view.mailbox.messages()}
        deleted = [uid for uid, info in current.items() if "\\Deleted" in info.flags]
        if c.uids is not None:
            wanted = set(u for _s, u in view.select(c.uids, True))
            deleted = [uid for uid in deleted if uid in wanted]
        if deleted:
            view.mailbox.expunge(deleted)
        return self.finish(c.tag, "Expunge completed.", uid=c.uid, changed=bool(deleted))

    def pairs(self, c) -> list[tuple[int, int]] | None:
        view = self.view
        sequence = c.sequence
        if sequence.saved:
            return [(s, u) for s, u in enumerate(view.uids, 1) if u in self.saved]
        if not c.uid and not view.valid_sequence(sequence):
            return None
        return view.select(sequence, c.uid)

    def cmd_fetch(self, c):
        view = self.view
        chosen = self.pairs(c)
        if chosen is None:
            return [response.bad(c.tag, f"Error in IMAP command {c.name}: Invalid messageset")]
        out = self.sync(allow_expunge=False, uid=c.uid)
        if c.changedsince is not None or any(item.name == "MODSEQ" for item in c.items):
            out += self.enable_condstore()
        if c.vanished:  # RFC 7162 §3.2.6: UID FETCH (CHANGEDSINCE m VANISHED)
            if c.sequence.saved:
                bounds = [(uid, uid) for uid in sorted(self.saved)]
            else:
                bounds = c.sequence.bounds(view.uids[-1] if view.uids else 0)
            earlier = vanished_earlier(view.mailbox, view.uids, c.changedsince, bounds)
            if earlier is not None:
                out.append(earlier)
        set_seen = fetching.sets_seen(c.items) and not view.readonly
        # ENVELOPE/HEADER fetches (and those whose other items are remembered) read the
        # store's cached header block, not the file
        has_header = hasattr(view.mailbox, "header")
        where = envelopes.mailbox_key(view.mailbox), getattr(view.mailbox, "uidvalidity", None)
        remembered = fetching.remembered_items(c.items) if None not in where else ()
        for seq, uid in chosen:
            info = view.infos.get(uid)
            if info is None:
                continue
            if c.changedsince is not None and info.modseq <= c.changedsince:
                continue
            changed = False
            if set_seen and "\\Seen" not in info.flags:
                updated, _failed = view.mailbox.set_flags([uid], frozenset({"\\Seen"}),
                                                          frozenset(), "add")
                if updated:
                    info = updated[0]
                    view.infos[uid] = info
                    changed = True
            try:
                known = {}
                for name in remembered:
                    value = envelopes.get(where + (uid, name))
                    if value is not None:
                        known[name] = value
                fresh = [name for name in remembered if name not in known]
                load = self.read_header if has_header and fetching.header_only(c.items, known) \
                    else self.read_message
                loaded = _Loaded(load, uid)
                if "ENVELOPE" in fresh:  # from the header block alone, without the MIME walk
                    known["ENVELOPE"] = fetching.envelope_of(loaded())
                out.append(fetching.render(
                    seq, info, c.items, loaded,
                    # RFC 7162 §3.2.4: with QRESYNC, a FETCH that set \Seen names the UID
                    uid_command=c.uid or (changed and view.qresync), seen_set=changed,
                    include_modseq=view.condstore or c.changedsince is not None,
                    recent=uid in view.recent and not view.rev2, known=known))
                for name in fresh:
                    envelopes.put(where + (uid, name), known[name])
            except fetching.FetchFailed as failure:  # RFC 3516 §4.3 UNKNOWN-CTE, or PARSE
                if failure.response:
                    out.append(failure.response)
                return out + [response.no(c.tag, failure.text,  # Dovecot's texts
                                          response.code(failure.code))]
            except MessageGone:
                continue  # expunged by another session meanwhile: nothing to show
        return out + [response.ok(c.tag, "Fetch completed.")]

    def read_message(self, uid: int) -> bytes:
        from roost.store import StoreError
        try:
            with self.view.mailbox.open_message(uid) as stream:
                return stream.read()
        except (StoreError, OSError):
            raise MessageGone(uid) from None

    def read_header(self, uid: int) -> bytes:
        from roost.store import StoreError
        try:
            return self.view.mailbox.header(uid)
        except (StoreError, OSError):
            raise MessageGone(uid) from None

    def read_content(self, uid: int):
        """The message and its MIME tree, for SEARCH/SORT/THREAD; None when it is gone."""
        try:
            return searching.MessageView(None, 0, self.read_message(uid))
        except MessageGone:
            return None

    def cmd_store(self, c):
        view = self.view
        if view.readonly:
            return [response.no(c.tag, "Mailbox is read-only.", response.code("READ-ONLY"))]
        chosen = self.pairs(c)
        if chosen is None:
            return [response.bad(c.tag, f"Error in IMAP command {c.name}: Invalid messageset")]
        enabling = self.enable_condstore() if c.unchangedsince is not None else []
        flags = frozenset(f for f in c.flags if f.startswith("\\"))
        keywords = frozenset(f for f in c.flags if not f.startswith("\\"))
        uids = [uid for _seq, uid in chosen]
        changed, failed = view.mailbox.set_flags(uids, flags, keywords, c.mode,
                                                 unchangedsince=c.unchangedsince)
        for info in changed:  # reported below, once: the sync must not announce them too
            if info.uid in view.infos:
                view.infos[info.uid] = info
        out = enabling + self.sync(allow_expunge=False, uid=c.uid)
        new_keywords = keywords - view.keywords
        if new_keywords:
            view.keywords |= new_keywords
            out.append(view.flags_response())
        for info in changed:
            current = view.infos.get(info.uid)
            if current is not None and current.modseq > info.modseq:
                info = current  # another session changed it again since: report the newest
            view.infos[info.uid] = info
            if not c.silent or view.condstore:
                seq = view.seq_of(info.uid)
                if seq is None:
                    continue
                # RFC 7162 §3.2.4: with QRESYNC every flag update carries the UID
                items = [("UID", b"%d" % info.uid)] if c.uid or view.qresync else []
                if not c.silent:
                    items.append(("FLAGS", response.flag_list(view.flags_of(info))))
                if view.condstore:
                    items.append(("MODSEQ", b"(%d)" % info.modseq))
                out.append(response.fetch(seq, items))
        code = None
        if failed:
            numbers = sorted(failed) if c.uid else sorted(view.seq_of(u) or 0 for u in failed)
            code = response.code("MODIFIED", compact(numbers))
        return out + [response.ok(c.tag, "Store completed.", code)]

    def cmd_copy(self, c):
        from roost.store import MailboxNotFound
        view = self.view
        chosen = self.pairs(c)
        if chosen is None:
            return [response.bad(c.tag, f"Error in IMAP command {c.name}: Invalid messageset")]
        uids = [uid for _seq, uid in chosen]
        if not uids:
            return self.finish(c.tag, "No messages found.", allow_expunge=c.name == "MOVE")
        move = c.name == "MOVE"
        try:
            if move:
                if view.readonly:
                    return [response.no(c.tag, "Mailbox is read-only.", response.code("READ-ONLY"))]
                mapping = view.mailbox.move(uids, c.mailbox)
            else:
                mapping = view.mailbox.copy(uids, c.mailbox)
        except MailboxNotFound:
            return [response.no(c.tag, f"Mailbox doesn't exist: {c.mailbox}",
                                response.code("TRYCREATE"))]
        destination = self.store.open_mailbox(c.mailbox, readonly=True)
        try:
            validity = destination.uidvalidity
        finally:
            destination.close()
        pairs = sorted(mapping)
        code = response.code("COPYUID", str(validity), compact([a for a, _b in pairs]),
                             ",".join(str(b) for _a, b in pairs))
        if move:
            out = [response.ok(None, "Moved UIDs.", code)] + self.sync(True, c.uid)
            return out + [response.ok(c.tag, "Move completed.", self.highestmodseq_code())]
        return self.finish(c.tag, "Copy completed.", allow_expunge=False, uid=c.uid,
                           resp_code=code)

    cmd_move = cmd_copy

    # ---- search, sort, thread ------------------------------------------------------------

    def matching(self, key) -> list[tuple[int, int]]:
        view = self.view
        ctx = searching.SearchContext(largest_seq=view.count,
                                      largest_uid=view.uids[-1] if view.uids else 0,
                                      recent_uids=frozenset(view.recent), saved=self.saved)
        wants_content = needs_message(key)
        found = []
        for seq, uid in enumerate(view.uids, 1):
            info = view.infos.get(uid)
            if info is None:
                continue
            data = None
            if wants_content:
                content = self.read_content(uid)
                if content is None:
                    continue
                data = content.data
            if searching.matches(key, searching.MessageView(info, seq, data), ctx):
                found.append((seq, uid))
        return found

    def cmd_search(self, c):
        out = self.sync(allow_expunge=False, uid=c.uid)
        with_modseq = _mentions_modseq(c.key)
        if with_modseq:
            out += self.enable_condstore()
        found = self.matching(c.key)
        numbers = [uid if c.uid else seq for seq, uid in found]
        by_number = {(uid if c.uid else seq): uid for seq, uid in found}
        infos = self.view.infos
        if c.returns is None and self.rev2:
            # RFC 9051 §6.4.4: an IMAP4rev2 SEARCH answers ESEARCH, ALL when not asked otherwise
            results = [("ALL", compact(sorted(numbers)))] if numbers else []
            if with_modseq and found:
                results.append(("MODSEQ", max(infos[uid].modseq for _s, uid in found)))
            out.append(response.esearch(c.tag, c.uid, results))
        elif c.returns is None:
            modseq = None
            if with_modseq and found:
                modseq = max(infos[uid].modseq for _s, uid in found)
            out.append(response.search(numbers, modseq))
        else:
            wanted = set(c.returns) or {"ALL"}
            results: list = []
            reported: list[int] = []  # RFC 7162 §3.1.5 / RFC 4731: MODSEQ of what is shown
            if "MIN" in wanted and numbers:
                results.append(("MIN", min(numbers)))
                reported.append(by_number[min(numbers)])
            if "MAX" in wanted and numbers:
                results.append(("MAX", max(numbers)))
                reported.append(by_number[max(numbers)])
            if "ALL" in wanted and numbers:
                results.append(("ALL", compact(sorted(numbers))))
                reported += list(by_number.values())
            if "COUNT" in wanted:
                results.append(("COUNT", len(numbers)))
                reported += list(by_number.values())
            if with_modseq and reported:
                results.append(("MODSEQ", max(infos[uid].modseq for uid in reported)))
            if "SAVE" in wanted:
                self.saved = frozenset(uid for _s, uid in found)
            if wanted - {"SAVE"}:
                out.append(response.esearch(c.tag, c.uid, results))
        return out + [response.ok(c.tag, "Search completed.")]

    def sort_items(self, found) -> list[SortItem]:
        items = []
        for seq, uid in found:
            info = self.view.infos[uid]
            content = self.read_content(uid)
            header = content.root.header if content is not None else None
            if header is None:
                continue
            items.append(SortItem(seq, uid, info.size, info.internal_date, sort_data(header)))
        return items

    def cmd_sort(self, c):
        out = self.sync(allow_expunge=False, uid=c.uid)
        ordered = sort_items(self.sort_items(self.matching(c.key)), c.criteria)
        out.append(response.sort([item.uid if c.uid else item.seq for item in ordered]))
        return out + [response.ok(c.tag, "Sort completed.")]

    def cmd_thread(self, c):
        out = self.sync(allow_expunge=False, uid=c.uid)
        items = self.sort_items(self.matching(c.key))
        build = ordered_subject if c.algorithm == "ORDEREDSUBJECT" else references
        out.append(response.thread_tree(build(items, use_uid=c.uid)))
        return out + [response.ok(c.tag, "Thread completed.")]

    # ---- IDLE support --------------------------------------------------------------------

    def idle_updates(self) -> list[bytes]:
        return self.sync(True)


def _same_name(selected: str, name: str) -> bool:
    """Whether mailbox `name` (as a client wrote it) is the selected one: INBOX in any case
    (RFC 3501 §5.1), any other name exactly."""
    return name == selected or name.upper() == "INBOX" and selected.upper() == "INBOX"


class _Loaded:
    """A message's bytes read once (`load(uid)`) however many items of one FETCH use them."""

    __slots__ = ("load", "uid", "data")

    def __init__(self, load, uid: int):
        self.load, self.uid, self.data = load, uid, None

    def __call__(self) -> bytes:
        if self.data is None:
            self.data = self.load(self.uid)
        return self.data


def _mentions_modseq(key) -> bool:
    from roost.proto.imap import searchkeys as k
    if isinstance(key, k.ModSeq):
        return True
    if isinstance(key, k.And):
        return any(_mentions_modseq(sub) for sub in key.keys)
    if isinstance(key, k.Or):
        return _mentions_modseq(key.left) or _mentions_modseq(key.right)
    if isinstance(key, k.Not):
        return _mentions_modseq(key.key)
    return False
