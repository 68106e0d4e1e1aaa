"""Dovecot's process users in roost: `default_internal_user`, `default_internal_group` and
`default_login_user` (dovecot.conf; Dovecot 2.3, "Service configuration").

Dovecot runs auth and its other internal processes as default_internal_user/group and the
pre-login processes (imap-login, pop3-login) as default_login_user. roost serves auth and the
logins inside its service workers, which run as main.cf's `mail_owner` once the master has
given up root (roost.master.privileges). The three settings are acted on by holding them
against mail_owner: naming mail_owner (and its primary group), as `roost init` writes them,
is exactly what runs; naming another account gets a warning that says what runs instead.

Invariants: only settings written in dovecot.conf are checked (Dovecot's compiled-in
defaults, dovecot and dovenull, describe Dovecot's own process layout, not a choice).
Security: account names are only compared, never switched to here.
"""

from __future__ import annotations

import grp
import pwd

from roost.config.diagnostics import Diagnostics, excerpt

# setting -> (names a group, what roost runs inside its workers instead)
SETTINGS = {"default_internal_user": (False, "auth"), "default_internal_group": (True, "auth"),
            "default_login_user": (False, "the IMAP and POP3 logins")}


def owner_group(mail_owner: str) -> str | None:
    """mail_owner's primary group name (None when the account or group is unknown)."""
    try:
        return grp.getgrgid(pwd.getpwnam(mail_owner).pw_gid).gr_name
    except (KeyError, OverflowError):
        return None


def check_process_users(dovecot, mail_owner: str, diags: Diagnostics) -> None:
    settings = dovecot.root.settings
    group = None
    for name, (is_group, what_runs) in SETTINGS.items():
        setting = settings.get(name)
        if setting is None:
            continue
        if is_group:
            group = group or owner_group(mail_owner) or mail_owner
            expected, account = group, f"mail_owner {mail_owner}'s group {group}"
        else:
            expected, account = mail_owner, f"mail_owner {mail_owner}"
        if setting.value != expected:
            diags.warning(setting.file, setting.line,
                          f"{name} = {excerpt(setting.value)}: roost runs {what_runs} "
                          f"inside its workers, as {account}")
