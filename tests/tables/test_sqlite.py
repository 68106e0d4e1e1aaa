"""roost postmap -q KEY sqlite:CONF answers what Postfix's postmap -q answers.

Each configuration is asked every key by both tools (stdout and exit status compared):
hits, misses, multi-row answers, quotes and SQL metacharacters in keys, %u/%d/%1.. on keys
with and without `@`, the `domain` restriction, result_format, legacy parameters,
expansion_limit, and generated query templates (hypothesis) that check bound parameters
give the strings Postfix's quoting gives.
"""

from __future__ import annotations

import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost.config.diagnostics import Diagnostics
from roost.tables import TableError, open_table
from tests.tables.oracle import ours, real, real_many
from tests.tables.sqlite_cases import write_config

KEYS = [
    "foo@example.com", "FOO@EXAMPLE.COM", "o'brien@example.com", "O'Brien@Example.com", "plain", "PLAIN",
    "nullval", "empty", "num", "real", "real2", "blob", "nul", "upper", "UPPER", "mixed", "comma", "spaced",
    "inactive", "%", "a_c", "abc", "x'; DROP TABLE aliases; --", "文字@例え.jp", "foo", "@example.com",
    "foo@", "@", "a@b.c.d", "a@b@example.com", "foo@sub.example.com", "bar@sub.example.com",
    "foo@bad.example.com", "foo@listed.org", "foo@tabled.net", "foo@sub.tabled.net", "foo@inl.org",
    "foo@third.org", "x@y..z", "x@.y", "x@y.", "a b@c", "%%", "a%b", "_", "\\", '"', "missing",
    "x@[1.2.3.4]", "Straße@Example.COM", "5", "05",
]

# name -> configuration body ({db}: the fixture database, {dir}: the shared directory)
CONFIGS = {
    "aliases": "dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = '%s' AND active = 1\n",
    "user_domain": "dbpath = {db}\n# a continued query\nquery = SELECT result FROM users\n"
                   "    WHERE user = '%u' AND domain = '%d'\n",
    "parts": "dbpath = {db}\nquery = SELECT '%s|%u|%d|%1|%2|%%|%S|%U|%D'\n",
    "local_only": "dbpath = {db}\nquery = SELECT '[%u]'\n",
    "third_label": "dbpath = {db}\nquery = SELECT '%3' || '.' || '%2' || '.' || '%1'\n",
    "domain": "dbpath = {db}\nquery = SELECT result FROM users WHERE user = '%u' AND domain = '%d'\n"
              "domain = example.com, !bad.example.com, {dir}/domains.txt hash:{dir}/domtab\n"
              "    inline:{ {inl.org = x} }, bad.example.com sub.example.com\n",
    "domain_any_key": "dbpath = {db}\nquery = SELECT '%s'\ndomain = example.com, example.jp, 例え.jp\n",
    "result_format": "dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = '%s'\n"
                     "result_format = smtp:[%s]\n",
    "result_parts": "dbpath = {db}\n"
                    "query = SELECT replacement FROM aliases WHERE mailbox = '%u' OR mailbox = '%s'\n"
                    "result_format = <%u|%d|%%>\n",
    "result_key_parts": "dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = '%s'\n"
                        "result_format = %u@%D\n",
    "like": "dbpath = {db}\nquery = SELECT mailbox FROM aliases WHERE mailbox LIKE '%%%s%%' ORDER BY rowid\n",
    "legacy": "dbpath = {db}\ntable = aliases\nselect_field = replacement\nwhere_field = mailbox\n"
              "additional_conditions = AND active = 1 ORDER BY rowid\n",
    "comment": "dbpath = {db}\nquery = SELECT replacement FROM aliases /* %1 */ WHERE mailbox = '%s' -- %u\n",
    "trailing_statement": "dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = '%s'; "
                          "DELETE FROM aliases\n",
    "inner_quotes": "dbpath = {db}\nquery = SELECT 'it''s ' || '%u at ''%d'''\n",
    "multi_column": "dbpath = {db}\nquery = SELECT replacement, mailbox FROM aliases WHERE mailbox = '%s'\n",
    "unknown_parameter": "dbpath = {db}\nquery = SELECT '%s'\nhosts = localhost\n",
}
# Configurations whose lookups may fail: asked one key at a time (a failure ends a -q - run).
FAILING_CONFIGS = {
    "limit": "dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = '%s'\n"
             "expansion_limit = 2\n",
    "limit_one": "dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = '%s'\n"
                 "expansion_limit = 1\nresult_format = %d\n",
    "numeric": "dbpath = {db}\nquery = SELECT val FROM nums WHERE id = %s\n",
    # Postfix does not escape '"': the key '"' breaks its query.
    "double_quoted": 'dbpath = {db}\nquery = SELECT replacement FROM aliases WHERE mailbox = "%s"\n',
}
FAILING_KEYS = {
    "limit": ["foo@example.com", "mixed", "comma", "plain", "missing", "FOO@EXAMPLE.COM"],
    "limit_one": ["foo@example.com", "mixed", "o'brien@example.com", "plain", "num", "missing"],
    "numeric": ["5", "05", "5.0", " 7", "7 ", "8", "abc", "x y", "", "-5", "+7", "5e0", "o'brien"],
    "double_quoted": ["foo@example.com", "o'brien@example.com", "O'Brien@Example.com", "plain", '"', "%",
                      "x'; DROP TABLE aliases; --", "mixed", "missing", "upper"],
}


