"""The `pam` passdb: passwords checked by the system's PAM stack (python-pam).

Implements Dovecot 2.3's PAM passdb (doc.dovecot.org "PAM"): args `[session=yes]
[setcred=yes] [failure_show_msg=yes] [cache_key=...] [max_requests=N] [*|SERVICE]`; the PAM
service name is the last word, default `dovecot` (/etc/pam.d/dovecot), `*` meaning the login's
own service (imap, pop3, smtp). pam_authenticate() then pam_acct_mgmt() run as Dovecot does;
PAM cannot tell an unknown user from a wrong password, so both are a password mismatch, logged
as Dovecot logs them: `pam(bob,1.2.3.4): pam_authenticate() failed: Authentication failure
(password mismatch?)`.

Invariants: `verify` never raises; a missing python-pam or libpam is an internal failure.
Security: PAM modules may sleep on failure (pam_faildelay): callers run this in a worker
thread, never on the event loop; the password goes only to PAM.
"""

from __future__ import annotations

from roost.auth.passdb import (AuthContext, PassdbResult, PassdbStatus, VerifyFn,
                               internal_failure)
from roost.config.diagnostics import Diagnostics, excerpt

DEFAULT_SERVICE = "dovecot"
KNOWN_OPTIONS = ("session", "setcred", "failure_show_msg", "cache_key", "max_requests")
# PAM return codes (security/_pam_types.h) that mean "the user or the password is wrong".
PAM_AUTH_ERR = 7
PAM_USER_UNKNOWN = 10
PAM_MAXTRIES = 11
PAM_ACCT_EXPIRED = 13
PAM_NEW_AUTHTOK_REQD = 12
REJECTIONS = (PAM_AUTH_ERR, PAM_USER_UNKNOWN, PAM_MAXTRIES, PAM_ACCT_EXPIRED)


class PamPassdb:
    driver = "pam"

    def __init__(self, service: str = DEFAULT_SERVICE):
        self.service = service

    @classmethod
    def from_args(cls, args: str, file: str, line: int, diags: Diagnostics) -> "PamPassdb":
        service = DEFAULT_SERVICE
        for word in args.split():
            key, eq, _value = word.partition("=")
            if eq and key in KNOWN_OPTIONS:
                continue
            if eq:
                diags.warning(file, line, f"passdb pam: unknown arg '{excerpt(key)}', ignored")
                continue
            service = word
        return cls(service)

    def verify(self, context: AuthContext, verify: VerifyFn) -> PassdbResult:
        """PAM verifies by itself; `verify` is unused (the passdb interface passes it)."""
        service = (context.service or DEFAULT_SERVICE) if self.service == "*" else self.service
        if "\0" in context.user or "\0" in context.password:
            # libpam takes C strings: such a login can only be a forgery; refuse it plainly.
            return PassdbResult(PassdbStatus.MISMATCH, log=(
                ("info", f"{context.log_prefix(self.driver)}: NUL in user name or password"),))
        try:
            import pam  # noqa: PLC0415 - optional dependency, needed only with this driver
            handle = pam.pam()
            ok = handle.authenticate(context.user, context.password, service=service,
                                     resetcreds=False)
        except Exception as error:  # noqa: BLE001 - a broken PAM must not kill the login path
            return internal_failure(self.driver, context,
                                    f"PAM failed: {type(error).__name__}: {error}")
        if ok:
            return PassdbResult(PassdbStatus.OK)
        prefix = context.log_prefix(self.driver)
        if handle.code in REJECTIONS or handle.code == PAM_NEW_AUTHTOK_REQD:
            step = "pam_acct_mgmt()" if handle.code in (PAM_ACCT_EXPIRED, PAM_NEW_AUTHTOK_REQD) \
                else "pam_authenticate()"
            return PassdbResult(PassdbStatus.MISMATCH, log=(
                ("info", f"{prefix}: {step} failed: {handle.reason} (password mismatch?)"),))
        return internal_failure(self.driver, context,
                                f"pam_authenticate() failed: {handle.reason}")
