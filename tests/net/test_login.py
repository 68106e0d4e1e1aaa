"""roost.net.login: the login service POP3 (and later IMAP) share.

Clock and sleep are fakes: the test sees every wait the service asks for (penalty before the
check, auth_failure_delay after a failure) without waiting itself.
"""

from __future__ import annotations

import asyncio

import pytest

from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import parse_dovecot_conf
from roost.net.login import ExchangeAborted, LoginService
from roost.proto import sasl
from tests.conftest import RecordingLog

CONF = """\
auth_mechanisms = plain login cram-md5
auth_failure_delay = 2 secs
login_trusted_networks = 10.9.0.0/16
login_greeting = Hello there.
passdb {{
  driver = passwd-file
  args = {dir}/users
}}
userdb {{
  driver = static
  args = uid=1000 gid=1000 home=/home/%u
}}
remote 192.0.2.0/24 {{
  disable_plaintext_auth = no
}}
"""


class FakeTime:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


@pytest.fixture
def service(tmp_path):
    (tmp_path / "users").write_text("alice:{PLAIN}pw::::::\nbob:{PLAIN}Secret::::::\n")
    (tmp_path / "dovecot.conf").write_text(CONF.format(dir=tmp_path))
    diags = Diagnostics()
    config = parse_dovecot_conf(str(tmp_path / "dovecot.conf"), diags)
    assert not diags.has_fatal(), [str(d) for d in diags.items]
    time = FakeTime()
    log = RecordingLog()
    login = LoginService.from_config(config, log, protocol="pop3", sleep=time.sleep,
                                     clock=time.clock)
    return login, time, log


def run(coroutine):
    return asyncio.run(coroutine)


def test_policy(service):
    login, _time, log = service
    local = login.policy("127.0.0.1", "127.0.0.1", False)
    assert local.secured and not local.trusted and local.greeting == "Hello there."
    assert local.mechanisms == ("PLAIN", "LOGIN")  # CRAM-MD5 needs stored secrets: not served
    assert any("CRAM-MD5 not served" in text for _level, text in log.lines)
    outsider = login.policy("127.0.0.1", "127.0.0.2", False)
    assert not outsider.secured and outsider.mechanisms_for(outsider.secured) == ()
    assert login.policy("127.0.0.1", "127.0.0.2", True).secured
    trusted = login.policy("127.0.0.1", "10.9.1.1", False)
    assert trusted.secured and trusted.trusted
    # a remote {} filter of dovecot.conf applies to its clients only
    filtered = login.policy("127.0.0.1", "192.0.2.7", False)
    assert not filtered.disable_plaintext_auth
    assert filtered.mechanisms_for(False) == ("PLAIN", "LOGIN")
    assert login.mechanisms(False, True) == ("PLAIN", "LOGIN")
    assert login.mechanisms(False, False) == ()


def where(ip="203.0.113.5"):
    return dict(service="pop3", remote_ip=ip, local_ip="127.0.0.1", secured=True)


def test_success_gives_the_user_record(service):
    login, time, _log = service
    result = run(login.password_login("alice", "pw", **where()))
    assert result.ok and result.user == "alice"
    assert result.record.home == "/home/alice" and result.record.uid == "1000"
    assert time.sleeps == []


def test_failures_look_alike_and_raise_the_penalty(service):
    login, time, _log = service
    wrong = run(login.password_login("alice", "nope", **where()))
    assert not wrong.ok and not wrong.temporary
    assert time.sleeps == [2.0]  # auth_failure_delay
    unknown = run(login.password_login("nobody", "pw", **where()))
    assert not unknown.ok and not unknown.temporary
    # the second attempt from the IP first waits the penalty (level 1: 4 s)
    assert time.sleeps == [2.0, 4.0, 2.0]
    time.sleeps.clear()
    # the same IP logging in correctly still waits its penalty, then it is gone
    assert run(login.password_login("alice", "pw", **where())).ok
    assert time.sleeps == [8.0]
    time.sleeps.clear()
    assert run(login.password_login("alice", "pw", **where())).ok and time.sleeps == []


def test_trusted_networks_have_no_penalty(service):
    login, time, _log = service
    for _ in range(3):
        run(login.password_login("alice", "nope", **where("10.9.0.1")))
    assert time.sleeps == [2.0, 2.0, 2.0]


def test_sasl_plain_and_login(service):
    login, _time, _log = service
    ok = run(login.sasl_login("PLAIN", b"\0bob\0Secret", None, **where()))
    assert ok.ok and ok.user == "bob"
    prompts = []

    async def exchange(challenge: bytes):
        prompts.append(challenge)
        return {b"Username:": b"alice", b"Password:": b"pw"}[challenge]

    result = run(login.sasl_login("LOGIN", None, exchange, **where("203.0.113.9")))
    assert result.ok and prompts == [b"Username:", b"Password:"]


def test_sasl_cancel_malformed_and_master_user(service):
    login, time, _log = service

    async def cancel(challenge):
        return sasl.Cancel()

    async def garbage(challenge):
        raise ExchangeAborted()

    assert run(login.sasl_login("PLAIN", None, cancel, **where())).cancelled
    assert run(login.sasl_login("PLAIN", None, garbage, **where())).malformed
    assert time.sleeps == []
    other = run(login.sasl_login("PLAIN", b"bob\0alice\0pw", None, **where("203.0.113.7")))
    assert not other.ok and time.sleeps == [2.0]
    broken = run(login.sasl_login("PLAIN", b"alice", None, **where("203.0.113.8")))
    assert not broken.ok and not broken.temporary
    assert run(login.sasl_login("CRAM-MD5", None, cancel, **where())).reason == \
        "unsupported mechanism"


def test_database_failure_is_temporary(service):
    login, _time, log = service

    def explode(*args, **kwargs):
        raise OSError("disk on fire")

    login.lookup.authenticate = explode
    result = run(login.password_login("alice", "pw", **where()))
    assert result.temporary and not result.ok
    assert any("lookup failed: OSError" in text for level, text in log.lines if level == "error")


def test_userdb_miss_is_temporary(service):
    login, _time, _log = service
    login.lookup.lookup_user = lambda *args, **kwargs: None
    result = run(login.password_login("alice", "pw", **where()))
    assert result.temporary and result.reason == "userdb lookup failed"
