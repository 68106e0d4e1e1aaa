"""The Received header of STARTTLS and AUTH sessions, against Debian Postfix 3.7 with
smtpd_tls_received_header = yes and smtpd_sasl_authenticated_header = yes (SASL through a
private Dovecot 2.3 auth socket): roost's cleanup, given the TLS lines Postfix wrote as
ClientInfo.tls, produces the same header (placement, indentation, `with ESMTPS` /
`ESMTPSA`, `(Authenticated sender: alice)`), and the TLS lines have the shape the SMTP
server must supply."""

from __future__ import annotations

import os
import re
import signal
import smtplib
import ssl
import subprocess

import pytest

from roost.cleanup import ClientInfo
from tests.cleanup.postfix_ref import PostfixRef
from tests.cleanup.test_differential import SHARED_MAIN_CF, normalize, roost_service, roost_postcat, split_postcat
from tests.conftest import free_port_base, require_tool
from tests.master.helpers import alive, kill_quietly, wait_until

DOVECOT_CONF = """\
base_dir = {base}/dovecot-run
state_dir = {base}/dovecot-state
instance_name = roost-cleanup-ref
protocols =
listen = 127.0.0.1
log_path = {base}/dovecot.log
auth_mechanisms = plain login
disable_plaintext_auth = no
ssl = no
passdb {{
  driver = passwd-file
  args = {base}/users
}}
userdb {{
  driver = static
  args = uid=5000 gid=5000 home={base}/home/%u
}}
service auth {{
  unix_listener auth-postfix {{
    mode = 0666
  }}
}}
"""


def start_dovecot(ref: PostfixRef) -> int:
    ref.write_file("users", "alice:{PLAIN}secret::::::\n")
    os.makedirs(ref.path("dovecot-state"), exist_ok=True)
    conf = ref.write_file("dovecot.conf", DOVECOT_CONF.format(base=ref.base))
    with open(ref.path("dovecot-start.log"), "w") as log:  # the daemon keeps its stdio: not a pipe
        done = subprocess.run(["dovecot", "-c", conf], stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=30)
    assert done.returncode == 0, open(ref.path("dovecot-start.log")).read()
    socket_path = ref.path("dovecot-run/auth-postfix")
    assert wait_until(lambda: os.path.exists(socket_path), 10), "no Dovecot auth socket"
    return dovecot_pid(ref)


def dovecot_pid(ref: PostfixRef) -> int | None:
    try:
        return int(open(ref.path("dovecot-run/master.pid")).read())
    except (OSError, ValueError):
        return None


def stop_dovecot(ref: PostfixRef, pid: int) -> None:
    subprocess.run(["dovecot", "-c", ref.path("dovecot.conf"), "stop"], capture_output=True, timeout=30)
    if not wait_until(lambda: not alive(pid), 10):
        kill_quietly(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def tls_reference():
    require_tool("postfix")
    require_tool("openssl")
    require_tool("dovecot")
    if os.geteuid() != 0:
        pytest.fail("test_received_tls starts a private Postfix and must run as root", pytrace=False)
    ref = PostfixRef(free_port_base() + 56, "")
    try:
        start_dovecot(ref)
        for name in ("header_checks", "body_checks", "canonical", "recipient_canonical", "sender_canonical",
                     "virtual", "sender_bcc", "recipient_bcc"):
            ref.write_file(name, "")
        cert, key = ref.path("cert.pem"), ref.path("key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", key,
                        "-out", cert, "-subj", "/CN=mail.example.test"], capture_output=True, check=True, timeout=60)
        os.chmod(key, 0o600)
        ref.extra = SHARED_MAIN_CF.format(base=ref.base) + (
            f"smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {key}\nsmtpd_tls_security_level = may\n"
            "smtpd_tls_received_header = yes\nsmtpd_tls_session_cache_database =\n"
            f"smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
            f"smtpd_sasl_path = {ref.path('dovecot-run/auth-postfix')}\nsmtpd_sasl_authenticated_header = yes\n")
        ref.start()
        yield ref
    finally:
        pid = dovecot_pid(ref)
        if pid is not None:
            stop_dovecot(ref, pid)
        ref.stop()


@pytest.mark.parametrize("authenticate", [False, True])
def test_starttls_received_header(tls_reference, tmp_path, authenticate):
    ref = tls_reference
    message = b"Subject: tls\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", ref.port, timeout=30) as client:
        client.ehlo("client.example.org")
        client.starttls(context=ssl._create_unverified_context())
        client.ehlo("client.example.org")
        if authenticate:
            client.login("alice", "secret")
        client.mail("alice@example.org")
        client.rcpt("bob@example.net")
        code, reply = client.data(message)
    assert code == 250
    postfix_id = reply.decode().rsplit(" ", 1)[-1]
    theirs = split_postcat(ref.postcat(postfix_id))
    received = theirs["content"].split("\n")
    by_index = next(i for i, line in enumerate(received) if line.startswith("\tby "))
    tls_lines = [line[1:] for line in received[1:by_index] if not line.startswith("\t(Authenticated sender:")]
    protocol = "ESMTPSA" if authenticate else "ESMTPS"
    if authenticate:
        assert received[by_index - 1] == "\t(Authenticated sender: alice)"
    # the shape the SMTP server's ClientInfo.tls must have (Postfix 3.7, TLSv1.3)
    assert re.fullmatch(r"\(using TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)", tls_lines[0]), tls_lines
    assert tls_lines[-1] == "(No client certificate requested)"
    assert f"with {protocol} id" in received[by_index]

    service, _ = roost_service(ref, str(tmp_path / "queue"))
    service.tls_received_header = service.sasl_header = True
    info = ClientInfo("unknown", "127.0.0.1", 40000, "client.example.org", protocol, "\n".join(tls_lines),
                      "PLAIN" if authenticate else None, "alice" if authenticate else None)
    msg = service.open(origin="smtpd", client=info, sender="alice@example.org", envelope={})
    msg.add_recipient("bob@example.net")
    msg.write(message)
    result = msg.finish()
    ours = split_postcat(roost_postcat(service, result.queue_id))
    ids = [postfix_id, result.queue_id]
    assert normalize(ours["content"], ids) == normalize(theirs["content"], ids)
