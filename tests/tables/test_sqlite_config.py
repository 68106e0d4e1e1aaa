"""Malformed sqlite: configuration files give Postfix's fatal message or a file:line
warning, never a traceback; the configuration parser, the template translator and the
table survive fuzzing; translated queries always carry as many parameters as SQLite sees."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.config.diagnostics import Diagnostics
from roost.tables import TableError, open_table
from roost.tables.sqlite import parse_config, split_list
from roost.tables.sqlite_query import AddressParts, parse_template, translate_query
from tests.tables.oracle import ours, real_many
from tests.tables.sqlite_cases import write_config

# (name, configuration; {db} the fixture database, {dir} the shared directory)
FATAL = [
    ("no_dbpath", "query = SELECT 1\n"),
    ("empty_dbpath", "dbpath =\nquery = SELECT 1\n"),
    ("no_equals", "dbpath = {db}\nquery = SELECT 1\nthis is not an assignment\n"),
    ("no_name", "= x\ndbpath = {db}\nquery = SELECT 1\n"),
    ("nul_in_line", "dbpath = {db}\nquery = SELECT 1\n\0bad = 1\n"),
    ("bad_limit", "dbpath = {db}\nquery = SELECT 1\nexpansion_limit = 2x\n"),
    ("huge_limit", "dbpath = {db}\nquery = SELECT 1\nexpansion_limit = 99999999999999999999\n"),
    ("empty_limit", "dbpath = {db}\nquery = SELECT 1\nexpansion_limit =\n"),
    ("bad_query_template", "dbpath = {db}\nquery = SELECT mailbox FROM aliases WHERE mailbox LIKE 'o%'\n"),
    ("trailing_percent", "dbpath = {db}\nquery = SELECT '%s' || '%'\n"),
    ("bad_result_template", "dbpath = {db}\nquery = SELECT 1\nresult_format = %q\n"),
    ("empty_result_format", "dbpath = {db}\nquery = SELECT 1\nresult_format =\n"),
    ("legacy_without_table", "dbpath = {db}\nselect_field = replacement\nwhere_field = mailbox\n"),
    ("legacy_without_where", "dbpath = {db}\ntable = aliases\nselect_field = replacement\n"),
    ("empty_query_no_legacy", "dbpath = {db}\nquery =\n"),
    ("missing_domain_file", "dbpath = {db}\nquery = SELECT 1\ndomain = {dir}/nonexistent\n"),
    ("bad_sql", "dbpath = {db}\nquery = SELECT FROM WHERE '%s'\n"),
    ("missing_table", "dbpath = {db}\nquery = SELECT x FROM nosuchtable WHERE y = '%s'\n"),
    ("order_of_checks", "query = SELECT %q\nexpansion_limit = x\nresult_format = %q\n"),
    ("limit_before_template", "dbpath = {db}\nquery = SELECT %q\nexpansion_limit = x\n"),
    ("format_before_template", "dbpath = {db}\nquery = SELECT %q\nresult_format =\n"),
]
# (name, configuration, what roost says on stderr; {f} is the file) — Postfix is silent or
# fails differently here, so only stdout and the exit status are compared with it.
WARNED = [
    ("unknown_parameter", "dbpath = {db}\nquery = SELECT 1\nbogus = 3\n",
     '{f}, line 3: unknown sqlite_table(5) parameter "bogus": ignored'),
    ("duplicate", "dbpath = {db}\nquery = SELECT 2\nquery = SELECT 3\n",
     "{f}, line 3: overriding earlier entry: query=SELECT 2"),
    ("leading_whitespace", "  leading = x\ndbpath = {db}\nquery = SELECT 1\n",
     '{f}: logical line must not start with whitespace: "  leading = x"'),
    ("second_statement", "dbpath = {db}\nquery = SELECT 1; SELECT 2\n",
     "{f}, line 2: ignoring the text after the first SQL statement"),
    ("sql_parameter", "dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = :key\n",
     '{f}, line 2: the query contains the SQL parameter ":"'),
    ("empty_statement", "dbpath = {db}\nquery = ;\n", "SQL step failed for query ';'"),
    ("several_problems", "dbpath = {db}\nquery = SELECT %q\nresult_format = %z\nfoo bar\n",
     "warning: db_common_parse: {f}: Invalid query template"),
    ("binary_garbage", bytes(range(256)) * 3, None),
]


def _fatal_line(stderr: str) -> str:
    line = next((line for line in stderr.splitlines() if ": fatal: " in line), "")
    return line.removesuffix("?")  # Postfix ends SQLite messages with a stray '?'


def test_fatal_problems_are_reported_as_postfix_does(sqlite_sides):
    real_side, roost_side, database, shared = sqlite_sides
    references = [f"sqlite:{write_config(shared, name, body, db=str(database), dir=str(shared))}"
                  for name, body in FATAL]
    runs = [("-q", "foo@example.com", reference) for reference in references]
    answers = real_many("postmap", real_side, runs)
    for (name, _body), reference, (expected, real_err) in zip(FATAL, references, answers):
        got, err = ours("postmap", roost_side, "-q", "foo@example.com", reference)
        assert "Traceback" not in err
        assert (got.stdout, got.code) == (expected.stdout, expected.code) == ("", 1), name
        assert _fatal_line(err) == _fatal_line(real_err) != "", name


def test_other_problems_warn_with_file_and_line(sqlite_sides):
    real_side, roost_side, database, shared = sqlite_sides
    paths = [write_config(shared, name, body, db=str(database), dir=str(shared)) for name, body, _ in WARNED]
    answers = real_many("postmap", real_side, [("-q", "foo@example.com", f"sqlite:{path}") for path in paths])
    for (name, _body, fragment), path, (expected, _real_err) in zip(WARNED, paths, answers):
        got, err = ours("postmap", roost_side, "-q", "foo@example.com", f"sqlite:{path}")
        assert "Traceback" not in err
        # sql_parameter: Postfix binds NULL to :key and finds nothing; roost refuses the query.
        assert got.stdout == expected.stdout and (got.code == expected.code or name == "sql_parameter"), name
        if fragment:
            assert fragment.format(f=path) in err, (name, err)


def test_main_cf_style_names_are_refused_clearly():
    diags = Diagnostics()
    table = open_table("sqlite:mysqlmap", diags, cache=False)
    with pytest.raises(TableError, match="mysqlmap_dbpath are not supported"):
        table.lookup("x")


def test_address_parts_follow_postfix():
    assert AddressParts.of("a@b@mail.example.com") == AddressParts(
        "a@b@mail.example.com", "a@b", "mail.example.com", ("com", "example", "mail"))
    assert AddressParts.of("plain") == AddressParts("plain", "plain", None, ())
    assert AddressParts.of("@x..y.").labels == ("y", "x")
    assert AddressParts.of("user@").domain is None and AddressParts.of("@d").local is None


def test_domain_list_keeps_braces_together():
    assert split_list("a.com,b.com  inline:{ {x = y z}, c=d } ,!/f") == [
        "a.com", "b.com", "inline:{ {x = y z}, c=d }", "!/f"]


def test_templates_become_bound_parameters():
    query = translate_query(parse_template("SELECT v FROM t WHERE k = '%s' AND d LIKE '%%.%d' -- %u"))
    assert query.sql == "SELECT v FROM t WHERE k = ?1  AND d LIKE ('%.' || ?2 )"
    assert [p.letter for p in query.parameters] == ["s", "d"]
    double_quoted = translate_query(parse_template('SELECT "it\'\'s %s"'))
    assert double_quoted.sql == "SELECT ('it''''s ' || ?1 )"
    assert double_quoted.bind(AddressParts.of("o'x")) == ("o''x",)  # as Postfix's quoting leaves it
    assert query.uses == {"s", "d", "u"}
    assert query.bind(AddressParts.of("o'x@y")) == ("o'x@y", "y")
    assert query.bind(AddressParts.of("@y")) is None  # %u in the comment suppresses the query


# --- fuzzing ------------------------------------------------------------------------------
PARAMETER_LINES = st.sampled_from([
    "dbpath = {db}", "query = SELECT '%s'", "query = SELECT replacement FROM aliases WHERE mailbox = '%s'",
    "result_format = <%s>", "result_format = %u", "domain = example.com", "expansion_limit = 1",
    "table = aliases",
    "select_field = replacement", "where_field = mailbox", "additional_conditions = AND 1", "  continued",
    "# comment", "", "dbpath = {dir}/nope.db", "domain = {dir}/domains.txt", "domain = inline:{a=b}",
])
GARBAGE = st.one_of(st.text(max_size=200),
                    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
                    st.sampled_from(["=", "%", "'", '"', "\0", "x" * 5000, "{" * 50, "[[[", "--", "/*", ";;"]))


@settings(max_examples=250, deadline=None)
@given(text=st.one_of(GARBAGE, st.lists(st.one_of(PARAMETER_LINES, GARBAGE), max_size=12).map("\n".join)))
def test_config_parser_never_raises_anything_else(text):
    diags = Diagnostics()
    try:
        config = parse_config(text.replace("{db}", "/nonexistent.db"), "/fuzz.cf", diags)
    except TableError:
        return
    assert config.dbpath
    for parameter in config.query.parameters:
        assert parameter.letter in "sudSUD123456789"


@settings(max_examples=300, deadline=None)
@given(template=st.one_of(st.text(max_size=120), st.lists(st.sampled_from(
    ["SELECT ", "'", '"', "[", "]", "`", "%s", "%u", "%d", "%1", "%%", "''", "--", "\n", "/*", "*/", ";", "?",
     ":a", "$b", "@c", "x", " || ", "1", ",", "(", ")", "a$b"]), max_size=30).map("".join)),
       key=st.sampled_from(["a@b.c", "x", "o'q@d", "", "@", "%"]))
def test_translated_queries_bind_exactly_their_parameters(template, key):
    items = parse_template(template)
    if items is None:
        return
    query = translate_query(items)
    parameters = query.bind(AddressParts.of(key))
    if query.error or parameters is None or not query.sql:
        return
    connection = sqlite3.connect(":memory:")
    connection.set_progress_handler(lambda: 1, 10_000)  # nothing fuzzed may run long
    try:
        connection.execute(query.sql, parameters).fetchall()
    except sqlite3.ProgrammingError as exc:
        assert "bindings" not in str(exc), (query, exc)  # roost counted the parameters SQLite saw
    except (sqlite3.Error, OverflowError):
        pass
    finally:
        connection.close()


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(st.one_of(PARAMETER_LINES, GARBAGE), max_size=8), key=GARBAGE)
def test_table_lookups_only_fail_with_table_error(sqlite_sides, lines, key):
    _real_side, _roost_side, database, shared = sqlite_sides
    body = "\n".join(lines).replace("{db}", str(database)).replace("{dir}", str(shared))
    path = shared / "fuzz.cf"
    path.write_bytes(body.encode("utf-8", "surrogateescape"))
    table = open_table(f"sqlite:{path}", Diagnostics(), cache=False)
    try:
        answer = table.lookup(key)
        assert answer is None or isinstance(answer, str)
    except TableError:
        pass
    finally:
        table.close()
