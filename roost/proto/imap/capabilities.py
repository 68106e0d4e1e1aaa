"""The CAPABILITY list per connection state (RFC 3501 §6.1.1, §7.2.1; RFC 9051 §6.1.1).

Before login, as Dovecot's imap-login announces it: IMAP4rev1, SASL-IR, LOGIN-REFERRALS, ID,
ENABLE, IDLE, LITERAL+ (or LITERAL-), STARTTLS while TLS is possible and not active, AUTH=
for each mechanism, LOGINDISABLED when plaintext authentication is refused
(disable_plaintext_auth without TLS, RFC 3501 §6.2.3). After login: the extensions this
package parses, in Dovecot 2.3's order where Dovecot has them. `imap_capability` (Dovecot
setting) replaces the list; a leading "+" appends to it instead.
Invariants: pure; the order is stable. Security: AUTH=PLAIN/LOGIN are left out when plaintext
authentication is refused, as Dovecot does.
"""

from __future__ import annotations

PRE_LOGIN = ("IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE")
POST_LOGIN = ("IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "SORT",
              "SORT=DISPLAY", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "MULTIAPPEND",
              "UNSELECT", "CHILDREN", "NAMESPACE", "UIDPLUS", "LIST-EXTENDED", "CONDSTORE",
              "QRESYNC", "ESEARCH", "ESORT", "SEARCHRES", "WITHIN", "LIST-STATUS", "BINARY",
              "MOVE", "SPECIAL-USE", "QUOTA", "UTF8=ACCEPT", "COMPRESS=DEFLATE")
PLAINTEXT_MECHANISMS = frozenset({"PLAIN", "LOGIN"})


def capabilities(authenticated: bool, *, tls_active: bool = False, starttls: bool = False,
                 mechanisms: tuple[str, ...] = ("PLAIN",), plaintext_allowed: bool = True,
                 literal_minus: bool = False, imap_capability: str = "",
                 compress: bool = True) -> list[str]:
    literal = "LITERAL-" if literal_minus else "LITERAL+"
    if authenticated:
        caps = [c for c in POST_LOGIN if compress or c != "COMPRESS=DEFLATE"] + [literal]
    else:
        caps = list(PRE_LOGIN) + [literal]
        if starttls and not tls_active:
            caps.append("STARTTLS")
        for mechanism in mechanisms:
            if mechanism.upper() in PLAINTEXT_MECHANISMS and not plaintext_allowed:
                continue
            caps.append("AUTH=" + mechanism.upper())
        if not plaintext_allowed:
            caps.append("LOGINDISABLED")
    configured = imap_capability.split()
    if configured and configured[0].startswith("+"):
        caps += [configured[0][1:]] + configured[1:] if configured[0] != "+" else configured[1:]
    elif configured:
        caps = configured
    return caps