def _config(shared, name: str, body: str):
    return write_config(shared, name, body, db=str(shared / "fixture.db"), dir=str(shared))


def test_batch_lookups_match_postfix(sqlite_sides):
    real_side, roost_side, _database, shared = sqlite_sides
    stdin = "".join(key + "\n" for key in KEYS).encode()
    mismatches = []
    for name, body in CONFIGS.items():
        reference = f"sqlite:{_config(shared, name, body)}"
        expected, real_err = real("postmap", real_side, "-q", "-", reference, stdin=stdin)
        got, err = ours("postmap", roost_side, "-q", "-", reference, stdin=stdin)
        assert "Traceback" not in err
        assert "fatal" not in real_err, (name, real_err)
        if got != expected:
            mismatches.append((name, expected, got, err))
    assert not mismatches, mismatches[:3]


def test_single_lookups_match_postfix(sqlite_sides):
    real_side, roost_side, _database, shared = sqlite_sides
    cases = [(name, key) for name, keys in FAILING_KEYS.items() for key in keys]
    cases += [("aliases", key) for key in KEYS + [""]]
    references = {name: f"sqlite:{_config(shared, name, body)}"
                  for name, body in {**CONFIGS, **FAILING_CONFIGS}.items()}
    answers = real_many("postmap", real_side, [("-q", key, references[name]) for name, key in cases])
    mismatches = []
    for (name, key), (expected, _) in zip(cases, answers):
        got, err = ours("postmap", roost_side, "-q", key, references[name])
        assert "Traceback" not in err
        if got != expected:
            mismatches.append((name, key, expected, got, err))
    assert not mismatches, mismatches[:5]


def test_postfix_warnings_are_repeated(sqlite_sides):
    real_side, roost_side, _database, shared = sqlite_sides
    aliases = f"sqlite:{_config(shared, 'aliases', CONFIGS['aliases'])}"
    limit = f"sqlite:{_config(shared, 'limit', FAILING_CONFIGS['limit'])}"
    runs = [("-q", "mixed", aliases), ("-q", "", aliases), ("-q", "mixed", limit)]
    answers = real_many("postmap", real_side, runs)
    for args, (_expected, expected_err) in zip(runs, answers):
        _got, err = ours("postmap", roost_side, *args)
        # The same warnings; a failing lookup then ends with a fatal message of its own.
        assert [l for l in err.splitlines() if "fatal" not in l] == [l for l in expected_err.splitlines()
                                                                    if "fatal" not in l]


def test_unquoted_expansion_is_one_value_not_sql(sqlite_sides):
    """The documented difference: Postfix pastes `%s` into the SQL text, roost binds it."""
    real_side, roost_side, _database, shared = sqlite_sides
    reference = f"sqlite:{_config(shared, 'numeric', FAILING_CONFIGS['numeric'])}"
    for key in ("5 OR 1=1", "0x5"):
        expected, _ = real("postmap", real_side, "-q", key, reference)
        got, _ = ours("postmap", roost_side, "-q", key, reference)
        assert expected.code == 0 and "five" in expected.stdout  # Postfix ran the key as SQL
        assert (got.stdout, got.code) == ("", 1)


