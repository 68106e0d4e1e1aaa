"""SmtpPolicy.table keeps the table each reference names: a domain list given as a table
asks for it at every address, and the shared roost.tables cache would cost a lock and two
objects per ask. The table object is the one roost.tables hands out (it watches its own
file, so a rebuilt table is still seen), opened once per reference and policy."""

from __future__ import annotations

import roost.policy as policy_module
from tests.policy.helpers import policy_from, rcpt


def test_each_table_reference_is_opened_once_per_policy(tmp_path, monkeypatch):
    domains = tmp_path / "vdomains"
    domains.write_text("virtual.test x\n")
    opened = []
    real = policy_module.open_table

    def counting(reference, **kwargs):
        opened.append(reference)
        return real(reference, **kwargs)

    monkeypatch.setattr(policy_module, "open_table", counting)
    policy = policy_from(f"virtual_mailbox_domains = texthash:{domains}\n"
                         f"virtual_mailbox_maps = texthash:{tmp_path / 'vmailbox'}\n")
    (tmp_path / "vmailbox").write_text("bob@virtual.test x\n")
    for _ in range(5):
        assert rcpt(policy, recipient="bob@virtual.test").reply is None
        assert "User unknown in virtual mailbox table" in str(rcpt(policy, recipient="eve@virtual.test").reply)
    assert sorted(set(opened)) == sorted(opened)  # no reference twice
    assert f"texthash:{domains}" in opened
    assert policy.table(f"texthash:{domains}") is real(f"texthash:{domains}", default_type=policy.default_type)
