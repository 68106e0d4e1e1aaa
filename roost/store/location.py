"""mail_location and the mail settings of dovecot.conf, resolved for one user.

Implements Dovecot 2.3's mail location syntax (doc.dovecot.org "Mail Location"):
`format:path[:KEY=value]...` with format `maildir` or `mbox`, keys LAYOUT (maildir++ or fs),
INBOX, INDEX, CONTROL, DIRNAME, VOLATILEDIR (others kept), `::` for a literal colon; `%`
variables (%u %n %d %h and the long forms, roost.auth.variables) expanded first, then a leading
`~` or `~/` becomes the home directory. The userdb `mail` field replaces mail_location; an
empty location autodetects like Dovecot (~/Maildir, then ~/mail or ~/Mail with /var/mail/%u).
Also the UID rules (mail_uid/mail_gid when the userdb gives none, first_valid_uid,
last_valid_uid, first_valid_gid, last_valid_gid: "Mail access for users with UID N not
permitted") and the inbox namespace's `mailbox` blocks (special_use, auto =
no|create|subscribe).

Invariants: MailSettings is frozen and built once per worker; resolve_location raises only
StoreError subclasses, with Dovecot's wording.
Security: a %u/%n/%d/%h value containing "/" segments "." or "..", or a NUL, is refused
(MailAccessDenied), so a user name cannot point the location outside its intended tree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from roost.auth.variables import VariableError, expand, split_user
from roost.store.api import StoreError

KNOWN_DRIVERS = ("maildir", "mbox")


class MailAccessDenied(StoreError):
    """The user may not access mail (UID rules, bad location, missing home)."""


@dataclass(frozen=True)
class AutoMailbox:
    """A `mailbox NAME { special_use = ...  auto = ... }` block of the inbox namespace."""
    name: str
    special_use: str | None = None  # \Sent \Drafts \Trash \Junk \Archive (RFC 6154)
    auto: str = "no"  # no | create | subscribe


@dataclass(frozen=True)
class MailSettings:
    """The mail storage settings of dovecot.conf, as one worker sees them."""
    mail_location: str = ""
    mail_home: str = ""
    mail_uid: str = ""
    mail_gid: str = ""
    first_valid_uid: int = 500
    last_valid_uid: int = 0
    first_valid_gid: int = 1
    last_valid_gid: int = 0
    mail_fsync: str = "optimized"
    separator: str = ""  # namespace inbox separator; "" = the layout's own
    prefix: str = ""
    mailboxes: tuple[AutoMailbox, ...] = ()
    plugin: dict[str, str] = field(default_factory=dict)  # quota_rule, quota_rule2, ...
    mail_plugins: str | None = None  # None: not known (quota rules apply as given)
    maildir_copy_with_hardlinks: bool = True
    mbox_lock_timeout: float = 300.0  # seconds
    mbox_dotlock_change_timeout: float = 120.0
    check_uids: bool = True  # off only for tools acting on a path directly

    @property
    def quota_rule(self) -> str:
        return self.plugin.get("quota_rule", "")

    @classmethod
    def from_dovecot(cls, view) -> "MailSettings":
        """From a roost.config.dovecot_settings.DovecotSettings view."""
        namespace = inbox_namespace(view.config.root) if view is not None else None
        mailboxes: list[AutoMailbox] = []
        separator = prefix = ""
        if namespace is not None:
            separator = namespace.get("separator", "") or ""
            prefix = namespace.get("prefix", "") or ""
            for block in namespace.sections("mailbox"):
                special = (block.get("special_use", "") or "").split()
                mailboxes.append(AutoMailbox(block.name, special[0] if special else None,
                                             (block.get("auto", "no") or "no").lower()))
        return cls(
            mail_location=view.str("mail_location"), mail_home=view.str("mail_home"),
            mail_uid=view.str("mail_uid"), mail_gid=view.str("mail_gid"),
            first_valid_uid=view.int("first_valid_uid"), last_valid_uid=view.int("last_valid_uid"),
            first_valid_gid=view.int("first_valid_gid"), last_valid_gid=view.int("last_valid_gid"),
            mail_fsync=view.str("mail_fsync") or "optimized", separator=separator, prefix=prefix,
            mailboxes=tuple(mailboxes),
            plugin={name: s.value for name, s in view.plugin.items()},
            mail_plugins=view.str("mail_plugins"),
            maildir_copy_with_hardlinks=view.bool("maildir_copy_with_hardlinks"),
            mbox_lock_timeout=view.time("mbox_lock_timeout"),
            mbox_dotlock_change_timeout=view.time("mbox_dotlock_change_timeout"))


def inbox_namespace(root):
    """The namespace with `inbox = yes` (else the first one), or None."""
    spaces = list(root.sections("namespace"))
    for space in spaces:
        if (space.get("inbox", "no") or "no").lower() in ("yes", "y", "1", "true"):
            return space
    return spaces[0] if spaces else None


@dataclass(frozen=True)
class MailLocation:
    """A mail_location resolved for one user: absolute paths, ready for a backend."""
    driver: str  # maildir | mbox
    root: str  # the mail root directory
    inbox: str | None = None  # INBOX= (mbox spool file, or a Maildir elsewhere)
    layout: str = "maildir++"  # maildir++ | fs
    index: str | None = None  # INDEX= (a directory or "MEMORY")
    control: str | None = None  # CONTROL=
    options: dict[str, str] = field(default_factory=dict)  # every KEY=value, upper-case keys
    home: str | None = None
    uid: int | None = None
    gid: int | None = None


def split_location(location: str) -> tuple[str, str, dict[str, str]]:
    """(driver, path, {KEY: value}) of `format:path:KEY=value...`; `::` is a literal `:`."""
    parts: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(location):
        char = location[index]
        if char == ":" and location.startswith("::", index):
            current.append(":")
            index += 2
            continue
        if char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    driver, path, rest = "", "", parts
    if len(parts) > 1 and "=" not in parts[0] and "/" not in parts[0] and parts[0] != "~":
        driver, path, rest = parts[0].lower(), parts[1], parts[2:]
    else:
        path, rest = parts[0], parts[1:]
    options: dict[str, str] = {}
    for item in rest:
        key, _eq, value = item.partition("=")
        if key:
            options[key.upper()] = value
    return driver, path, options


def expand_home(path: str, home: str | None) -> str:
    """A leading `~` or `~/` is the home directory (Dovecot's home_expand)."""
    if path == "~" or path.startswith("~/"):
        if not home:
            raise MailAccessDenied(
                "Home directory not set for user. Can't expand ~/ for mail root dir")
        return home.rstrip("/") + path[1:] if path != "~" else home
    return path


def _safe_value(name: str, value: str | None) -> None:
    """A user name must not carry path syntax into the location."""
    if value and ("\0" in value or "/" in value or value in (".", "..")):
        raise MailAccessDenied(f"Invalid {name} for a mail path")


def autodetect(home: str | None) -> str:
    """What Dovecot finds when mail_location is empty; roost falls back to ~/Maildir."""
    if home:
        if os.path.isdir(os.path.join(home, "Maildir", "cur")):
            return "maildir:~/Maildir"
        for name in ("mail", "Mail"):
            if os.path.isdir(os.path.join(home, name)):
                return f"mbox:~/{name}:INBOX=/var/mail/%u"
        return "maildir:~/Maildir"
    raise MailAccessDenied("Mail storage autodetection failed with home=(not set)")


def numeric_id(value: str | None, kind: str) -> int | None:
    """A userdb/mail_uid value: a number or a system user/group name."""
    if value is None or value == "":
        return None
    if value.isdigit():
        return int(value)
    try:
        if kind == "uid":
            import pwd

            return pwd.getpwnam(value).pw_uid
        import grp

        return grp.getgrnam(value).gr_gid
    except (KeyError, ImportError):
        raise MailAccessDenied(f"Unknown {'user' if kind == 'uid' else 'group'} name '{value}'")


def check_ids(uid: int | None, gid: int | None, mail: MailSettings) -> None:
    """Dovecot's first/last_valid_uid and _gid rules (mail-storage-service.c wording)."""
    if not mail.check_uids:
        return
    if uid is not None and (uid < mail.first_valid_uid
                            or (mail.last_valid_uid and uid > mail.last_valid_uid)):
        raise MailAccessDenied(
            f"Mail access for users with UID {uid} not permitted "
            "(see first_valid_uid in config file, uid from userdb lookup).")
    if gid is not None and (gid < mail.first_valid_gid
                            or (mail.last_valid_gid and gid > mail.last_valid_gid)):
        raise MailAccessDenied(
            f"Mail access for users with GID {gid} not permitted "
            "(see first_valid_gid in config file, gid from userdb lookup).")


def resolve_location(user, mail: MailSettings) -> MailLocation:
    """The mail location of `user` (a roost.auth.lookup.UserRecord)."""
    name, domain = split_user(user.user)
    home = user.home or None
    values = {"user": user.user, "username": name, "domain": domain, "home": home or "",
              "uid": user.uid or mail.mail_uid, "gid": user.gid or mail.mail_gid}
    for key in ("user", "username", "domain"):
        _safe_value(key, values[key])
    try:
        if not home and mail.mail_home:
            home = expand_home(expand(mail.mail_home, values), None)
            values["home"] = home
        template = user.mail if user.mail else mail.mail_location
        if not template:
            template = autodetect(home)
        driver, path, options = split_location(expand(template, values))
    except VariableError as error:
        raise MailAccessDenied(f"mail_location: {error}") from None
    if driver and driver not in KNOWN_DRIVERS:
        raise MailAccessDenied(f"Unknown mail storage driver {driver}")
    if not driver:
        driver = "maildir"
    root = expand_home(path, home) if path else ""
    if not root:
        raise MailAccessDenied("Root mail directory not set")
    if not root.startswith("/"):
        raise MailAccessDenied(f"Relative home directory paths not supported: {root}")
    paths = {key: expand_home(value, home) for key, value in options.items()
             if key in ("INBOX", "INDEX", "CONTROL", "VOLATILEDIR") and value}
    layout = options.get("LAYOUT", "maildir++" if driver == "maildir" else "fs").lower()
    if layout not in ("maildir++", "fs", "index"):
        raise MailAccessDenied(f"Unknown mailbox list layout: {layout}")
    uid = numeric_id(user.uid or mail.mail_uid, "uid")
    gid = numeric_id(user.gid or mail.mail_gid, "gid")
    check_ids(uid, gid, mail)
    return MailLocation(driver, root.rstrip("/") or "/", paths.get("INBOX"), layout,
                        paths.get("INDEX"), paths.get("CONTROL"),
                        {**options, **paths}, home, uid, gid)