# --- generated query templates --------------------------------------------------------
STRING_EXPRESSIONS = ["'%s'", "'<%u>'", "'%d'", "'%1.%2'", "'it''s'", "'%%'", "'%U@%D'", "\"%S\"",
                      "'a''%s''b'", "'%s' || '%s'", "'%%%s%%'", "replace('%s', '.', '-')", "upper('%u')",
                      "length('%s')", "'%9'", "'[%3]'"]
TRAILERS = ["", " -- %d", " /* %1 */", "; SELECT 2", " WHERE '%s' LIKE 'a%%'", " WHERE '%u' <> 'x'"]
FORMATS = ["", "result_format = %s\n", "result_format = {%u}\n", "result_format = %d/%S\n",
           "result_format = %%%s\n"]
FUZZ_KEYS = ["a@b.c", "O'Neil@x.org", "a'b", "''", "%", "a_b", "x@y@z", "@x.y", "u@", "q'uote@d.e",
             "semi;colon", "--dash", "/*", "?", ":name", "$var", "文字@例え.jp", "A.B.C.D@E.F.G.H.I.J"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(expressions=st.lists(st.sampled_from(STRING_EXPRESSIONS), min_size=1, max_size=3),
       trailer=st.sampled_from(TRAILERS), result_format=st.sampled_from(FORMATS),
       key=st.sampled_from(FUZZ_KEYS))
def test_generated_templates_match_postfix(sqlite_sides, expressions, trailer, result_format, key):
    real_side, roost_side, _database, shared = sqlite_sides
    body = f"dbpath = {{db}}\nquery = SELECT {' || '.join(expressions)}{trailer}\n{result_format}"
    reference = f"sqlite:{_config(shared, 'generated', body)}"
    expected, _ = real("postmap", real_side, "-q", key, reference)
    got, err = ours("postmap", roost_side, "-q", key, reference)
    assert got == expected, (body, key, err)


# --- roost-only behaviour ----------------------------------------------------------------
def test_database_is_read_only_and_cannot_attach(sqlite_sides):
    _real_side, _roost_side, database, shared = sqlite_sides
    for name, query in (("insert", "INSERT INTO nums VALUES (9, 'nine')"),
                        ("attach", f"ATTACH DATABASE '{shared}/created.db' AS other"),
                        ("pragma", "PRAGMA user_version = 3")):
        config = _config(shared, name, f"dbpath = {{db}}\nquery = {query}\n")
        table = open_table(f"sqlite:{config}", Diagnostics(), cache=False)
        try:
            table.lookup("x")
            raise AssertionError(f"{name} ran")
        except TableError as exc:
            assert "SQL prepare failed" in str(exc)
        finally:
            table.close()
    assert not (shared / "created.db").exists()
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT count(*) FROM nums").fetchone() == (2,)
        assert connection.execute("PRAGMA user_version").fetchone() == (0,)


def test_table_follows_changes_of_config_and_database(sqlite_sides, monkeypatch):
    _real_side, _roost_side, database, shared = sqlite_sides
    monkeypatch.setattr("roost.tables.base.RELOAD_INTERVAL", 0.0)
    config = _config(shared, "reload", "dbpath = {db}\nquery = SELECT val FROM nums WHERE id = '%s'\n")
    table = open_table(f"sqlite:{config}", Diagnostics(), cache=False)
    try:
        assert table.lookup("5") == "five"
        config.write_text(f"dbpath = {database}\nquery = SELECT upper(val) FROM nums WHERE id = '%s'\n")
        assert table.lookup("5") == "FIVE"
        replacement = shared / "replacement.db"
        with sqlite3.connect(replacement) as connection:
            connection.executescript("CREATE TABLE nums (id INTEGER, val TEXT);"
                                     "INSERT INTO nums VALUES (5, 'cinq');")
        replacement.replace(database)  # a new file under the old name is reopened
        assert table.lookup("5") == "CINQ"
    finally:
        table.close()


def test_missing_database_is_an_error_and_not_created(sqlite_sides):
    _real_side, roost_side, _database, shared = sqlite_sides
    config = _config(shared, "missing_db", f"dbpath = {shared}/absent.db\nquery = SELECT 1\n")
    got, err = ours("postmap", roost_side, "-q", "x", f"sqlite:{config}")
    assert (got.stdout, got.code) == ("", 1)
    assert f"open database {shared}/absent.db: No such file or directory" in err
    assert not (shared / "absent.db").exists()
