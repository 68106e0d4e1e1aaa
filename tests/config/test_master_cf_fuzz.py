"""Garbage master.cf input gives diagnostics, never another exception."""

from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.config.diagnostics import Diagnostics
from roost.config.listen import inet_endpoints
from roost.config.master_cf import (
    active_services, effective_chroot, effective_maxproc, effective_private, effective_unpriv,
    effective_wakeup, format_postconf_M, parse_master_cf, parse_master_cf_text, render_postconf_M,
)

FILE = "/etc/roost/master.cf"
# Text biased towards master.cf syntax, so the parser gets past its first checks.
SYNTAX = st.sampled_from(["smtp", "inet", "unix", "unix-dgram", "fifo", "pass", "n", "y", "-",
                          "60", "1000?", "0", "smtpd", "pipe", "-o", "x=y", "{", "}", "{ a = b }",
                          "[::1]:25", "127.0.0.1:", ":", "#", " ", "\t", "\n", "\n  ", "\r\n",
                          "\0", "\x0b", "\x0c", "é", "\udcff", "--", "-vo", "=", "$name", "${x}"])
GARBAGE = st.one_of(SYNTAX, st.text(max_size=8))
FIELD_CHOICES = (
    ["smtp", "submission", "127.0.0.1:2525", "[::1]:25", "localhost:26", "465", "pickup", "a/b"],
    ["inet", "unix", "unix-dgram", "fifo", "pass"],
    ["n", "y", "-"], ["n", "y", "-"], ["n", "y", "-"],
    ["-", "0", "60", "1000?", "0?"], ["-", "0", "1", "100"], ["smtpd", "pipe", "local"],
)


@st.composite
def masterish(draw):
    """Entries whose fields are mostly plausible, with garbage mixed into fields and arguments."""
    out = []
    for _ in range(draw(st.integers(0, 6))):
        fields = [draw(st.one_of(st.sampled_from(choices), GARBAGE) if draw(st.integers(0, 9)) == 0
                       else st.sampled_from(choices)) for choices in FIELD_CHOICES]
        args = draw(st.lists(GARBAGE, max_size=12))
        out.append(" ".join(fields + args))
        out.append(draw(st.sampled_from(["\n", "\n  ", "\n#x\n", "\r\n", "\n\n"])))
    return "".join(out) + draw(st.lists(GARBAGE, max_size=5).map("".join))


MASTERISH = masterish()


def no_dns(host, families):
    return [(socket.AF_INET, "127.0.0.1")] if host == "localhost" else []


def check_everything_downstream(services, diags: Diagnostics) -> None:
    for diagnostic in diags.items:
        assert diagnostic.file == FILE
        assert diagnostic.line is None or diagnostic.line >= 1
        assert str(diagnostic)
    for fold in (False, True):
        assert format_postconf_M(services, (), fold).count("\n") >= len(services)
    render_postconf_M(services, ["smtp", "*/inet", "a/b/c"])
    for service in active_services(services):
        effective_private(service), effective_unpriv(service), effective_chroot(service, "3.6")
        effective_wakeup(service), effective_maxproc(service, 100)
        if service.type == "inet":
            inet_endpoints(service.name, "all", "all", diags, FILE, service.line, resolver=no_dns)


@settings(max_examples=300, deadline=None)
@given(MASTERISH)
def test_masterish_text_never_raises(text):
    diags = Diagnostics()
    services = parse_master_cf_text(text, FILE, diags)
    check_everything_downstream(services, diags)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_never_raises(text):
    diags = Diagnostics()
    check_everything_downstream(parse_master_cf_text(text, FILE, diags), diags)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_binary_files_never_raise(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bin") / "master.cf"
    path.write_bytes(data)
    diags = Diagnostics()
    services = parse_master_cf(str(path), diags)
    for diagnostic in diags.items:
        assert diagnostic.file == str(path)
    for fold in (False, True):
        format_postconf_M(services, (), fold)


def test_huge_lines_deep_braces_and_long_chains():
    huge = "smtp inet n - n - - smtpd -o x=" + "y" * 1_000_000 + "\n"
    deep = "a unix - - n - - pipe " + "{" * 10_000 + "x" + "}" * 10_000 + "\n"
    unbalanced = "b unix - - n - - pipe " + "{" * 10_000 + "\n"
    chain = "c unix - - n - - smtp\n" + "  -o p=v\n" * 20_000
    for text in (huge, deep, unbalanced, chain):
        diags = Diagnostics()
        services = parse_master_cf_text(text, FILE, diags)
        check_everything_downstream(services, diags)
    assert len(parse_master_cf_text(chain, FILE, Diagnostics())[0].overrides) == 20_000
