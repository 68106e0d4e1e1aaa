"""`postconf -M` parity: our formatter's output against real Postfix 3.7, byte for byte."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.config.diagnostics import Diagnostics
from roost.config.master_cf import (
    format_postconf_M, parse_master_cf, parse_master_cf_text, render_postconf_M,
)
from tests.config.test_master_cf import FIXTURES, config_dir, parse, postconf
from tests.conftest import require_tool

SELECTIONS = [(), ("smtp/inet",), ("submission",), ("smtp",), ("*/unix",), ("smtp/*",),
              ("smtp", "submission/inet", "no-such-service"), ("pickup", "pickup")]


def real_output(directory, fold: bool, selectors) -> tuple[str, list[str]]:
    result = postconf(directory, "-Mf" if fold else "-M", *selectors)
    assert result.returncode == 0, result.stderr
    unmatched = [line.split("warning: ", 1)[1] for line in result.stderr.decode().splitlines()
                 if "unmatched request" in line]
    return result.stdout.decode("utf-8", "surrogateescape"), unmatched


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_postconf_M_output_is_identical(tmp_path, fixture):
    directory = config_dir(tmp_path, fixture)
    services, diags = parse(directory)
    assert not diags.has_fatal()
    for fold in (False, True):
        for selectors in SELECTIONS:
            expected, unmatched = real_output(directory, fold, selectors)
            ours = render_postconf_M(services, selectors, fold)
            assert ours.stdout == expected, (fold, selectors)
            assert list(ours.warnings) == unmatched, (fold, selectors)
            assert ours.fatal is None


def test_malformed_selectors_fail_like_postconf(tmp_path):
    directory = config_dir(tmp_path, "smtp inet n - n - - smtpd\n")
    services, _ = parse(directory)
    selectors = ["/smtp", "a/b/c", "sm*tp", "smtp/in*", "", "//"]
    # postconf sleeps a second before a fatal exit: run every case at once.
    running = [subprocess.Popen([require_tool("postconf"), "-c", str(directory), "-M", selector],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for selector in selectors]
    for selector, process in zip(selectors, running):
        stdout, stderr = process.communicate(timeout=30)
        ours = render_postconf_M(services, [selector])
        assert process.returncode != 0 and stdout == b"", selector
        assert ours.fatal is not None and ours.fatal in stderr.decode(), selector
        assert format_postconf_M(services, [selector]) == ""


def test_each_matching_selector_prints_the_entry_again(tmp_path):
    directory = config_dir(tmp_path, "smtp inet n - n - - smtpd\nsmtp unix - - n - - smtp\n")
    services, _ = parse(directory)
    expected, _ = real_output(directory, False, ("smtp", "smtp/inet"))
    assert format_postconf_M(services, ("smtp", "smtp/inet")) == expected
    assert expected.count("smtp       inet") == 2


# Building blocks for generated entries: valid fixed fields, arguments full of edge cases.
NAMES = st.sampled_from(["smtp", "a", "submission", "verylongservicename-x", "127.0.0.1:2525",
                         "[::1]:2526", "é", "邮件", "x" * 12])
UNIX_TYPES = st.sampled_from(["unix", "unix-dgram", "fifo", "pass"])
ATOMS = st.sampled_from([
    "-o", "-v", "-", "--", "-vo", "-ox=y", "x=y", "{a = b c}", "{ a=b }", "{}", "{ }", "-o{z=1}",
    "flags=Rq", "argv=/bin/x", "${recipient}", "{a b}", "c{d e}f", "é", "-ooo", "-D", "-n",
    "smtp/inet", "name=with=eq", "#", "a" * 40, "{x {y} z}", "-o {long_parameter_name = " + "v" * 50 + "}",
])
SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n ", "\n\t", "\n#comment\n  ", "\n\n "])


@st.composite
def master_cf_entries(draw):
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(NAMES)
        kind = "inet" if ":" in name else draw(UNIX_TYPES)
        private = "n" if kind == "inet" else draw(st.sampled_from("yn-"))
        fields = [name, kind, private, draw(st.sampled_from("yn-")), draw(st.sampled_from("yn-")),
                  draw(st.sampled_from(["-", "0", "60", "1000?"])),
                  draw(st.sampled_from(["-", "0", "1", "100"])),
                  draw(st.sampled_from(["smtpd", "pipe", "x" * 30]))]
        text = draw(SEPARATORS).join(fields)
        for atom in draw(st.lists(ATOMS, max_size=10)):
            text += draw(SEPARATORS) + atom
        lines.append(text)
    return "\n".join(lines) + "\n"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=master_cf_entries(), fold=st.booleans())
def test_generated_entries_print_like_postconf(tmp_path, text, fold):
    directory = config_dir(tmp_path, text)
    diags = Diagnostics()
    services = parse_master_cf(str(directory / "master.cf"), diags)
    result = postconf(directory, "-Mf" if fold else "-M")
    # The fixed fields generated are valid, so every entry is kept, even one whose `-o` is
    # broken (a master(8)-level fatal that postconf does not check).
    assert result.returncode == 0, result.stderr
    assert len(services) == sum(1 for line in text.split("\n") if line and line[0] not in " \t#")
    assert format_postconf_M(services, (), fold) == result.stdout.decode("utf-8", "surrogateescape")


def test_formatter_round_trips_its_own_output():
    text = "x unix - - n - - pipe -v -o {a = b c} flags=R argv=/bin/echo {two words} ${user}\n"
    services = parse_master_cf_text(text, "m.cf", Diagnostics())
    printed = format_postconf_M(services)
    again = parse_master_cf_text(printed, "m.cf", Diagnostics())
    assert format_postconf_M(again) == printed
    assert again[0].overrides == services[0].overrides == (("a", "b c"),)
