"""The Maildir backend of roost.store (Dovecot-compatible Maildir++ / LAYOUT=fs).

Modules: names (file and mailbox names, modified UTF-7), dotlock (Dovecot's dot-locks),
uidlist (dovecot-uidlist), keywords (dovecot-keywords), index (roost.index: MODSEQ, dates,
sizes), cache (roost.cache: header blocks), folder (scanning and the sync), deliver (tmp ->
new with its UID), mailbox (the snapshot), layout (mailbox names -> paths), subscriptions,
uidvalidity (dovecot-uidvalidity), store (MaildirUserStore), stream (CRLF conversion),
errors (OSError -> StoreError).

Invariants: see the modules; every public call raises only roost.store.api errors.
Security: layout is the only place names become paths; folder opens only listed files.
"""

from roost.store.maildir.store import MaildirUserStore

__all__ = ["MaildirUserStore"]
