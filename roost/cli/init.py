"""`roost init DIR`: write a complete, commented configuration directory and its state.

Writes what a Postfix + Dovecot administrator expects to find: main.cf (postconf(5)),
master.cf (master(5)), dovecot.conf (Dovecot 2.3), aliases (aliases(5)), the postmap(1)
sources virtual and vmailbox, a Dovecot passwd-file `users` with {SHA512-CRYPT} hashes, a
self-signed certificate, and the state directories (queue, data, Maildirs, runtime).
Mail users live in virtual mailbox domains: Postfix's virtual(8) delivers to
<mail>/<domain>/<user>/Maildir/, the path Dovecot's mail_location serves.

Two layouts (described by `roost init --help` and in the generated files):
- default: loopback only, every service on port-base (2000) + its standard port, state under
  DIR (DIR/spool, DIR/data, DIR/mail, DIR/run), everything owned by the invoking user;
- --system: standard ports on all interfaces, mail_owner `postfix` (else `mail`), the virtual
  mailboxes owned by mail_owner too (roost's workers run as mail_owner), state in
  /var/spool/roost, /var/lib/roost, /var/vmail and
  /run/roost; --state-dir S puts the state under S instead, as in the default layout.

Invariants: nothing is written until every option is validated; an existing configuration
is never overwritten without --force; every file is replaced by rename with its final mode
already set (key and README-demo.txt 0600; users 0600, or with --system 0640 in the group
of Dovecot's default_internal_user, here mail_owner, which reads it); an existing directory keeps its mode;
an existing certificate is kept when it names the host and matches its key; values inserted into the templates are checked to hold no syntax characters.
Security: passwords are stored only as salted SHA512-CRYPT hashes, except in the 0600
README-demo.txt of a non-system instance (the demo prints them); generated passwords come
from `secrets`.
"""

from __future__ import annotations

import argparse
import datetime
import grp
import io
import os
import pwd
import re
import secrets
import shlex
import shutil
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

from roost.cli.install_links import console_script
from roost.config.templates import render
from roost.net import certs

DEFAULT_DOMAIN = "example.test"
DEFAULT_PORT_BASE = 2000
DEMO_USER = "demo"
SYSTEM_STATE = {"queue": "/var/spool/roost", "data": "/var/lib/roost", "mail": "/var/vmail",
                "run": "/run/roost"}
# Characters allowed in directory names written into the configuration files: no whitespace
# (list separator), no "$" "%" (Postfix/Dovecot expansion), ":" (mail_location), "#" "," "{" ...
SAFE_PATH = re.compile(r"[A-Za-z0-9._/+@~-]+")
HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
LOCAL_PART = re.compile(r"[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?")
# Files `init` writes into DIR; any of them existing means "already initialised".
CONFIG_FILES = ("main.cf", "master.cf", "dovecot.conf", "aliases", "virtual", "vmailbox", "users")
ROLE_ALIASES = ("postmaster", "abuse", "mailer-daemon")


@dataclass(frozen=True)
class Service:
    key: str  # template placeholder prefix and master.cf name in the --system layout
    standard_port: int
    protocol: str
    tls: str


SERVICES = (
    Service("smtp", 25, "SMTP (MTA to MTA)", "STARTTLS offered"),
    Service("submission", 587, "SMTP submission", "STARTTLS, then AUTH, required"),
    Service("smtps", 465, "SMTP submission", "implicit TLS (smtps), AUTH required"),
    Service("imap", 143, "IMAP", "STARTTLS (required before login, except from this host)"),
    Service("imaps", 993, "IMAP", "implicit TLS (imaps)"),
    Service("pop3", 110, "POP3", "STLS (required before login, except from this host)"),
    Service("pop3s", 995, "POP3", "implicit TLS (pop3s)"),
    Service("lmtp", 24, "LMTP delivery", "no TLS, 127.0.0.1 only"),
)


@dataclass(frozen=True)
class MailUser:
    local_part: str
    domain: str
    password: str
    generated: bool

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    group: str


