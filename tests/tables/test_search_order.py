"""access(5), virtual(5) and aliases(5) search orders, answered against Postfix's tables.

The key order itself is the one access(5)/virtual(5) document (it is what the manual pages
specify); which key matches and what it answers is asked of the real `postmap -q` /
`postalias -q` on a copy of the same table, key form by key form.
"""

from __future__ import annotations

import pytest

from roost.tables import open_table
from roost.tables.access import (check_client, check_mail_address, client_keys, mail_address_keys,
                                 parse_access_result)
from roost.tables.address import map_address
from roost.tables.aliases import expand
from tests.conftest import DATA
from tests.tables.oracle import make_sides, ours, real

ACCESS = (DATA / "tables" / "access_full").read_bytes()


def _built(tmp_path, name: str, content: bytes, tool: str = "postmap", kind: str = "hash"):
    real_side, roost_side = make_sides(tmp_path)
    for side, run in ((real_side, real), (roost_side, ours)):
        (side.directory / name).write_bytes(content)
        if kind == "hash":
            run(tool, side, f"hash:{side.path(name)}")
    return real_side, roost_side


def _postfix_first(real_side, name: str, keys, tool: str = "postmap", kind: str = "hash"):
    """The first key Postfix's table answers, walking the same key order."""
    for key, _full in keys:
        answer, _ = real(tool, real_side, "-q", key, f"{kind}:{real_side.path(name)}")
        if answer.code == 0:
            return key, answer.stdout.rstrip("\n")
    return None


def test_documented_key_orders():
    assert [k for k, _ in client_keys("mail.sub.example.com", "192.168.2.7", True)] == [
        "mail.sub.example.com", "sub.example.com", "example.com", "com",
        "192.168.2.7", "192.168.2", "192.168", "192"]
    assert [k for k, _ in client_keys("a.example.org", "10.0.0.1", False)] == [
        "a.example.org", ".example.org", ".org", "10.0.0.1", "10.0.0", "10.0", "10"]
    assert [k for k, _ in client_keys(None, "2001:0db8:0001:0000:0000:0000:0000:0005", False)][:3] == [
        "2001:db8:1::5", "2001:db8:1:", "2001:db8:1"]
    assert [k for k, _ in mail_address_keys("joe+list@mail.example.edu", False, "+")] == [
        "joe+list@mail.example.edu", "joe@mail.example.edu", "mail.example.edu", ".example.edu", ".edu",
        "joe+list@", "joe@"]
    assert mail_address_keys("", True) == [("<>", True)]


CLIENTS = [("unknown", "120.114.141.60"), ("host.example.com", "8.8.8.8"), ("a.b.example.org", "1.1.1.1"),
           ("example.org", "1.1.1.1"), ("x.sub.example.net", "9.9.9.9"), ("sub.example.net", "9.9.9.9"),
           ("unknown", "192.168.2.44"), ("unknown", "192.168.3.9"), ("unknown", "10.20.30.40"),
           ("unknown", "172.16.5.4"), ("unknown", "172.16.5.40"), ("unknown", "2001:db8:1:0:0:0:0:77"),
           ("unknown", "2001:db8:2::5"), ("unknown", "2001:db8:3::9"), ("www.MIXED.case.com", "5.5.5.5"),
           ("spam.test", "5.5.5.5"), ("unknown", "203.0.113.9"), ("foo.bar", "192.0.2.1")]
SENDERS = ["user@example.com", "user@elsewhere.test", "someone@sub.example.net", "joe+list@example.edu",
           "joe+other@example.edu", "user+x@example.edu", "postmaster@anything.test", "x@a.example.org",
           "x@example.org", "x@example.info", "", "User@Example.EDU", "nobody@nowhere.test"]


@pytest.mark.parametrize("parent_match", [True, False])
def test_access_answers_like_postfix(tmp_path, parent_match):
    real_side, roost_side = _built(tmp_path, "access", ACCESS)
    table = open_table(f"hash:{roost_side.path('access')}", cache=False)
    for hostname, address in CLIENTS:
        keys = client_keys(hostname, address, parent_match)
        expected = _postfix_first(real_side, "access", keys)
        got = check_client([table], hostname, address, parent_domain_matches_subdomains=parent_match)
        assert (got.key, got.raw) if got else None == expected, (hostname, address)
    for sender in SENDERS:
        keys = mail_address_keys(sender, parent_match, "+")
        expected = _postfix_first(real_side, "access", keys)
        got = check_mail_address([table], sender, parent_domain_matches_subdomains=parent_match,
                                 recipient_delimiter="+")
        assert ((got.key, got.raw) if got else None) == expected, sender


def test_pattern_tables_get_only_the_full_key(tmp_path):
    real_side, roost_side = make_sides(tmp_path)
    rules = b"/^example\\.com$/ REJECT parent\n/^10\\.1$/ REJECT prefix\n/^10\\.1\\.2\\.3$/ OK full\n"
    (roost_side.directory / "re").write_bytes(rules)
    table = open_table(f"regexp:{roost_side.path('re')}", cache=False)
    assert check_client([table], "mail.example.com", "10.1.9.9", parent_domain_matches_subdomains=True) is None
    assert check_client([table], "x", "10.1.2.3", parent_domain_matches_subdomains=True).text == "full"


