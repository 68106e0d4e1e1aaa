"""`roost init` output judged by Debian's real Postfix 3.7 and Dovecot 2.3 tools.

postconf/postfix accept main.cf and master.cf with exactly one warning (Postfix does not know
roost's `dovecot_config_file`); doveconf accepts dovecot.conf; doveadm verifies the password
hashes; postmap/postalias accept the map sources and answer as roost's own postmap does; a
real Dovecot started on the generated dovecot.conf authenticates the users and serves their
Maildir at the path init printed, over STARTTLS and implicit TLS with the generated
certificate.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from roost.cli import init
from tests.cli.test_init import USERS, init_ok, user_args
from tests.conftest import free_port_base, require_tool, run_roost

EXPECTED_POSTFIX_WARNING = re.compile(
    r"(?:\S*/)?postconf: warning: (\S+)/main\.cf: unused parameter: "
    r"dovecot_config_file=\$config_directory/dovecot\.conf")
INTERNAL_SERVICES = ("pickup", "cleanup", "qmgr", "rewrite", "bounce", "defer", "trace", "verify",
                     "flush", "proxymap", "smtp", "relay", "showq", "error", "retry", "discard",
                     "local", "virtual", "lmtp", "anvil", "scache", "postlog")


def tool(*argv: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool(argv[0]), *argv[1:]], capture_output=True, text=True,
                          input=input, timeout=60)


def settled(directory):
    """Postfix re-reads a main.cf younger than a couple of seconds until it stops changing
    (about 2 s per command); backdating the new file's mtime spares every test that wait."""
    old = time.time() - 60
    for name in ("main.cf", "master.cf"):
        os.utime(directory / name, (old, old))
    return directory


def unexpected_postfix_warnings(stderr: str, directory) -> list[str]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return [line for line in lines if not (
        (m := EXPECTED_POSTFIX_WARNING.fullmatch(line)) and m.group(1) == str(directory))]


def postconf(directory, *args: str) -> str:
    result = tool("postconf", "-c", str(directory), *args)
    assert result.returncode == 0, result.stderr
    assert unexpected_postfix_warnings(result.stderr, directory) == []
    assert EXPECTED_POSTFIX_WARNING.search(result.stderr) or "-M" in args or "-P" in args
    return result.stdout


def service_port(name: str) -> int:
    port = name.rsplit(":", 1)[-1]
    return int(port) if port.isdigit() else socket.getservbyname(port, "tcp")


def postfix_inet_ports(directory) -> dict[str, int]:
    """master.cf inet services as the real `postconf -M` reads them: syslog name -> port."""
    services = {}
    overrides = postconf(directory, "-P")
    for line in postconf(directory, "-M").splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[1] == "inet":
            named = re.search(rf"^{re.escape(fields[0])}/inet/syslog_name = postfix/(\S+)$",
                              overrides, re.M)
            services[named.group(1) if named else "smtp"] = service_port(fields[0])
    return services


def dovecot_listeners(directory) -> dict[str, tuple[int, bool]]:
    """inet_listener name -> (port, ssl) from the real `doveconf -n`."""
    result = tool("doveconf", "-n", "-c", str(directory / "dovecot.conf"))
    assert (result.returncode, result.stderr) == (0, "")
    found = {}
    for match in re.finditer(r"inet_listener (\w+) \{(.*?)\}", result.stdout, re.S):
        port = int(re.search(r"port = (\d+)", match.group(2)).group(1))
        found[match.group(1)] = (port, "ssl = yes" in match.group(2))
    return found


def all_ports(directory) -> dict[str, int]:
    ports = dict(postfix_inet_ports(directory))
    ports.update({name: port for name, (port, _) in dovecot_listeners(directory).items()})
    return ports


def expected_ports(base: int) -> dict[str, int]:
    return {service.key: base + service.standard_port for service in init.SERVICES}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    directory = tmp_path_factory.mktemp("interop") / "demo"
    init_ok(directory, "--port-base", "9000", *user_args())
    return settled(directory)


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    base = tmp_path_factory.mktemp("interop-system")
    directory, state = base / "etc", base / "state"
    init_ok(directory, "--system", "--state-dir", str(state), *user_args())
    return settled(directory)


