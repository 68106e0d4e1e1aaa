"""Malformed tables give file:line warnings, never a traceback; every parser survives fuzzing;
tables are re-read when their files change."""

from __future__ import annotations

import io
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.cli.postmap import run_tool
from roost.config.diagnostics import Diagnostics
from roost.tables import TableError, open_table
from roost.tables.access import client_keys, mail_address_keys, parse_access_result
from roost.tables.aliases import expand
from roost.tables.cidr import CidrTable
from roost.tables.memory import InlineTable, split_braced_list
from roost.tables.regexp import RegexpTable
from roost.tables.source import normalize_address_list, parse_entries

# (name, table type, tool, content, expected fragment of the warning; "{f}" is the file)
MALFORMED = [
    ("unterminated_regexp", "regexp", "postmap", b"/abc REJECT\n", 'regexp map {f}, line 1: no closing regexp'),
    ("bad_regexp_class", "regexp", "postmap", b"/[/ REJECT\n", "regexp map {f}, line 1: "),
    ("bad_regexp_flag", "regexp", "postmap", b"/a/q REJECT\n", 'regexp map {f}, line 1: unknown regexp option "q"'),
    ("endif_without_if", "regexp", "postmap", b"/a/ A\nendif\n", "regexp map {f}, line 2: ignoring ENDIF"),
    ("if_without_endif", "pcre", "postmap", b"/a/ A\nif /b/\n/c/ C\n", "pcre map {f}, line 2: IF has no matching"),
    ("bad_replacement", "regexp", "postmap", b"/a(b)/ $2\n", 'regexp map {f}, line 1: out of range replacement'),
    ("pcre_recursion", "pcre", "postmap", b"/a(?R)?b/ X\n", "pcre map {f}, line 1: construct not supported"),
    ("regexp_nul", "regexp", "postmap", b"/a\x00b/ X\n/[[:nope:]]/ Y\n", "regexp map {f}, line 2: "),
    ("bad_cidr_address", "cidr", "postmap", b"300.1.1.1 X\n", 'cidr map {f}, line 1: bad address pattern'),
    ("bad_cidr_mask", "cidr", "postmap", b"1.2.3.0/40 X\n", 'cidr map {f}, line 1: bad mask length'),
    ("cidr_host_bits", "cidr", "postmap", b"10.0.0.1/8 X\n", "cidr map {f}, line 1: non-null host address bits"),
    ("cidr_missing_value", "cidr", "postmap", b"10.0.0.0/8\n", "cidr map {f}, line 1: no lookup result"),
    ("missing_value", "hash", "postmap", b"good value\nlonely\n", "{f}, line 2: expected format: key whitespace"),
    ("unbalanced_quote", "hash", "postmap", b'"open value\n', "{f}, line 1: unbalanced '\"'"),
    ("leading_whitespace", "hash", "postmap", b"  indented value\n", "{f}: logical line must not start with"),
    ("binary_garbage", "hash", "postmap", bytes(range(256)) * 4, None),
    ("huge_line", "hash", "postmap", b"k " + b"v" * (1024 * 1024) + b"\nbad\n", "{f}, line 2: expected format"),
    ("alias_no_colon", "hash", "postalias", b"root admin\n", "{f}, line 1: need name:value pair"),
    ("alias_not_local", "hash", "postalias", b"a@b: c\n", "{f}, line 1: name must be local"),
    ("texthash_missing_value", "texthash", "postmap", b"a b\nc\n", "{f}, line 2: expected format"),
]


