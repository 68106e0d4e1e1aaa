"""Real POP3 clients download from a whole roost server: Debian's fetchmail (STLS and pop3s)
and getmail6 (plain POP3 and pop3s; getmail6 has no STLS for POP3).

roost is started from `roost init` (tests/net/test_pop3_server.py's Roost helper); the clients
keep their configuration, UIDL state and downloaded mail in tmp_path; certificate checks are
off (roost's certificate is self-signed). Each client must fetch every message byte for byte
(apart from the trace header it adds), and a second run must fetch nothing new (UIDLs).
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import free_port_base, require_tool, run_roost
from tests.net.test_pop3_server import PASSWORD, USER, Roost, message

MESSAGES = {f"{1000000100 + n}.M{n}P9.test": message(n) for n in (1, 2, 3)}


@pytest.fixture(scope="module")
def roost(tmp_path_factory):
    inst = Roost(str(tmp_path_factory.mktemp("pop3-clients")), free_port_base())
    try:
        init = run_roost("init", inst.dir, "--port-base", str(inst.base), "--user",
                         f"{USER}:{PASSWORD}")
        assert init.returncode == 0, init.stderr
        inst.start()
        for name, data in MESSAGES.items():
            inst.deliver(name, data)
        yield inst
    finally:
        inst.stop()


def bodies(directory) -> list[bytes]:
    """Downloaded messages without the client's own trace lines, sorted by subject."""
    found = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                data = handle.read().replace(b"\r\n", b"\n")
            # fetchmail and getmail put their Received:/Delivered-To: lines on top
            start = data.index(b"From: sender@example.test")
            found.append(data[start:])
    return sorted(found)


def expected() -> list[bytes]:
    return sorted(MESSAGES.values())


def run(argv: list[str], tmp_path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(tmp_path), LC_ALL="C")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def fetchmail_rc(tmp_path, roost, *, implicit_tls: bool, out_dir) -> str:
    tls = "ssl" if implicit_tls else "sslproto 'TLS1.2+'"  # without `ssl`: STLS, required
    port = roost.pop3s if implicit_tls else roost.pop3
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 with proto POP3 port {port} uidl\n"
        f"  user '{USER}' there with password '{PASSWORD}' is root here\n"
        f"  options keep {tls} no sslcertck\n"
        f"  mda \"/bin/sh -c 'cat > {out_dir}/msg.$$'\"\n")
    os.chmod(rc, 0o600)
    return str(rc)


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["stls", "pop3s"])
def test_fetchmail(roost, tmp_path, implicit_tls):
    fetchmail = require_tool("fetchmail")
    out_dir = tmp_path / "mail"
    out_dir.mkdir()
    rc = fetchmail_rc(tmp_path, roost, implicit_tls=implicit_tls, out_dir=out_dir)
    argv = [fetchmail, "-f", rc, "--nosyslog", "--nodetach", "-v",
            "--idfile", str(tmp_path / "fetchids")]
    first = run(argv, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert bodies(out_dir) == expected()
    if not implicit_tls:
        assert "STLS" in first.stdout + first.stderr
    second = run(argv, tmp_path)
    assert second.returncode == 1, second.stdout + second.stderr  # 1: no new mail
    assert len(os.listdir(out_dir)) == len(MESSAGES)
    assert re.search(r"pop3-login: Login: user=<alice@example.test>, method=PLAIN, "
                     r"rip=127\.0\.0\.1, lip=127\.0\.0\.1, mpid=\d+, TLS, ", roost.maillog())


@pytest.mark.parametrize("implicit_tls", [False, True], ids=["pop3", "pop3s"])
def test_getmail(roost, tmp_path, implicit_tls):
    getmail = require_tool("getmail")
    out_dir = tmp_path / "mail"
    out_dir.mkdir()
    retriever = "SimplePOP3SSLRetriever" if implicit_tls else "SimplePOP3Retriever"
    port = roost.pop3s if implicit_tls else roost.pop3
    rc = tmp_path / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        f"type = {retriever}\nserver = 127.0.0.1\nport = {port}\n"
        f"username = {USER}\npassword = {PASSWORD}\n\n"
        # getmail refuses its Maildir destination as root; an external MDA it may run.
        "[destination]\n"
        "type = MDA_external\npath = /bin/sh\n"
        f"arguments = (\"-c\", \"cat > {out_dir}/msg.$$$$\")\nallow_root_commands = true\n\n"
        "[options]\nread_all = false\ndelete = false\nverbose = 2\n")
    argv = [getmail, "--getmaildir", str(tmp_path), "--rcfile", str(rc)]
    first = run(argv, tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert bodies(out_dir) == expected()
    second = run(argv, tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 messages" in second.stdout and bodies(out_dir) == expected()
