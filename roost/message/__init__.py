"""RFC 5322/MIME message analysis for IMAP FETCH, SEARCH, SORT and THREAD.

- header (fields, unfolding), encoded_words (RFC 2047), mimeparams (RFC 2045/2231 params),
  address (ENVELOPE address lists), mime (the part tree as offsets into one buffer)
- imapfmt (ENVELOPE, BODY, BODYSTRUCTURE), sections (BODY[...], BINARY), fetch (whole FETCH
  responses), analysis (the cacheable per-message record)
- search (SEARCH evaluation), subject (RFC 5256 base subject), sort (SORT keys), thread
All output is byte-identical to Dovecot 2.3.19 on the test corpus (tests/message).
"""