@pytest.mark.parametrize("name,kind,tool,content,fragment", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_tables_warn_with_file_and_line(tmp_path, name, kind, tool, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    (tmp_path / "main.cf").write_text("")
    err = io.StringIO()
    if kind == "hash":
        code = run_tool(tool, [tool, "-c", str(tmp_path), f"hash:{path}"], stdout=io.StringIO(), stderr=err)
        assert code == 0
    code = run_tool(tool, [tool, "-c", str(tmp_path), "-q", "anything", f"{kind}:{path}"],
                    stdout=io.StringIO(), stderr=err)
    assert code in (0, 1)
    assert "Traceback" not in err.getvalue()
    if fragment:
        assert fragment.format(f=path) in err.getvalue()


def test_include_loop_is_reported(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(f"a\n:include:{second}\n")
    second.write_text(f"b\n:include:{first}\n")
    table = open_table(f"inline:{{ {{list=:include:{first}}} }}", cache=False)
    expansion = expand([table], "list")
    assert {t.value for t in expansion.targets} == {"a", "b"}
    assert any("include loop" in str(d) for d in expansion.diags.items)


def test_bad_inline_specs_fail_lookups_cleanly():
    for spec in ("inline:{ a }", "inline:{a=b", "static:{x", "unionmap:{hash:/nonexistent", "nosuch:x", "static:"):
        diags = Diagnostics()
        table = open_table(spec, diags, cache=False)
        with pytest.raises(TableError):
            table.lookup("a")
        assert diags.has_fatal(), spec


text_or_garbage = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.lists(st.sampled_from(["/", "!", "if ", "endif", "\n", " ", "\t", "(", ")", "[", "]", "{", "}", "$1", "${2}",
                              "$$", "\\", "\"", ":", ",", "@", "#", "1.2.3.4", "/24", "::", "a", "\x00", "\n  "]),
             max_size=60).map("".join),
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(text_or_garbage, st.booleans(), st.booleans())
def test_fuzz_source_parser(text, aliases, utf8):
    diags = Diagnostics()
    for line, key, value in parse_entries(text, "fuzz", diags, aliases=aliases, utf8=utf8):
        assert line >= 1 and key and value
    normalize_address_list(text)


@FUZZ
@given(text_or_garbage, st.sampled_from(["regexp", "pcre"]), text_or_garbage)
def test_fuzz_regexp_parser(text, kind, key):
    table = RegexpTable(kind, "{}", None, Diagnostics())
    table._rules = table.parse(text)
    result = table._get(key)
    assert result is None or isinstance(result, str)


@FUZZ
@given(text_or_garbage, text_or_garbage)
def test_fuzz_cidr_parser(text, key):
    table = CidrTable("cidr", "{}", None, Diagnostics())
    table._rules = table.parse(text)
    table._get(key)


@FUZZ
@given(text_or_garbage, text_or_garbage)
def test_fuzz_inline_and_access(text, key):
    table = InlineTable("inline", text, None, Diagnostics())
    try:
        table.lookup(key)
    except TableError:
        pass
    split_braced_list(text)
    parse_access_result(text)
    client_keys(key, text, True)
    mail_address_keys(text, False, "+-")


@FUZZ
@given(st.dictionaries(st.text("abcd+-", min_size=1, max_size=3), text_or_garbage, max_size=6),
       st.text("abcd+-", min_size=1, max_size=4))
def test_fuzz_alias_expansion_terminates(entries, name):
    spec = "inline:{" + ", ".join("{%s=%s}" % (k, v.replace("{", "").replace("}", "")) for k, v in entries.items()) + "}"
    table = open_table(spec, cache=False)
    try:
        expand([table], name, recipient_delimiter="+")
    except TableError:
        pass


def test_tables_reload_when_files_change(tmp_path):
    (tmp_path / "main.cf").write_text("")
    sources = {"texthash": b"key old\n", "hash": b"key old\n", "regexp": b"/^key$/ old\n", "cidr": b"10.0.0.0/8 old\n",
               "pcre": b"/^key$/ old\n"}
    tables = {}
    for kind, content in sources.items():
        path = tmp_path / kind
        path.write_bytes(content)
        if kind == "hash":
            run_tool("postmap", ["postmap", "-c", str(tmp_path), f"hash:{path}"], stdout=io.StringIO(),
                     stderr=io.StringIO())
        tables[kind] = open_table(f"{kind}:{path}", cache=False)
    key = {"cidr": "10.1.1.1"}
    assert {k: t.lookup(key.get(k, "key")) for k, t in tables.items()} == dict.fromkeys(sources, "old")
    for kind, content in sources.items():
        path = tmp_path / kind
        path.write_bytes(content.replace(b"old", b"newer"))
        if kind == "hash":
            run_tool("postmap", ["postmap", "-c", str(tmp_path), f"hash:{path}"], stdout=io.StringIO(),
                     stderr=io.StringIO())
    # at most one stat() per second per table: within the second the old content answers
    assert tables["texthash"].lookup("key") == "old"
    time.sleep(1.05)
    assert {k: t.lookup(key.get(k, "key")) for k, t in tables.items()} == dict.fromkeys(sources, "newer")
    # an incremental update (-i) is seen too, without a new inode
    stdin = io.StringIO()
    stdin.buffer = io.BytesIO(b"added yes\n")
    run_tool("postmap", ["postmap", "-c", str(tmp_path), "-i", f"hash:{tmp_path / 'hash'}"], stdin=stdin,
             stdout=io.StringIO(), stderr=io.StringIO())
    assert tables["hash"].lookup("added") == "yes"
    os.unlink(tmp_path / "hash.roostdb")
    time.sleep(1.05)
    with pytest.raises(TableError, match="hash.roostdb: No such file"):
        tables["hash"].lookup("key")
