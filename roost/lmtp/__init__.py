"""LMTP delivery logic apart from the socket: recipients, trace headers, per-recipient results.

Implements what Dovecot's LMTP server (doc.dovecot.org "LMTP server") does between the
protocol and the store: userdb lookup of each RCPT with `recipient_delimiter` and
`lmtp_save_to_detail_mailbox` (recipient.py), the `Return-Path:` / `Delivered-To:` /
`Received:` lines Dovecot prepends (headers.py), one reply per recipient after the data, with
Dovecot's texts (replies.py), and the delivery of a spooled message into each user's store
with Dovecot's log lines (delivery.py). roost.net.lmtp drives these from the socket.

Invariants: nothing here touches sockets; delivery functions are blocking (callers use
asyncio.to_thread). Security: recipient names are looked up, never used as paths directly
(roost.store.location validates them).
"""
