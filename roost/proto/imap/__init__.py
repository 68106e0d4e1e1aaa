"""IMAP4rev1/IMAP4rev2 server protocol machine, sans-IO (RFC 3501, RFC 9051 and extensions).

Bytes in → typed events out; response values in → bytes out. No sockets, files or asyncio.
- connection: ImapConnection — framing (lines, `{n}` / `{n+}` / `~{n}` literals, continuation
  requests), limits (imap_max_line_length), pausing after STARTTLS/COMPRESS/AUTHENTICATE/IDLE.
- lexer → args → parser (+ fetchatt, searchparse): generic arguments, then one typed Command
  (commands) per command, with Dovecot's BAD/NO texts; states: which command runs when.
- seqset (sequence sets with `*` and `$`), searchkeys (SEARCH program values), utf7 (mailbox
  names), quote (strings/literals), response (status, data responses, FETCH/ESEARCH/THREAD).
Security: every parser is fuzzed; limits are enforced before buffering grows.
"""
