"""`roost init`: the files and directories it writes, its summary, its option checks.

The real Postfix/Dovecot tools judge the generated files in test_init_interop.py; the
certificate is examined in test_init_certs.py.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.cli import init
from tests.conftest import STANDARD_PORTS, run_roost

USERS = {"alice": "alice-pw", "bob": "bob pass: with spaces & $igns"}
CONFIG_FILES = ("main.cf", "master.cf", "dovecot.conf", "aliases", "virtual", "vmailbox", "users",
                "README-demo.txt", "tls/cert.pem", "tls/key.pem")
STATE_DIRS = ("spool", "spool/private", "spool/public", "data", "mail", "run", "run/dovecot")


def roost_init(directory, *args: str) -> subprocess.CompletedProcess:
    return run_roost("init", str(directory), *args)


def init_ok(directory, *args: str) -> subprocess.CompletedProcess:
    result = roost_init(directory, *args)
    assert result.returncode == 0, result.stderr
    return result


def user_args(users: dict[str, str] = USERS) -> list[str]:
    return [arg for name, pw in users.items() for arg in ("--user", f"{name}:{pw}")]


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One loopback instance on port base 7000 with alice and bob, and init's output."""
    directory = tmp_path_factory.mktemp("init") / "demo"
    result = init_ok(directory, "--port-base", "7000", *user_args())
    return directory, result


def test_writes_every_file_and_state_directory(demo):
    directory, _ = demo
    for name in CONFIG_FILES:
        assert (directory / name).is_file(), name
    for name in STATE_DIRS:
        assert (directory / name).is_dir(), name
    for name in ("main.cf", "master.cf", "dovecot.conf", "aliases", "virtual", "vmailbox"):
        text = (directory / name).read_text()
        assert "@@" not in text, f"{name}: unrendered template placeholder"
        assert text.startswith("# "), f"{name} starts with an explanatory comment"


def test_file_and_directory_modes(demo):
    directory, _ = demo
    assert mode(directory / "tls/key.pem") == 0o600
    assert mode(directory / "users") == 0o600
    assert mode(directory / "README-demo.txt") == 0o600
    assert mode(directory / "tls/cert.pem") == 0o644
    assert mode(directory / "main.cf") == 0o644
    assert mode(directory / "spool/private") == 0o700
    assert mode(directory / "data") == 0o700
    assert mode(directory / "mail") == 0o700
    assert os.stat(directory / "users").st_uid == os.getuid()


def test_every_main_cf_parameter_has_a_comment_above_it(demo):
    directory, _ = demo
    lines = (directory / "main.cf").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"[a-z_]+ =", line):
            assert lines[number - 1].startswith("# "), line


def test_users_file_has_one_hashed_line_per_user_with_owner_and_home(demo):
    directory, _ = demo
    entries = [line.split(":") for line in (directory / "users").read_text().splitlines()
               if line and not line.startswith("#")]
    assert [e[0] for e in entries] == ["alice@example.test", "bob@example.test"]
    for entry in entries:
        assert len(entry) == 8  # user:password:uid:gid:gecos:home:shell:extra
        assert entry[1].startswith("{SHA512-CRYPT}$6$")
        assert (int(entry[2]), int(entry[3])) == (os.getuid(), os.getgid())
        assert entry[5] == str(directory / "mail/example.test" / entry[0].split("@")[0])
    assert "alice-pw" not in (directory / "users").read_text()


def test_summary_lists_ports_users_maildirs_and_how_to_start(demo):
    directory, result = demo
    out = result.stdout
    assert str(directory) in out
    for port, protocol in ((7025, "SMTP"), (7587, "SMTP submission"), (7465, "SMTP submission"),
                           (7143, "IMAP"), (7993, "IMAP"), (7110, "POP3"), (7995, "POP3"),
                           (7024, "LMTP")):
        assert re.search(rf"^\s+{port}\s+{re.escape(protocol)}\b", out, re.M), port
    assert re.search(r"7465 .*implicit TLS", out) and re.search(r"7587 .*STARTTLS", out)
    for name, password in USERS.items():
        assert re.search(rf"{name}@example.test\s+password: {re.escape(password)}$", out, re.M)
        assert str(directory / "mail/example.test" / name / "Maildir") in out
    assert f"-c {directory} start-fg" in out
    assert "127.0.0.1" in out


def test_readme_demo_repeats_the_summary_with_passwords(demo):
    directory, result = demo
    readme = (directory / "README-demo.txt").read_text()
    assert readme in result.stdout
    assert "alice-pw" in readme