@pytest.mark.parametrize("value,action,code,text", [
    ("OK", "OK", None, ""), ("reject go away", "REJECT", None, "go away"), ("450 4.7.1 later", "NUMERIC", 450,
                                                                             "4.7.1 later"),
    ("554", "NUMERIC", 554, ""), ("12345", "OK", None, ""), ("DUNNO", "DUNNO", None, ""),
    ("HOLD review", "HOLD", None, "review"), ("DISCARD", "DISCARD", None, ""),
    ("FILTER smtp:[127.0.0.1]:10025", "FILTER", None, "smtp:[127.0.0.1]:10025"),
    ("REDIRECT a@b", "REDIRECT", None, "a@b"), ("PREPEND X-A: b", "PREPEND", None, "X-A: b"),
    ("WARN hmm", "WARN", None, "hmm"), ("permit_mynetworks, reject", "RESTRICTIONS", None,
                                        "permit_mynetworks, reject"),
    ("PERMIT", "RESTRICTIONS", None, "PERMIT"), ("defer try later", "DEFER", None, "try later"),
])
def test_access_results_are_typed(value, action, code, text):
    result = parse_access_result(value)
    assert (result.action, result.code, result.text) == (action, code, text)


VIRTUAL = b"""info@example.com alice@example.com
user@example.com plain@example.com
user+tag@example.com tagged@example.com
@example.net catchall@example.com
@rename.test @example.org
local-user localbox@example.com
sales@example.com bob@example.com, carol@example.com
"""


@pytest.mark.parametrize("address,local", [
    ("info@example.com", False), ("user@example.com", False), ("user+tag@example.com", False),
    ("user+other@example.com", False), ("x+y@example.net", False), ("joe@rename.test", False),
    ("local-user@here.test", True), ("local-user+ext@here.test", True), ("local-user@here.test", False),
    ("sales@example.com", False), ("none@example.com", False)])
def test_virtual_search_order_like_postfix(tmp_path, address, local):
    real_side, roost_side = _built(tmp_path, "virtual", VIRTUAL)
    table = open_table(f"hash:{roost_side.path('virtual')}", cache=False)
    got = map_address([table], address, recipient_delimiter="+", domain_is_local=local)
    localpart, _, domain = address.rpartition("@")
    user = localpart.split("+")[0]
    keys = [address, f"{user}@{domain}"] + ([localpart, user] if local else []) + [f"@{domain}"]
    expected = _postfix_first(real_side, "virtual", [(k, True) for k in dict.fromkeys(keys)])
    assert ((got.key, got.raw) if got else None) == expected
    if got and got.key == f"{user}@{domain}" and "+" in localpart:
        assert all("+" in a for a in got.addresses)  # unmatched extension propagated
    if got and got.raw.startswith("@"):
        assert got.addresses == (f"{user}{got.raw}" if "+" not in localpart else got.addresses[0],)


ALIASES = b"""mailer-daemon: postmaster
postmaster: root
root: root, admin@remote.test
loop1: loop2
loop2: loop3
loop3: loop1
list: a, "|/usr/bin/archive list", /var/mail/list.archive, :include:INCLUDE
owner-list: listadmin
list-request: listadmin
user: realuser
"""


def test_alias_expansion_follows_postfix_chains(tmp_path):
    real_side, roost_side = make_sides(tmp_path)
    include = roost_side.directory / "include"
    content = ALIASES.replace(b"INCLUDE", str(include).encode())
    include.write_bytes(b"# members\ninc1, inc2\ninc3\n:include:" + str(include).encode() + b"\n")
    for side, run in ((real_side, real), (roost_side, ours)):
        (side.directory / "aliases").write_bytes(content)
        run("postalias", side, f"hash:{side.path('aliases')}")
    table = open_table(f"hash:{roost_side.path('aliases')}", cache=False)

    def postfix_chain(name: str) -> list[str]:
        chain = []
        while name not in chain:
            answer, _ = real("postalias", real_side, "-q", name, f"hash:{real_side.path('aliases')}")
            chain.append(name)
            if answer.code:
                break
            name = answer.stdout.split(",")[0].strip()
        return chain

    expansion = expand([table], "MAILER-DAEMON")
    root = next(t for t in expansion.targets if t.kind == "mailbox")
    assert list(root.chain) == postfix_chain("mailer-daemon") == ["mailer-daemon", "postmaster", "root"]
    assert expansion.loops == [("mailer-daemon", "postmaster", "root", "root")]  # root: root, ...
    assert {(t.kind, t.value) for t in expansion.targets} == {("mailbox", "root"), ("address", "admin@remote.test")}
    loop = expand([table], "loop1")
    assert loop.loops and [t.value for t in loop.targets] == ["loop1"]
    assert postfix_chain("loop1") == ["loop1", "loop2", "loop3"]
    members = expand([table], "list")
    kinds = {(t.kind, t.value) for t in members.targets}
    assert ("command", "/usr/bin/archive list") in kinds and ("file", "/var/mail/list.archive") in kinds
    assert {("mailbox", "inc1"), ("mailbox", "inc2"), ("mailbox", "inc3"), ("mailbox", "a")} <= kinds
    assert any("include loop" in str(d) for d in members.diags.items)
    assert all(t.via_include for t in members.targets if t.value.startswith("inc"))
    extended = expand([table], "user+foo", recipient_delimiter="+", propagate_unmatched_extensions=("alias",))
    assert [t.value for t in extended.targets] == ["realuser+foo"]
    owner = expand([table], "owner-list", recipient_delimiter="-")
    assert [t.value for t in owner.targets] == ["listadmin"]
