"""The `prefetch` userdb: the `userdb_*` fields the passdb returned at login.

Implements Dovecot 2.3's prefetch userdb (doc.dovecot.org "Prefetch userdb"): after a login,
the userdb fields are the passdb's `userdb_`-prefixed extra fields (AuthResult.userdb_fields),
so no second lookup is needed. Without a login (LMTP delivery, `doveadm user`) there is nothing
prefetched and the user is unknown here, so a later userdb answers, as in Dovecot.

Invariants: lookups never raise; args are ignored (Dovecot takes none).
Security: only fields the passdb returned for this same user are used.
"""

from __future__ import annotations

from roost.auth.passdb import AuthContext
from roost.auth.userdb import UserdbResult, UserdbStatus
from roost.config.diagnostics import Diagnostics, excerpt


class PrefetchUserdb:
    driver = "prefetch"

    @classmethod
    def from_args(cls, args: str, file: str, line: int, diags: Diagnostics) -> "PrefetchUserdb":
        if args.strip():
            diags.warning(file, line, f"userdb prefetch: args '{excerpt(args)}' ignored")
        return cls()

    def lookup(self, context: AuthContext, prefetched: dict[str, str] | None = None
               ) -> UserdbResult:
        if prefetched is None:
            return UserdbResult(UserdbStatus.UNKNOWN_USER)
        return UserdbResult(UserdbStatus.OK, dict(prefetched))