@pytest.mark.parametrize("layout", ["demo", "system"])
def test_real_postconf_accepts_main_cf_and_master_cf(request, layout):
    directory = request.getfixturevalue(layout)
    settings = dict(line.split(" = ", 1) for line in postconf(directory, "-n").splitlines())
    assert settings["queue_directory"].endswith("/spool")
    assert settings["smtpd_sasl_type"] == "dovecot"
    assert settings["compatibility_level"] == "3.6"
    assert settings["inet_interfaces"] == ("all" if layout == "system" else "loopback-only")
    expanded = postconf(directory, "-x", "-h", "smtpd_tls_cert_file", "alias_maps")
    assert expanded.split() == [f"{directory}/tls/cert.pem", f"hash:{directory}/aliases"]
    names = [line.split()[0] for line in postconf(directory, "-M").splitlines()]
    for service in INTERNAL_SERVICES:
        assert service in names, service
    overrides = postconf(directory, "-P")
    assert f"{names[2]}/inet/smtpd_tls_wrappermode = yes" in overrides
    for line in ("syslog_name = postfix/submission", "smtpd_tls_security_level = encrypt",
                 "smtpd_sasl_auth_enable = yes",
                 "smtpd_client_restrictions = permit_sasl_authenticated,reject"):
        assert f"{names[1]}/inet/{line}" in overrides, line


def test_postfix_warns_about_roosts_parameter_only(demo):
    result = tool("postconf", "-c", str(demo), "-n")
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "dovecot_config_file" in warnings[0]


def test_real_postfix_check_accepts_the_system_layout(system):
    # postfix(1) and its postfix-script report problems on a terminal only: give it one.
    result = subprocess.run([require_tool("script"), "-qec",
                             f"{require_tool('postfix')} -c {system} check", "/dev/null"],
                            capture_output=True, text=True, timeout=120)
    output = result.stdout.replace("\r", "")
    if os.geteuid() != 0:  # postfix(1) is reserved for the superuser
        assert "reserved for the superuser" in output
        return
    assert result.returncode == 0, output
    assert unexpected_postfix_warnings(output, system) == []


@pytest.mark.parametrize("layout", ["demo", "system"])
def test_real_doveconf_accepts_dovecot_conf(request, layout):
    directory = request.getfixturevalue(layout)
    result = tool("doveconf", "-n", "-c", str(directory / "dovecot.conf"))
    assert (result.returncode, result.stderr) == (0, "")
    for setting in ("protocols = imap pop3 lmtp", f"base_dir = {'' if layout == 'system' else directory}",
                    "auth_mechanisms = plain login", "ssl_cert = <", "auth_default_realm = example.test"):
        assert setting in result.stdout, setting
    assert re.search(rf"unix_listener \S+/spool/private/auth \{{\s+group = \S+\s+mode = 0660",
                     result.stdout)


def test_every_port_follows_the_port_base_and_two_bases_share_none(tmp_path, demo):
    assert all_ports(demo) == expected_ports(9000)
    listeners = dovecot_listeners(demo)
    assert {name for name, (_, tls) in listeners.items() if tls} == {"imaps", "pop3s"}
    other = tmp_path / "other"
    init_ok(other, "--port-base", "3000")
    settled(other)
    assert all_ports(other) == expected_ports(3000)
    assert not set(all_ports(other).values()) & set(all_ports(demo).values())


def test_system_layout_uses_the_standard_ports(system):
    assert all_ports(system) == expected_ports(0)


def test_password_hashes_verify_with_real_doveadm(demo):
    entries = [line.split(":") for line in (demo / "users").read_text().splitlines()
               if line and not line.startswith("#")]
    for entry in entries:
        password = USERS[entry[0].split("@")[0]]
        good = tool("doveadm", "pw", "-t", entry[1], "-p", password)
        assert good.returncode == 0 and "(verified)" in good.stdout, good.stderr
        bad = tool("doveadm", "pw", "-t", entry[1], "-p", password + "x")
        assert bad.returncode != 0


def test_real_postmap_and_postalias_accept_the_sources_and_agree_with_roost(demo, tmp_path):
    queries = [("postalias", "aliases", "root"), ("postalias", "aliases", "mailer-daemon"),
               ("postmap", "virtual", "postmaster@example.test"),
               ("postmap", "virtual", "abuse@example.test"),
               ("postmap", "vmailbox", "bob@example.test"), ("postmap", "vmailbox", "nobody@x.test")]
    for name in ("aliases", "virtual", "vmailbox"):
        shutil.copy(demo / name, tmp_path / name)
    # The real tools get a main.cf of Postfix defaults: they refuse the demo's when run as
    # root (mail_owner root), and table semantics do not depend on it.
    postfix_etc = tmp_path / "postfix-etc"
    postfix_etc.mkdir()
    (postfix_etc / "main.cf").write_text("")
    settled_main_cf = time.time() - 60
    os.utime(postfix_etc / "main.cf", (settled_main_cf, settled_main_cf))

    def real_tool(command: str, *args: str) -> subprocess.CompletedProcess:
        return tool(command, "-c", str(postfix_etc), *args)

    for command, name in (("postalias", "aliases"), ("postmap", "virtual"), ("postmap", "vmailbox")):
        built = real_tool(command, f"hash:{tmp_path / name}")
        assert (built.returncode, built.stderr) == (0, "")
    for command, name, key in queries:
        real = real_tool(command, "-q", key, f"hash:{tmp_path / name}")
        ours = run_roost("-c", str(demo), command, "-q", key, f"hash:{demo / name}")
        assert (ours.returncode, ours.stdout) == (real.returncode, real.stdout), (command, key)
    assert real_tool("postmap", "-q", "postmaster@example.test",
                f"hash:{tmp_path / 'virtual'}").stdout == "alice@example.test\n"


