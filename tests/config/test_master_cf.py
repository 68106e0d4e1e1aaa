"""master.cf parsing: fields, overrides, arguments, defaults and duplicates.

Where real Postfix can tell (postconf -F for the fields, postconf -P for the `-o` overrides)
it is the oracle; the rest checks master(8)/getopt(3) semantics that postconf does not model.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from roost.config.diagnostics import Diagnostics, Severity
from roost.config.master_cf import (
    MasterService, active_services, effective_chroot, effective_maxproc, effective_private,
    effective_unpriv, effective_wakeup, parse_master_cf, parse_master_cf_text, service_identity,
)
from tests.conftest import DATA, require_tool

FIXTURES = sorted((DATA / "mastercf").glob("*.master.cf"))
FIELDS = ("service", "type", "private", "unprivileged", "chroot", "wakeup", "process_limit")


def config_dir(tmp_path: Path, master_cf: str | Path) -> Path:
    directory = tmp_path / "etc"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.cf").write_text("")
    text = master_cf.read_bytes() if isinstance(master_cf, Path) else master_cf.encode()
    (directory / "master.cf").write_bytes(text)
    for name in ("main.cf", "master.cf"):
        # postconf waits while a file's mtime is "now" (it may still be being edited).
        past = time.time() - 60
        os.utime(directory / name, (past, past))
    return directory


def postconf(directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("postconf"), "-c", str(directory), *args],
                          capture_output=True, timeout=30)


def parse(directory: Path) -> tuple[tuple[MasterService, ...], Diagnostics]:
    diags = Diagnostics()
    return parse_master_cf(str(directory / "master.cf"), diags), diags


def test_at_least_ten_fixtures_including_debian_default():
    names = {path.name for path in FIXTURES}
    assert len(names) >= 10
    assert {"debian.master.cf", "debian_submission_smtps.master.cf"} <= names
    require_tool("postconf")  # Debian's postfix package ships the distribution master.cf
    shipped = Path("/usr/share/postfix/master.cf.dist")
    assert (DATA / "mastercf" / "debian.master.cf").read_bytes() == shipped.read_bytes()


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_fixed_fields_match_postconf_F(tmp_path, fixture):
    directory = config_dir(tmp_path, fixture)
    services, _ = parse(directory)
    real = postconf(directory, "-F")
    assert real.returncode == 0, real.stderr
    expected = [line.split(" = ", 1) for line in real.stdout.decode().splitlines()]
    ours = []
    for service in services:
        values = (service.name, service.type, service.private, service.unpriv, service.chroot,
                  service.wakeup, service.maxproc)
        ours.extend([f"{service.key}/{field}", value] for field, value in zip(FIELDS, values))
    assert ours == [pair for pair in expected if not pair[0].endswith("/command")]


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if f.name != "options_mix.master.cf"],
                         ids=lambda p: p.name)
def test_overrides_match_postconf_P(tmp_path, fixture):
    directory = config_dir(tmp_path, fixture)
    services, diags = parse(directory)
    assert not diags.has_fatal(), [str(d) for d in diags.items]
    real = postconf(directory, "-P")
    assert real.returncode == 0, real.stderr
    ours = Counter()
    for service in services:
        last_wins = dict(service.overrides)  # postconf -P shows one value per name and entry
        ours.update(f"{service.key}/{name} = {' '.join(value.split())}".rstrip()
                    for name, value in last_wins.items())
    theirs = Counter(" ".join(line.split()) for line in real.stdout.decode().splitlines())
    assert ours == theirs


def test_debian_default_services(tmp_path):
    services, diags = parse(config_dir(tmp_path, DATA / "mastercf" / "debian.master.cf"))
    assert diags.items == []
    relay = next(s for s in services if s.key == "relay/unix")
    assert relay.overrides == (("syslog_name", "postfix/$service_name"),)
    assert relay.process_name == "smtp" and relay.service_name == "relay"
    maildrop = next(s for s in services if s.name == "maildrop")
    assert maildrop.args == ("flags=DRXhu", "user=vmail", "argv=/usr/bin/maildrop", "-d", "${recipient}")
    assert maildrop.overrides == ()
    postlog = next(s for s in services if s.name == "postlog")
    assert postlog.type == "unix-dgram"
    smtp_inet = services[0]
    assert (smtp_inet.key, smtp_inet.line, smtp_inet.file) == (
        "smtp/inet", 12, str(tmp_path / "etc" / "master.cf"))


def test_submission_block_uncommented_the_seed_way(tmp_path):
    services, diags = parse(config_dir(tmp_path, DATA / "mastercf" / "debian_submission_smtps.master.cf"))
    assert diags.items == []
    by_key = {s.key: s for s in services}
    submission = by_key["submission/inet"]
    assert dict(submission.overrides)["smtpd_tls_security_level"] == "encrypt"
    assert dict(submission.overrides)["smtpd_client_restrictions"] == ""
    assert len(submission.overrides) == 11  # comment lines inside the block are skipped
    assert dict(by_key["smtps/inet"].overrides)["smtpd_tls_wrappermode"] == "yes"


def test_braced_overrides_keep_blanks_and_join_continuations(tmp_path):
    services, diags = parse(config_dir(tmp_path, DATA / "mastercf" / "braced_overrides.master.cf"))
    assert diags.items == []
    overrides = dict(services[0].overrides)
    assert overrides["smtpd_client_restrictions"] == "permit_sasl_authenticated, reject"
    assert overrides["smtpd_banner"] == "$myhostname ESMTP {braces} inside"
    assert overrides["smtpd_sender_restrictions"] == ""
    # Physical lines are joined without a separator; the continuation's indent stays.
    assert overrides["smtpd_recipient_restrictions"] == (
        "permit_sasl_authenticated,       reject_unauth_destination")


def test_daemon_options_follow_getopt(tmp_path):
    services, diags = parse(config_dir(tmp_path, DATA / "mastercf" / "options_mix.master.cf"))
    assert diags.items == []
    by_name = {s.name: s for s in services}
    assert by_name["smtp"].args == ("-v", "-D")
    assert by_name["relay"].overrides == (("syslog_name", "postfix/relay"), ("name", "value"))
    assert by_name["relay"].args == ("-v",)
    # -n takes a value for Postfix daemons, so the -o after it is still an override
    # (postconf -M/-P stop at "smtp/inet", which is why this fixture has no -P parity test).
    assert by_name["alt"].args == ("-n", "smtp/inet")
    assert by_name["alt"].overrides == (("smtp_bind_address", "127.0.0.1"),)
    # After "--" everything is an argument.
    assert by_name["local2"].args == ("-v", "--", "-o", "not_an_override=1")
    assert by_name["local2"].overrides == ()
    assert by_name["verbose"].args == ("-v", "-v")


def test_pipe_argv_options_are_not_daemon_options(tmp_path):
    services, diags = parse(config_dir(tmp_path, DATA / "mastercf" / "pipe_services.master.cf"))
    assert diags.items == []
    by_name = {s.name: s for s in services}
    spamassassin = by_name["spamassassin"]
    assert spamassassin.overrides == ()
    assert spamassassin.args == ("user=debian-spamd", "argv=/usr/bin/spamc", "-f", "-e",
                                 "/usr/sbin/sendmail", "-oi", "-f", "${sender}", "${recipient}")
    assert by_name["filter"].overrides == (("syslog_name", "postfix/filter"),)
    assert by_name["filter"].args[0] == "flags=Rq"
    assert by_name["grouped"].args == ("flags=q.", "user=nobody", "argv=/bin/echo", "two words",
                                       "a b", "${recipient}")
    assert len(dict(by_name["127.0.0.1:10025"].overrides)) == 11


def test_effective_values_resolve_dashes():
    text = ("a unix - - - - - cmd\n"
            "b unix n y y 60 1 cmd\n"
            "c unix y n n 1000? 0 cmd\n"
            "d unix - - - 0? - cmd\n")
    a, b, c, d = parse_master_cf_text(text, "master.cf", Diagnostics())
    assert (effective_private(a), effective_unpriv(a)) == (True, True)
    assert (effective_private(b), effective_unpriv(b), effective_chroot(b)) == (False, True, True)
    assert (effective_private(c), effective_unpriv(c), effective_chroot(c)) == (True, False, False)
    assert effective_chroot(a, "0") is True  # Postfix < compatibility_level 1: chroot by default
    assert effective_chroot(a, "2") is False and effective_chroot(a, "3.6") is False
    assert effective_wakeup(a) == (0, False)
    assert effective_wakeup(b) == (60, False)
    assert effective_wakeup(c) == (1000, True)
    assert effective_wakeup(d) == (0, False)  # "0?" never wakes
    assert effective_maxproc(a, 100) == 100
    assert effective_maxproc(b, 100) == 1
    assert effective_maxproc(c, 100) == 0  # 0 = no limit


def test_duplicates_warn_and_the_last_entry_wins(tmp_path):
    services, diags = parse(config_dir(tmp_path, DATA / "mastercf" / "duplicates.master.cf"))
    assert [s.line for s in services] == [2, 3, 4, 5, 6]  # postconf -M shows every entry
    assert [(d.severity, d.line) for d in diags.items] == [(Severity.WARNING, 4), (Severity.WARNING, 5)]
    assert "duplicate master.cf entry" in diags.items[0].message
    assert "also at line 2" in diags.items[0].message
    assert "also at line 4" in diags.items[1].message  # "25" is the same service as "smtp"
    active = active_services(services)
    # private "n" and "-" make public/pickup and private/pickup: two different services.
    assert [(s.name, s.line) for s in active] == [("25", 5), ("pickup", 3), ("pickup", 6)]
    assert service_identity(active[0]) == "inet:25"


def test_same_name_different_type_is_not_a_duplicate():
    diags = Diagnostics()
    services = parse_master_cf_text("smtp inet n - n - - smtpd\nsmtp unix - - n - - smtp\n",
                                    "master.cf", diags)
    assert diags.items == [] and len(active_services(services)) == 2


def test_missing_file_is_fatal(tmp_path):
    diags = Diagnostics()
    assert parse_master_cf(str(tmp_path / "absent" / "master.cf"), diags) == ()
    assert diags.has_fatal() and diags.items[0].line is None
    assert "No such file" in diags.items[0].message


def test_blank_lines_and_comments_do_not_end_an_entry():
    text = "smtp inet n - n - - smtpd\n\n#  -o a=1\n   \n  # x\n  -o b=2\n\t-o c=3\nnext unix - - n - - x\n"
    diags = Diagnostics()
    smtp, following = parse_master_cf_text(text, "m.cf", diags)
    assert diags.items == []
    assert smtp.overrides == (("b", "2"), ("c", "3"))
    assert following.line == 8
