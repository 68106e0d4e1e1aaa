"""A running roost smtpd sees a rebuilt access table within a second, without a restart
(issue 3's last item): `roost postmap` rewrites FILE.roostdb (new inode) and the next RCPT
after at most RELOAD_INTERVAL uses the new content. Uses the smtp helper's in-process
server harness with the real SmtpPolicy."""

from __future__ import annotations

import io
import smtplib
import time

from roost.cli.postmap import run_tool
from roost.net.dns import FakeResolver
from roost.policy import SmtpPolicy
from roost.tables.base import RELOAD_INTERVAL
from tests.net.smtpd_harness import SmtpdServer


def _postmap(config_dir, source) -> None:
    assert run_tool("postmap", ["postmap", "-c", str(config_dir), f"hash:{source}"],
                    stdout=io.StringIO(), stderr=io.StringIO()) == 0


def _rcpt(port: int, recipient: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.example")
        client.mail("sender@ext.example")
        return client.rcpt(recipient)


def test_rebuilt_access_table_is_used_within_a_second(tmp_path):
    source = tmp_path / "recipient_access"
    source.write_text("other@example.test REJECT\n")
    (tmp_path / "main.cf").write_text("")
    _postmap(tmp_path, source)

    def factory(settings, log):
        return SmtpPolicy(settings, resolver=FakeResolver({}), log=log)
    main_cf = f"compatibility_level = 3.6\nsmtpd_recipient_restrictions = check_recipient_access hash:{source}\n"
    with SmtpdServer(tmp_path / "server", main_cf=main_cf, policy_factory=factory) as server:
        assert _rcpt(server.port, "alice@example.test")[0] == 250
        source.write_text("alice@example.test REJECT gone away\n")
        _postmap(tmp_path, source)
        changed = time.monotonic()
        while True:
            code, text = _rcpt(server.port, "alice@example.test")
            if code != 250 or time.monotonic() - changed > RELOAD_INTERVAL + 1:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - changed
    assert (code, text) == (554, b"5.7.1 <alice@example.test>: Recipient address rejected: gone away")
    assert elapsed <= RELOAD_INTERVAL + 0.5