def test_map_sources_route_role_addresses_and_mailboxes(demo):
    directory, _ = demo
    aliases = (directory / "aliases").read_text()
    for line in ("mailer-daemon: postmaster", "postmaster: root", "abuse: postmaster",
                 "root: alice@example.test"):
        assert re.search(rf"^{re.escape(line)}$", aliases, re.M), line
    virtual = (directory / "virtual").read_text()
    assert re.search(r"^postmaster@example.test alice@example.test$", virtual, re.M)
    assert re.search(r"^abuse@example.test alice@example.test$", virtual, re.M)
    vmailbox = (directory / "vmailbox").read_text()
    assert re.search(r"^bob@example.test example.test/bob/Maildir/$", vmailbox, re.M)


def test_roost_check_accepts_the_generated_configuration(demo):
    directory, _ = demo
    result = run_roost("-c", str(directory), "check")
    assert result.returncode == 0, result.stderr
    # nothing is unknown, malformed, silently dropped or not acted on: no warning at all
    # (Dovecot's process users name mail_owner, what roost runs them as)
    assert result.stderr == "", result.stderr


def test_refuses_to_overwrite_without_force(tmp_path):
    directory = tmp_path / "cfg"
    init_ok(directory, "--user", "alice:one")
    before = {name: (directory / name).read_bytes() for name in CONFIG_FILES}
    again = roost_init(directory, "--user", "alice:two")
    assert again.returncode == 1
    assert f"{directory}/main.cf already exists" in again.stderr and "--force" in again.stderr
    assert {name: (directory / name).read_bytes() for name in CONFIG_FILES} == before

    forced = init_ok(directory, "--force", "--user", "carol:three")
    assert "carol@example.test" in (directory / "users").read_text()
    assert "alice" not in (directory / "users").read_text()
    # The certificate still names the host, so --force keeps it (clients keep trusting it).
    assert (directory / "tls/cert.pem").read_bytes() == before["tls/cert.pem"]
    assert (directory / "tls/key.pem").read_bytes() == before["tls/key.pem"]
    assert "carol@example.test" in forced.stdout

    renamed = init_ok(directory, "--force", "--hostname", "mx.example.test")
    assert (directory / "tls/cert.pem").read_bytes() != before["tls/cert.pem"]
    assert "mx.example.test" in renamed.stdout


def test_refuses_when_only_another_config_file_exists(tmp_path):
    (tmp_path / "dovecot.conf").write_text("# mine\n")
    result = roost_init(tmp_path)
    assert result.returncode == 1 and "dovecot.conf already exists" in result.stderr
    assert (tmp_path / "dovecot.conf").read_text() == "# mine\n"
    assert not (tmp_path / "main.cf").exists()


def test_default_user_is_demo_with_a_generated_password(tmp_path):
    result = init_ok(tmp_path / "d")
    match = re.search(r"demo@example.test\s+password: (\S+) \(generated\)", result.stdout)
    assert match and len(match.group(1)) >= 12
    assert "2025" in result.stdout and "2993" in result.stdout  # default port base 2000


def test_domain_hostname_and_a_user_in_another_domain(tmp_path):
    directory = tmp_path / "d"
    init_ok(directory, "--domain", "Example.ORG", "--hostname", "mx1.example.org",
            "--user", "alice:a", "--user", "carol@other.test:c")
    main_cf = (directory / "main.cf").read_text()
    assert re.search(r"^myhostname = mx1.example.org$", main_cf, re.M)
    assert re.search(r"^mydomain = example.org$", main_cf, re.M)
    assert re.search(r"^virtual_mailbox_domains = \$mydomain, other.test$", main_cf, re.M)
    assert "postmaster@other.test alice@example.org" in (directory / "virtual").read_text()
    assert "carol@other.test other.test/carol/Maildir/" in (directory / "vmailbox").read_text()


def test_hostname_equal_to_domain_leaves_it_out_of_mydestination(tmp_path):
    directory = tmp_path / "d"
    init_ok(directory, "--domain", "example.net", "--hostname", "example.net")
    main_cf = (directory / "main.cf").read_text()
    assert re.search(r"^mydestination = localhost.\$mydomain, localhost$", main_cf, re.M)


@pytest.mark.parametrize("args, message", [
    (["--port-base", "64600"], "--port-base 64600"),
    (["--port-base", "-1"], "--port-base -1"),
    (["--domain", "bad domain"], "--domain"),
    (["--domain", "localhost"], "--domain"),
    (["--hostname=bad_host.example"], "--hostname"),
    (["--hostname=-bad-.example"], "--hostname"),
    (["--user", "Al ice:pw"], "--user"),
    (["--user", "alice:"], "empty password"),
    (["--user", "a+b:pw"], "--user"),
    (["--user", "alice@bad_domain:pw"], "not a valid domain"),
    (["--user", "alice:x", "--user", "ALICE:y"], "given twice"),
    (["--user", "alice@mail.example.test:pw"], "local(8) domain"),
])
def test_rejects_bad_options_and_writes_nothing(tmp_path, args, message):
    directory = tmp_path / "d"
    result = roost_init(directory, *args)
    assert result.returncode == 1, result.stdout
    assert "roost init: fatal:" in result.stderr and message in result.stderr
    assert not directory.exists()