@dataclass(frozen=True)
class Plan:
    config_dir: str
    system: bool
    force: bool
    hostname: str
    domain: str
    users: tuple[MailUser, ...]
    ports: dict[str, int]
    queue_directory: str
    data_directory: str
    mail_directory: str
    run_directory: str
    mail_owner: Account
    vmail: Account
    internal: Account  # Dovecot's default_internal_user: runs auth, reads the users file
    login_user: str

    def path(self, name: str) -> str:
        return os.path.join(self.config_dir, name)

    @property
    def cert_file(self) -> str:
        return self.path("tls/cert.pem")

    @property
    def key_file(self) -> str:
        return self.path("tls/key.pem")

    @property
    def base_dir(self) -> str:
        return os.path.join(self.run_directory, "dovecot")

    @property
    def mail_domains(self) -> list[str]:
        return list(dict.fromkeys([self.domain, *(u.domain for u in self.users)]))

    @property
    def mydestination(self) -> list[str]:
        names = ["$myhostname", "localhost.$mydomain", "localhost"]
        return names[1:] if self.hostname == self.domain else names


class UsageError(Exception):
    """An option is invalid; the message says which and why."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roost init", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write a complete configuration directory (main.cf, master.cf, dovecot.conf, "
                    "aliases, users, a self-signed certificate) and its state directories.",
        epilog="layouts:\n"
               "  default   127.0.0.1 only, ports 2000 + standard port (2025 smtp, 2587 submission,\n"
               "            2465 smtps, 2143 imap, 2993 imaps, 2110 pop3, 2995 pop3s, 2024 lmtp);\n"
               "            state in DIR/spool, DIR/data, DIR/mail, DIR/run; owned by you\n"
               "  --system  standard ports on all interfaces; mail_owner postfix (else mail),\n"
               "            mailboxes owned by mail_owner too; state in /var/spool/roost,\n"
               "            /var/lib/roost, /var/vmail, /run/roost (or under --state-dir)")
    parser.add_argument("directory", metavar="DIR", nargs="?",
                        help="configuration directory to create (default: -c DIR, $MAIL_CONFIG)")
    parser.add_argument("--domain", default=DEFAULT_DOMAIN,
                        help=f"mail domain of the users (default {DEFAULT_DOMAIN})")
    parser.add_argument("--hostname", help="host name (default mail.DOMAIN)")
    parser.add_argument("--user", action="append", default=[], metavar="NAME[:PASSWORD]",
                        help="a mail user (NAME or NAME@DOMAIN); repeatable; without a password "
                             "one is generated; default: one user 'demo'")
    parser.add_argument("--port-base", type=int, metavar="N",
                        help="listen on N + each standard port (default 2000, 0 with --system)")
    parser.add_argument("--system", action="store_true",
                        help="a real server: standard ports, all interfaces, state in /var")
    parser.add_argument("--state-dir", metavar="S",
                        help="keep queue, data, mail and runtime state under S")
    parser.add_argument("--force", action="store_true", help="overwrite an existing configuration")
    return parser


def valid_hostname(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(HOST_LABEL.fullmatch(label) for label in labels)


def safe_directory(path: str, what: str) -> str:
    absolute = os.path.abspath(path)
    if not SAFE_PATH.fullmatch(absolute):
        raise UsageError(f"{what} {absolute!r} may only contain letters, digits and . _ / + @ ~ -"
                         " (the path is written into main.cf and dovecot.conf)")
    return absolute


def parse_user(spec: str, default_domain: str) -> MailUser:
    name, has_password, password = spec.partition(":")
    name = name.strip().lower()
    local_part, _, domain = name.partition("@")
    domain = domain or default_domain
    if not LOCAL_PART.fullmatch(local_part) or ".." in local_part:
        raise UsageError(f"--user {name!r}: the name must be letters, digits and . _ - "
                         "(not first or last), at most 64 characters")
    if not valid_hostname(domain):
        raise UsageError(f"--user {name!r}: {domain!r} is not a valid domain name")
    if has_password and not password:
        raise UsageError(f"--user {name!r}: empty password (omit ':' to generate one)")
    if any(ch in password for ch in "\r\n\0"):
        raise UsageError(f"--user {name!r}: the password may not contain line breaks or NUL")
    if not has_password:
        return MailUser(local_part, domain, secrets.token_urlsafe(12), generated=True)
    return MailUser(local_part, domain, password, generated=False)


def account(name: str) -> Account:
    entry = pwd.getpwnam(name)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, group_name(entry.pw_gid))


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _group_id(name: str, fallback: int) -> int:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return fallback


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def first_existing_user(*names: str) -> str | None:
    return next((name for name in names if user_exists(name)), None)


def invoking_account() -> Account:
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        raise UsageError(f"user ID {uid} has no passwd entry; mail_owner needs a user name") from None
    return Account(name, uid, gid, group_name(gid))


def accounts(system: bool) -> tuple[Account, Account, Account, str]:
    """(mail_owner, mailbox owner, Dovecot internal user, Dovecot login user)."""
    if not system:
        me = invoking_account()
        return me, me, me, me.name
    owner_name = first_existing_user("postfix", "mail")
    if owner_name is None:
        raise UsageError("--system needs a 'postfix' or 'mail' user to run as (mail_owner)")
    owner = account(owner_name)
    # roost's workers (virtual(8), LMTP, IMAP, POP3) all run as mail_owner once the master
    # gave up root, so the virtual mailboxes must be that account's to be written and read
    vmail = owner
    internal = owner  # roost's auth runs as mail_owner too: it must read the users file
    login = owner.name  # the IMAP/POP3 logins run inside the workers too (roost.config.process_users)
    return owner, vmail, internal, login


def state_under(root: str) -> dict[str, str]:
    return {"queue": os.path.join(root, "spool"), "data": os.path.join(root, "data"),
            "mail": os.path.join(root, "mail"), "run": os.path.join(root, "run")}


def make_plan(options: argparse.Namespace, config_dir: str) -> Plan:
    directory = safe_directory(options.directory or config_dir, "DIR")
    domain = options.domain.strip().lower().rstrip(".")
    if not valid_hostname(domain) or "." not in domain:
        raise UsageError(f"--domain {options.domain!r} is not a valid domain name (like example.org)")
    hostname = (options.hostname or f"mail.{domain}").strip().lower().rstrip(".")
    if not valid_hostname(hostname):
        raise UsageError(f"--hostname {options.hostname!r} is not a valid host name")
    users = [parse_user(spec, domain) for spec in options.user] or [parse_user(DEMO_USER, domain)]
    addresses = [u.address for u in users]
    duplicates = sorted({a for a in addresses if addresses.count(a) > 1})
    if duplicates:
        raise UsageError(f"--user given twice for {', '.join(duplicates)}")
    local_domains = {hostname, f"localhost.{domain}", "localhost"} - {domain}
    clashing = sorted({u.domain for u in users} & local_domains)
    if clashing:
        raise UsageError(f"user domain {clashing[0]} is also a local(8) domain (mydestination); "
                         "give users addresses in the mail domain")
    base = options.port_base if options.port_base is not None else (
        0 if options.system else DEFAULT_PORT_BASE)
    ports = {service.key: base + service.standard_port for service in SERVICES}
    if base < 0 or max(ports.values()) > 65535:
        raise UsageError(f"--port-base {base}: ports must lie in 1..65535 "
                         f"(the highest is base + 995 = {base + 995})")
    if options.state_dir:
        dirs = state_under(safe_directory(options.state_dir, "--state-dir"))
    else:
        dirs = dict(SYSTEM_STATE) if options.system else state_under(directory)
    owner, vmail, internal, login_user = accounts(options.system)
    return Plan(config_dir=directory, system=options.system, force=options.force,
                hostname=hostname, domain=domain, users=tuple(users), ports=ports,
                queue_directory=dirs["queue"], data_directory=dirs["data"],
                mail_directory=dirs["mail"], run_directory=dirs["run"], mail_owner=owner,
                vmail=vmail, internal=internal, login_user=login_user)


# ---- writing -------------------------------------------------------------------------------

def _chown(path: str, uid: int, gid: int) -> None:
    if os.geteuid() == 0:
        os.chown(path, uid, gid, follow_symlinks=False)


def make_directory(path: str, mode: int, owner: Account | None = None) -> None:
    """Create `path` with `mode` and owner; a directory that already exists is left as it is
    (it may be the administrator's, e.g. `roost init ~/mail`)."""
    if os.path.isdir(path):
        return
    os.makedirs(path)
    os.chmod(path, mode)
    if owner is not None:
        _chown(path, owner.uid, owner.gid)


def create_directories(plan: Plan) -> None:
    owner, vmail = plan.mail_owner, plan.vmail
    make_directory(plan.config_dir, 0o755)
    make_directory(plan.path("tls"), 0o755)
    # Postfix's layout: queue_directory belongs to root, its private/ and public/ to mail_owner.
    make_directory(plan.queue_directory, 0o755)
    make_directory(os.path.join(plan.queue_directory, "private"), 0o700, owner)
    public = os.path.join(plan.queue_directory, "public")
    make_directory(public, 0o710, owner)
    if plan.system and os.geteuid() == 0:
        _chown(public, owner.uid, _group_id("postdrop", owner.gid))  # the setgid_group
    make_directory(plan.data_directory, 0o700, owner)
    make_directory(plan.mail_directory, 0o700, vmail)
    make_directory(plan.run_directory, 0o755)
    make_directory(plan.base_dir, 0o755)


def write_text(path: str, text: str, mode: int = 0o644, group: int = -1) -> None:
    certs.write_file_atomically(path, text.encode("utf-8"), mode,
                                -1, group if os.geteuid() == 0 else -1)


def mode_description(plan: Plan) -> str:
    when = datetime.date.today().isoformat()
    if plan.system:
        return f"--system layout, {when}"
    return f"loopback-only layout, ports {plan.ports['smtp'] - 25} + standard port, {when}"


def service_name(plan: Plan, key: str) -> str:
    # --system keeps the /etc/services names an administrator knows; otherwise the port number.
    return key if plan.system and plan.ports[key] == _standard(key) else str(plan.ports[key])


def _standard(key: str) -> int:
    return next(s.standard_port for s in SERVICES if s.key == key)


def template_values(plan: Plan) -> dict[str, str]:
    users_file = plan.path("users")
    common = {"mode_description": mode_description(plan), "config_dir": plan.config_dir,
              "users_file": users_file}
    # Postfix's own master.cf pads the service column to 10 characters.
    width = max(9, *(len(service_name(plan, key)) for key in ("smtp", "submission", "smtps")))
    main = {
        "hostname": plan.hostname, "domain": plan.domain,
        "inet_interfaces": "all" if plan.system else "loopback-only",
        "inet_protocols": "all" if plan.system else "ipv4",
        "mynetworks": "127.0.0.0/8 [::1]/128",
        "mydestination": ", ".join(plan.mydestination),
        "virtual_mailbox_domains": ", ".join(
            "$mydomain" if d == plan.domain else d for d in plan.mail_domains),
        "mail_directory": plan.mail_directory, "vmailbox_file": plan.path("vmailbox"),
        "virtual_file": plan.path("virtual"), "aliases_file": plan.path("aliases"),
        "vmail_uid": str(plan.vmail.uid), "vmail_gid": str(plan.vmail.gid),
        "queue_directory": plan.queue_directory, "data_directory": plan.data_directory,
        "mail_owner": plan.mail_owner.name, "cert_file": plan.cert_file, "key_file": plan.key_file,
        "smtp_port": str(plan.ports["smtp"]), "submission_port": str(plan.ports["submission"]),
        "smtps_port": str(plan.ports["smtps"]),
    }
    master = {f"{key}_service_padded": service_name(plan, key).ljust(width)
              for key in ("smtp", "submission", "smtps")}
    dovecot = {
        "listen": "*, ::" if plan.system else "127.0.0.1", "base_dir": plan.base_dir,
        "internal_user": plan.internal.name, "internal_group": plan.internal.group,
        "login_user": plan.login_user,
        "cert_file": plan.cert_file, "key_file": plan.key_file, "domain": plan.domain,
        "users_file": users_file, "mail_directory": plan.mail_directory,
        "vmail_uid": str(plan.vmail.uid), "vmail_gid": str(plan.vmail.gid),
        "lmtp_socket": os.path.join(plan.queue_directory, "private", "dovecot-lmtp"),
        "auth_socket": os.path.join(plan.queue_directory, "private", "auth"),
        "socket_user": plan.mail_owner.name, "socket_group": plan.mail_owner.group,
        **{f"{key}_port": str(plan.ports[key]) for key in ("imap", "imaps", "pop3", "pop3s", "lmtp")},
    }
    return {"main.cf.tmpl": {**common, **main}, "master.cf.tmpl": {**common, **master},
            "dovecot.conf.tmpl": {**common, **dovecot}}


def aliases_text(plan: Plan) -> str:
    first = plan.users[0].address
    return (
        "# aliases: local(8) aliases of this roost instance, aliases(5) format \"name: target, ...\".\n"
        "# They apply to the local domains in main.cf's mydestination (the host name, localhost).\n"
        f"# After editing run: roost -c {plan.config_dir} newaliases\n"
        "# RFC 5321 requires postmaster; bounces come from mailer-daemon; RFC 2142 asks for abuse.\n"
        "mailer-daemon: postmaster\n"
        "postmaster: root\n"
        "abuse: postmaster\n"
        "# Mail to root (cron jobs, system programs) goes to the first mail user.\n"
        f"root: {first}\n")


def virtual_text(plan: Plan) -> str:
    first = plan.users[0].address
    lines = [
        "# virtual: virtual_alias_maps source (postmap(1) format \"address target, ...\").",
        "# Role addresses of the mail domains go to the first mail user.",
        f"# After editing run: roost -c {plan.config_dir} postmap {plan.path('virtual')}",
    ]
    real = {u.address for u in plan.users}
    for domain in plan.mail_domains:
        lines += [f"{role}@{domain} {first}" for role in ROLE_ALIASES
                  if f"{role}@{domain}" not in real]
    return "\n".join(lines) + "\n"


def vmailbox_text(plan: Plan) -> str:
    lines = [
        "# vmailbox: virtual_mailbox_maps source (postmap(1) format \"address domain/user/Maildir/\").",
        "# Every mail user, and their Maildir relative to virtual_mailbox_base (the final \"/\"",
        "# means Maildir). Keep it in step with the users file, then run:",
        f"#   roost -c {plan.config_dir} postmap {plan.path('vmailbox')}",
    ]
    lines += [f"{u.address} {u.domain}/{u.local_part}/Maildir/" for u in plan.users]
    return "\n".join(lines) + "\n"


def users_text(plan: Plan) -> str:
    from passlib.hash import sha512_crypt

    lines = [
        "# users: Dovecot passwd-file (user:password:uid:gid:gecos:home:shell:extra_fields).",
        "# Make a password hash with: roost doveadm pw -s SHA512-CRYPT",
        "# A new user also needs a line in vmailbox (then run postmap on it).",
    ]
    for u in plan.users:
        hashed = sha512_crypt.using(rounds=5000).hash(u.password)  # doveadm's default rounds
        home = os.path.join(plan.mail_directory, u.domain, u.local_part)
        lines.append(f"{u.address}:{{SHA512-CRYPT}}{hashed}:{plan.vmail.uid}:{plan.vmail.gid}::{home}::")
    return "\n".join(lines) + "\n"


def write_configuration(plan: Plan) -> None:
    for template, values in template_values(plan).items():
        write_text(plan.path(template.removesuffix(".tmpl")), render(template, values))
    write_text(plan.path("aliases"), aliases_text(plan))
    write_text(plan.path("virtual"), virtual_text(plan))
    write_text(plan.path("vmailbox"), vmailbox_text(plan))
    if plan.system:
        # Read by Dovecot's auth process, which runs as default_internal_user.
        write_text(plan.path("users"), users_text(plan), 0o640, plan.internal.gid)
    else:
        write_text(plan.path("users"), users_text(plan), 0o600)


def certificate_reusable(plan: Plan) -> bool:
    """An existing certificate is kept (so clients' trust survives) when it names the host,
    matches its key, and is valid for more than 30 days."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        with open(plan.cert_file, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(plan.key_file, "rb") as handle:
            key = load_pem_private_key(handle.read(), password=None)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    if key.public_key() != cert.public_key():
        return False
    expires = cert.not_valid_after_utc
    return (plan.hostname in names.get_values_for_type(x509.DNSName)
            and expires > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30))


def compile_maps(plan: Plan) -> list[str]:
    """Build the hash: tables with roost's own postalias/postmap; returns notes for the user."""
    from roost.cli.dispatch import run_module

    jobs = [("postalias", plan.path("aliases")), ("postmap", plan.path("virtual")),
            ("postmap", plan.path("vmailbox"))]
    notes = []
    saved = os.environ.get("MAIL_CONFIG")
    os.environ["MAIL_CONFIG"] = plan.config_dir
    try:
        for tool, path in jobs:
            command = f"roost -c {plan.config_dir} {tool} hash:{path}"
            captured = io.StringIO()
            try:
                with redirect_stdout(captured), redirect_stderr(captured):
                    status = run_module(tool, [tool, f"hash:{path}"])
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
            except Exception as error:  # another module's bug must not lose the new config
                status = 1
                captured.write(f"{type(error).__name__}: {error}")
            if status != 0:
                said = captured.getvalue().strip().splitlines()
                reason = f": {said[-1]}" if said else ""
                notes.append(f"could not build hash:{path}{reason}; when fixed, run: {command}")
    finally:
        if saved is None:
            os.environ.pop("MAIL_CONFIG", None)
        else:
            os.environ["MAIL_CONFIG"] = saved
    return notes


def roost_command() -> str:
    script = console_script()
    if script is None:
        return f"{shlex.quote(sys.executable)} -m roost"
    on_path = shutil.which("roost")
    if on_path and os.path.realpath(on_path) == os.path.realpath(script):
        return "roost"
    return shlex.quote(script)


def summary(plan: Plan, with_passwords: bool, kept_certificate: bool = False) -> str:
    roost = roost_command()
    where = "all interfaces" if plan.system else "127.0.0.1 only"
    out = [f"roost configuration in {plan.config_dir}",
           f"  host {plan.hostname}, mail domain{'s' * (len(plan.mail_domains) > 1)} "
           f"{', '.join(plan.mail_domains)}, mail_owner {plan.mail_owner.name}",
           f"  certificate {plan.cert_file} " + (
               f"(existing one kept: it names {plan.hostname})" if kept_certificate else
               f"(new, self-signed for {plan.hostname}, localhost, 127.0.0.1)"),
           "", f"Listening ({where}):"]
    for service in SERVICES:
        out.append(f"  {plan.ports[service.key]:>5}  {service.protocol:<18} {service.tls}")
    out += ["", "Users (log in as the full address, or the name alone in "
                f"{plan.domain}):"]
    for u in plan.users:
        if with_passwords:
            made = " (generated)" if u.generated else ""
            out.append(f"  {u.address:<30} password: {u.password}{made}")
        else:
            out.append(f"  {u.address:<30} password: (not stored; shown by roost init only)")
    out += ["", "Mail is delivered to Maildirs:"]
    out += [f"  {os.path.join(plan.mail_directory, u.domain, u.local_part, 'Maildir')}"
            for u in plan.users]
    if plan.mail_owner.uid == 0:
        out += ["", "Note: written by root without --system, so mail_owner and the mailbox owner"
                    " are root; real Postfix and Dovecot refuse that. Use --system for a server."]
    out += ["", "Start:",
            f"  {roost} -c {plan.config_dir} start-fg    (foreground; Ctrl-C stops)",
            f"  {roost} -c {plan.config_dir} start       (background; then status, reload, stop)",
            f"Check the configuration: {roost} -c {plan.config_dir} check"]
    return "\n".join(out) + "\n"


def existing_configuration(plan: Plan) -> list[str]:
    return [plan.path(name) for name in CONFIG_FILES if os.path.lexists(plan.path(name))]


def run(command: str, config_dir: str, args: list[str], verbose: int) -> int:
    try:
        options = build_parser().parse_args(args)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        plan = make_plan(options, config_dir)
    except UsageError as error:
        print(f"roost init: fatal: {error}", file=sys.stderr)
        return 1
    existing = existing_configuration(plan)
    if existing and not plan.force:
        print(f"roost init: fatal: {existing[0]} already exists: {plan.config_dir} holds a "
              "configuration; use --force to overwrite it (main.cf, master.cf, dovecot.conf, "
              "aliases, virtual, vmailbox, users)", file=sys.stderr)
        return 1
    keep_certificate = certificate_reusable(plan)
    if not keep_certificate and not plan.force and any(
            os.path.lexists(p) for p in (plan.cert_file, plan.key_file)):
        print(f"roost init: fatal: {plan.cert_file} or {plan.key_file} exists but is not a "
              f"usable certificate and key for {plan.hostname}; use --force to replace them",
              file=sys.stderr)
        return 1
    try:
        create_directories(plan)
        if not keep_certificate:
            certs.write_self_signed(plan.cert_file, plan.key_file, plan.hostname)
        write_configuration(plan)
        notes = compile_maps(plan)
        readme = plan.path("README-demo.txt")
        write_text(readme, summary(plan, not plan.system, keep_certificate), 0o600)
    except OSError as error:
        print(f"roost init: fatal: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(summary(plan, True, keep_certificate))
    print(f"This summary is in {readme} (mode 0600"
          f"{', without the passwords' if plan.system else ''}).")
    for note in notes:
        print(f"roost init: warning: {note}", file=sys.stderr)
    return 0
