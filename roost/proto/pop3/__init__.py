"""POP3 (RFC 1939, 2449, 2595, 5034, 3206) as sans-IO machines.

`lines.LineReader` frames the byte stream into command lines (Dovecot's limits);
`authorization.Authorization` runs the AUTHORIZATION state (CAPA, USER/PASS, AUTH, STLS,
QUIT) and `transaction.Transaction` the TRANSACTION state over a fixed maildrop listing;
`fetch.DotStuffer` turns message chunks into RETR/TOP output; `uidl` expands
pop3_uidl_format; `replies` holds every reply text (Dovecot 2.3.19's).
No I/O here: roost.net.pop3 drives these with a socket and the mail store.
"""