def test_rejects_a_directory_name_unsafe_in_config_files(tmp_path):
    directory = tmp_path / "my config"
    result = roost_init(directory)
    assert result.returncode == 1 and "may only contain" in result.stderr
    assert not directory.exists()


def test_port_base_zero_gives_the_standard_ports(tmp_path):
    result = init_ok(tmp_path / "d", "--port-base", "0")
    for port in STANDARD_PORTS:
        assert re.search(rf"^\s+{port}\s", result.stdout, re.M), port


def test_system_layout_with_state_dir(tmp_path):
    directory, state = tmp_path / "etc", tmp_path / "state"
    result = init_ok(directory, "--system", "--state-dir", str(state), "--user", "alice:pw")
    main_cf = (directory / "main.cf").read_text()
    owner = "postfix" if init.user_exists("postfix") else "mail"
    assert re.search(rf"^mail_owner = {owner}$", main_cf, re.M)
    assert re.search(r"^inet_interfaces = all$", main_cf, re.M)
    assert re.search(rf"^queue_directory = {state}/spool$", main_cf, re.M)
    master_cf = (directory / "master.cf").read_text()
    for name in ("smtp", "submission", "smtps"):
        assert re.search(rf"^{name}\s+inet\s", master_cf, re.M), name
    assert re.search(r"^listen = \*, ::$", (directory / "dovecot.conf").read_text(), re.M)
    for name in ("spool/private", "data", "mail", "run/dovecot"):
        assert (state / name).is_dir()
    assert not (directory / "spool").exists()
    readme = (directory / "README-demo.txt").read_text()
    assert "pw" not in re.findall(r"password: (\S+)", readme)
    assert "alice@example.test" in readme and "password: pw" in result.stdout
    if os.geteuid() == 0:
        assert mode(directory / "users") == 0o640
        assert os.stat(state / "spool/private").st_uid == init.account(owner).uid


def test_init_directory_defaults_to_the_config_directory(tmp_path):
    result = run_roost("-c", str(tmp_path / "viaC"), "init", "--user", "alice:pw")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "viaC/main.cf").is_file()


# ---- option parsers under garbage --------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parse_user_accepts_only_safe_names(spec):
    try:
        user = init.parse_user(spec, "example.test")
    except init.UsageError:
        return
    assert re.fullmatch(r"[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+", user.address)
    assert not re.search(r"[\r\n\0]", user.password) and user.password


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_safe_directory_never_passes_syntax_characters(path):
    try:
        checked = init.safe_directory(path, "DIR")
    except (init.UsageError, ValueError):  # ValueError: os.path.abspath on a NUL byte
        return
    assert not re.search(r"[\s$%:#,\"'{}<>=\\;]", checked)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_valid_hostname_only_accepts_dns_labels(name):
    if init.valid_hostname(name):
        assert re.fullmatch(r"[a-z0-9.-]+", name) and ".." not in name


def test_an_existing_certificate_for_the_host_is_kept_and_a_foreign_one_refused(tmp_path):
    from roost.net import certs

    directory = tmp_path / "d"
    (directory / "tls").mkdir(parents=True)
    certs.write_self_signed(str(directory / "tls/cert.pem"), str(directory / "tls/key.pem"),
                            "other.example.test")
    refused = roost_init(directory)
    assert refused.returncode == 1 and "not a usable certificate" in refused.stderr
    assert not (directory / "main.cf").exists()

    certs.write_self_signed(str(directory / "tls/cert.pem"), str(directory / "tls/key.pem"),
                            "mail.example.test")
    mine = (directory / "tls/cert.pem").read_bytes()
    kept = init_ok(directory)
    assert (directory / "tls/cert.pem").read_bytes() == mine
    assert "existing one kept" in kept.stdout


def test_an_existing_directory_keeps_its_mode(tmp_path):
    directory = tmp_path / "d"
    directory.mkdir(mode=0o750)
    os.chmod(directory, 0o750)
    init_ok(directory)
    assert mode(directory) == 0o750


def test_system_layout_defaults_to_fhs_state_directories():
    options = init.build_parser().parse_args(["/etc/roost", "--system"])
    plan = init.make_plan(options, "/unused")
    assert (plan.queue_directory, plan.data_directory, plan.mail_directory, plan.base_dir) == (
        "/var/spool/roost", "/var/lib/roost", "/var/vmail", "/run/roost/dovecot")
    assert plan.ports == {s.key: s.standard_port for s in init.SERVICES}
    assert plan.mail_owner.name == ("postfix" if init.user_exists("postfix") else "mail")
