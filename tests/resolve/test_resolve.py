"""roost.resolve: envelope address forms and Postfix's address classes / trick-form handling
(ADDRESS_CLASS_README; the matching Postfix replies are checked in tests/interop)."""

from __future__ import annotations

from hypothesis import given, settings as hsettings, strategies as st

from roost.resolve import classify, external_form, internal_form, resolve, split_address
from tests.policy.helpers import settings_from

SETTINGS = settings_from("virtual_alias_domains = valias.test\nvirtual_mailbox_domains = vmbox.test\n"
                         "proxy_interfaces = 192.0.2.99\n")


def test_internal_form():
    assert internal_form("<user@example.com>") == "user@example.com"
    assert internal_form(' <"u@ext"@local> ') == "u@ext@local"
    assert internal_form("<@a,@b:user@c>") == "user@c"
    assert internal_form('<"a\\"b"@c>') == 'a"b@c'
    assert internal_form("<>") == ""
    assert internal_form('<"@x:y"@c>') == "@x:y@c"


def test_external_form():
    assert external_form("u@ext@local") == '"u@ext"@local'
    assert external_form("u%ext@local") == "u%ext@local"
    assert external_form("a b@c") == '"a b"@c'
    assert external_form("plain") == "plain"
    assert external_form("") == ""
    assert split_address("u@ext@local") == ("u@ext", "local")


def test_classes():
    assert classify("local.test", SETTINGS) == "local"
    assert classify("MX.ROOST.TEST.", SETTINGS) == "local"
    assert classify("[127.0.0.1]", SETTINGS) == "local"
    assert classify("[192.0.2.99]", SETTINGS) == "local"  # proxy_interfaces
    assert classify("[192.0.2.98]", SETTINGS) == "default"
    assert classify("valias.test", SETTINGS) == "virtual_alias"
    assert classify("vmbox.test", SETTINGS) == "virtual_mailbox"
    assert classify("relay.test", SETTINGS) == "relay"
    assert classify("sub.relay.test", SETTINGS) == "relay"  # parent_domain_matches_subdomains
    assert classify("sub.local.test", SETTINGS) == "default"
    assert classify("ext.test", SETTINGS) == "default"


def test_numeric_domain_and_subdomain_styles():
    numeric = settings_from("resolve_numeric_domain = yes\n")
    assert classify("127.0.0.1", numeric) == "local"
    dotted = settings_from("relay_domains = .relay.test\nparent_domain_matches_subdomains =\n")
    assert classify("sub.relay.test", dotted) == "relay"
    assert classify("relay.test", dotted) == "default"
    negated = settings_from("relay_domains = !bad.relay.test, relay.test\n")
    assert classify("bad.relay.test", negated) == "default"
    assert classify("good.relay.test", negated) == "relay"


def test_trick_forms_resolve_to_the_real_destination():
    for trick in ("u%ext.test@local.test", "u@ext.test@local.test", "ext.test!u@local.test",
                  "u%ext.test@[127.0.0.1]", "ext.test!u%other@local.test", "u@ext.test@mx.roost.test"):
        resolved = resolve(trick, SETTINGS)
        assert resolved.address_class == "default" and resolved.domain in ("ext.test", "other"), trick
    assert resolve("alice", SETTINGS).address == "alice@mx.roost.test"       # @$myorigin
    assert resolve("ext.test!u", SETTINGS).address == "u@ext.test"          # bang path without domain
    assert resolve("u%ext.test", SETTINGS).address == "u@ext.test"
    assert not resolve("alice@local.test", SETTINGS).routed


def test_switches_leave_the_operator_in_place_and_routed():
    off = settings_from("allow_percent_hack = no\nswap_bangpath = no\nresolve_dequoted_address = no\n")
    for trick in ("u%ext.test@local.test", "ext.test!u@local.test", "u@ext.test@local.test"):
        resolved = resolve(trick, off)
        assert resolved.address_class == "local" and resolved.routed, trick


def test_append_dot_mydomain():
    old = settings_from("compatibility_level = 0\n")
    assert resolve("u@host", old).address == "u@host.roost.test"
    assert resolve("u@host", SETTINGS).address == "u@host"


ATEXT = st.text(alphabet="abcxyz019-_.+=", min_size=1, max_size=8)
LABEL = st.text(alphabet="abcdefgh0123", min_size=1, max_size=6)


@hsettings(max_examples=200, deadline=None)
@given(user=ATEXT, ext=st.lists(LABEL, min_size=1, max_size=3).map(".".join),
       local=st.sampled_from(["local.test", "mx.roost.test", "[127.0.0.1]", "LOCAL.TEST."]),
       form=st.integers(0, 4))
def test_every_trick_form_points_outside(user, ext, local, form):
    ext = ext + ".example"
    address = [f"{user}%{ext}@{local}", f"{user}@{ext}@{local}", f"{ext}!{user}@{local}",
               internal_form(f'<"{user}@{ext}"@{local}>'), internal_form(f"<@{local}:{user}@{ext}>")][form]
    resolved = resolve(address, SETTINGS)
    assert resolved.address_class == "default" or resolved.routed


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_address_functions_never_raise(text):
    internal = internal_form(text)
    external_form(internal)
    resolved = resolve(internal, SETTINGS)
    assert resolved.address_class in ("local", "virtual_alias", "virtual_mailbox", "relay", "default")
    if '"' not in text and "\\" not in text:
        assert internal_form(internal) == internal or internal.startswith("<") or internal.startswith("@")
