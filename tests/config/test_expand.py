"""Unit tests of Postfix `$name` expansion (roost.config.expand); the differential tests
against real postconf are in test_postconf_parity.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from roost.config.expand import (MAX_NESTING, ExpansionError, Expander, compare, parse_level,
                                 scan_references)

VALUES = {"mydomain": "dd", "empty": "", "host": "mail.$mydomain", "a": "$b", "b": "$c",
          "c": "$a", "self": "x$self", "deep": "$mydomain"}


def expand(text: str, values=None) -> str:
    table = VALUES if values is None else values
    return Expander(table.get).expand(text)


@pytest.mark.parametrize("text, expected", [
    ("plain", "plain"),
    ("$mydomain", "dd"),
    ("${mydomain}", "dd"),
    ("$(mydomain)", "dd"),
    ("x$mydomain.y", "xdd.y"),
    ("$host", "mail.dd"),
    ("${undefined}x", "x"),
    ("$$a", "$a"),
    ("$$$mydomain", "$dd"),
    ("${mydomain}}", "dd}"),
    ("a${mydomain? x }b", "a x b"),
    ("a${mydomain?{ x }}b", "a x b"),
    ("a${empty: y }b", "a y b"),
    ("a${mydomain:y}b", "ab"),
    ("a${mydomain?{x}:{y}}b", "axb"),
    ("a${empty?{x}:{y}}b", "ayb"),
    ("a${empty?{x}: y }b", "a y b"),
    ("a${empty?{x} : {y}}b", "ayb"),
    ("a${empty?{x}:}b", "ab"),
    ("a${mydomain?{x{y}}}b", "ax{y}b"),
    ("a${mydomain?x:y}b", "ax:yb"),
    ("a$(mydomain?(x))b", "a(x)b"),
    ("${ mydomain }", "dd"),
    ("${mydomain ?x}", "x"),
    ("${mydomain?{x} }", "x"),
    ("${mydomain?$mydomain}", "dd"),
    ("${mydomain?${mydomain?{q}}}", "q"),
    ("${empty:${mydomain:{q}}}", ""),
    ("${?x}", ""),
    ("${{a}=={a}?{y}:{n}}", "y"),
    ("${{a} == {b} ? {y} : {n}}", "n"),
    ("${{a} != {b} ? {y} : {n}}", "y"),
    ("${{10} < {9} ? {y} : {n}}", "n"),
    ("${{10} < {9a} ? {y} : {n}}", "y"),
    ("${{010} == {10} ? {y} : {n}}", "y"),
    ("${{ 10 } == {10} ? {y} : {n}}", "n"),
    ("${{a} == {a}}", "true"),
    ("${{a} == {b}}", ""),
    ("${{a} == {b} : {y}}", "y"),
    ("${{a} == {a} ? y : n}", " y : n"),
    ("${{$mydomain} == {dd} ? {$mydomain} : {n}}", "dd"),
    ("${{3.10} >level {3.9} ? {y} : {n}}", "y"),
    ("${{3.10} > {3.9} ? {y} : {n}}", "n"),
    ("${{1} ==level {1.0.0} ? {y} : {n}}", "y"),
    ("${{2} <=level {2} ? {y} : {n}}", "y"),
    ("${{} == {} ? {y} : {n}}", "y"),
    ("${mydomain:{a$ b}}", ""),  # unselected branch: only scanned
])
def test_expansion_forms(text, expected):
    assert expand(text) == expected


@pytest.mark.parametrize("text, message", [
    ("$", "empty macro name"),
    ("a$ b", "empty macro name"),
    ("$mydomain$", "empty macro name"),
    ("$-x", "empty macro name"),
    ("${", "truncated macro reference"),
    ("${mydomain", "truncated macro reference"),
    ("$(mydomain}", "truncated macro reference"),
    ("${my-domain}", "attribute name syntax error"),
    ("${mydomain?{x}y}", '":" expected'),
    ("${mydomain:{x}:{y}}", "unexpected input"),
    ("${empty?{x}:{y}z}", "unexpected input"),
    ("${{a} === {a} ? {y} : {n}}", '"==" or "!="'),
    ("${{a} == a ? {y} : {n}}", '"{expression}" expected'),
    ("${{a} <level {1} ? {y} : {n}}", "malformed compatibility level"),
    ("${{99999999999999999999} > {1} ? {y} : {n}}", "bad numerical conversion"),
])
def test_syntax_errors_are_expansion_errors(text, message):
    with pytest.raises(ExpansionError) as raised:
        expand(text)
    assert message in raised.value.message


@pytest.mark.parametrize("name, cycle", [("a", "$a -> $b -> $c -> $a"), ("self", "$self -> $self")])
def test_loops_are_reported_with_the_cycle(name, cycle):
    expander = Expander(VALUES.get)
    with pytest.raises(ExpansionError) as raised:
        expander.value(name)
    assert cycle in raised.value.message
    assert raised.value.names[0] == name


def test_deep_nesting_stops_at_the_limit_without_recursion_error():
    text = "${mydomain?" * 5000 + "x" + "}" * 5000
    with pytest.raises(ExpansionError) as raised:
        expand(text)
    assert "nesting" in raised.value.message
    assert expand("${mydomain?" * (MAX_NESTING // 2) + "x" + "}" * (MAX_NESTING // 2)) == "x"


def test_long_non_cyclic_chains_expand():
    chain = {f"p{i}": f"$p{i + 1}" for i in range(60)}
    chain["p60"] = "end"
    assert Expander(chain.get).value("p0") == "end"


def test_values_are_cached_and_lazy():
    calls = []

    def lookup(name):
        calls.append(name)
        return VALUES.get(name)

    expander = Expander(lookup)
    assert expander.value("host") == "mail.dd"
    assert expander.value("host") == "mail.dd"
    assert calls.count("host") == 1 and calls.count("mydomain") == 1
    expander.expand("${empty?$never_looked_up}")
    assert "never_looked_up" not in calls or calls.count("never_looked_up") == 1


def test_undefined_names_are_reported():
    seen = []
    Expander(VALUES.get, on_undefined=seen.append).expand("$nope ${also:x} ${mydomain?$nope2}")
    assert seen == ["nope", "also", "nope2"]


def test_unselected_branch_errors_are_warnings():
    warnings = []
    assert Expander(VALUES.get, on_warning=warnings.append).expand("${mydomain?{a}:{$}}") == "a"
    assert warnings and "empty macro name" in warnings[0]


def test_scan_finds_names_in_every_branch():
    names, problems = scan_references("$a ${b?{$c}:{$d}} ${{$e} == {x} ? {$f}} $$g")
    assert set(names) == {"a", "b", "c", "d", "e", "f"}
    assert problems == []
    assert scan_references("x $ y")[1]


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("1", 1 << 20), ("3.6", (3 << 20) | (6 << 10)), ("3.6.1", (3 << 20) | (6 << 10) | 1),
    ("3.10", (3 << 20) | (10 << 10)), ("+3", 3 << 20), ("3.1023", (3 << 20) | (1023 << 10)),
    ("3.1024", None), ("abc", None), ("", None), ("-1", None), ("3.6.1.1", None), ("3.", None),
    (".5", None), ("3.x", None), ("9223372036854775807", None), ("8796093022207", 8796093022207 << 20),
    ("8796093022208", None),
])
def test_compatibility_levels_parse_like_postfix(text, expected):
    assert parse_level(text) == expected


def test_level_comparison_is_numeric_per_component():
    assert compare("3.10", ">level", "3.9")
    assert not compare("3.10", ">", "3.9")
    assert compare("10", ">", "9")
    assert compare("b", ">", "a")


garbage_text = st.text(alphabet=st.sampled_from(list("${}()?:=<>!lev .ab_1 \t\n\\")), max_size=80)


@settings(max_examples=300, deadline=None)
@given(garbage_text)
def test_garbage_gives_only_expansion_errors(text):
    values = dict(VALUES, x=text, y=text[::-1])
    try:
        result = Expander(values.get).expand(text)
        assert isinstance(result, str)
    except ExpansionError as error:
        assert error.message
    names, problems = scan_references(text)
    assert all(isinstance(name, str) for name in names)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_unicode_never_raises_anything_else(text):
    try:
        Expander({"v": text, "w": "$v$v"}.get).value("w")
    except ExpansionError:
        pass
