"""The TLS text of Postfix's Received header (smtpd_tls_received_header = yes), Postfix 3.7:

    (using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)
     key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)
    (No client certificate requested)

Known gap: Python's ssl module tells neither the negotiated key-exchange group nor the
signature scheme, so the ` key-exchange ... server-digest ...` continuation line is left out
and the first line closes its own parenthesis; everything else is Postfix's text (compared
with a real Postfix's header in tests/net/test_smtpd_tls.py). The second line:
`(No client certificate requested)`, else `(Client did not present a
certificate)` or, for a certificate roost does not verify, `(Client certificate not verified)`.
Whether a certificate was asked for is read from the live TLS context (its verify_mode), so
the text never claims a request the server did not make.

Invariants: lines joined by "\n", no tabs (cleanup indents them); None without TLS.
Security: only the TLS library's own values; nothing from the client's data stream.
"""

from __future__ import annotations

import ssl


def received_tls_text(ssl_object) -> str | None:
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    if not cipher:
        return None
    name, _version, bits = cipher
    if ssl_object.context.verify_mode == ssl.CERT_NONE:  # smtpd_tls_ask_ccert = no
        peer = "(No client certificate requested)"
    elif ssl_object.getpeercert(binary_form=True):
        peer = "(Client certificate not verified)"
    else:
        peer = "(Client did not present a certificate)"
    return f"(using {ssl_object.version()} with cipher {name} ({bits}/{bits} bits))\n{peer}"