def wait_for_port(port: int, deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


@contextlib.contextmanager
def started(argv: list[str], log_path: str):
    """Run argv (output to log_path) for the duration of the block; stop it by its pid."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def traversable_tmp():
    """A fresh directory under /tmp that Dovecot's unprivileged processes can reach (pytest's
    tmp_path sits below a 0700 directory)."""
    base = tempfile.mkdtemp(prefix="roost-init-dovecot-", dir="/tmp")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_real_dovecot_serves_the_generated_configuration(traversable_tmp):
    """As root: the --system layout (real Dovecot drops to dovecot/dovenull/mail); otherwise
    the loopback layout, where an unprivileged Dovecot can at least run its auth service."""
    as_root = os.geteuid() == 0
    directory, state = os.path.join(traversable_tmp, "etc"), os.path.join(traversable_tmp, "state")
    port_base = free_port_base()
    layout = ["--system", "--state-dir", state] if as_root else []
    init_ok(directory, *layout, "--port-base", str(port_base), *user_args())
    conf = os.path.join(directory, "dovecot.conf")
    maildir = os.path.join(state if as_root else directory, "mail/example.test/alice/Maildir")
    # state_dir: Dovecot records every instance there (default /var/lib/dovecot); keep it ours.
    dovecot_state = os.path.join(traversable_tmp, "dovecot-state")
    os.mkdir(dovecot_state)
    dovecot = [require_tool("dovecot"), "-F", "-c", conf, "-o", "listen=127.0.0.1",
               "-o", "log_path=/dev/stderr", "-o", f"state_dir={dovecot_state}"]
    # Dovecot answers a wrong password after a 2 s delay: that check runs alongside the rest,
    # from its own client address so that its penalty does not slow down the others.
    wrong_password = [require_tool("doveadm"), "-c", conf, "auth", "test", "-x", "rip=127.0.0.2",
                      "alice", "wrong"]
    wrong_log = os.path.join(traversable_tmp, "wrong.log")
    with started(dovecot, os.path.join(traversable_tmp, "dovecot.log")):
        wait_for_port(port_base + 143)
        with started(wrong_password, wrong_log) as wrong:
            for name, password in USERS.items():
                ok = tool("doveadm", "-c", conf, "auth", "test", name, password)
                assert ok.returncode == 0 and "auth succeeded" in ok.stdout, ok.stdout + ok.stderr
                assert f"user={name}@example.test" in ok.stdout
            lookup = tool("doveadm", "-c", conf, "user", "alice@example.test")
            assert f"maildir:{maildir}" in lookup.stdout, lookup.stdout + lookup.stderr
            assert wrong.wait(timeout=30) != 0
        with open(wrong_log) as log:
            assert "auth failed" in log.read()
        if not as_root:
            return  # unprivileged, Dovecot cannot chroot its login processes
        client_tls = ssl.create_default_context(cafile=os.path.join(directory, "tls/cert.pem"))
        imap = imaplib.IMAP4("127.0.0.1", port_base + 143)
        imap.starttls(client_tls)
        assert imap.login("alice", USERS["alice"])[0] == "OK"
        assert imap.select("INBOX")[0] == "OK"
        status, listing = imap.list()
        assert status == "OK"
        for name in ("Drafts", "Sent", "Junk", "Trash"):
            assert any(f"\\{name}".encode() in line and line.endswith(f" {name}".encode())
                       for line in listing), listing
        subscribed = b" ".join(imap.lsub()[1])
        assert b"Sent" in subscribed and b"Junk" not in subscribed
        imap.logout()
        assert os.path.isdir(os.path.join(maildir, "cur")), "IMAP INBOX is the printed Maildir"
        pop = poplib.POP3_SSL("127.0.0.1", port_base + 995, context=client_tls)
        pop.user("bob@example.test")
        assert pop.pass_(USERS["bob"]).startswith(b"+OK")
        pop.quit()
