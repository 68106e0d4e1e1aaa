-- The database every sqlite: differential test queries (tests/tables/test_sqlite.py).
CREATE TABLE aliases (mailbox TEXT, replacement, active INTEGER);
INSERT INTO aliases VALUES
  ('foo@example.com', 'bar@example.org', 1),
  ('foo@example.com', 'baz@example.net', 1),
  ('o''brien@example.com', 'ob@example.com', 1),
  ('plain', 'plainresult', 1),
  ('nullval', NULL, 1),
  ('empty', '', 1),
  ('num', 42, 1),
  ('real', 1e20, 1),
  ('real2', 0.1 + 0.2, 1),
  ('blob', x'41ff42', 1),
  ('nul', 'A' || char(0) || 'B', 1),
  ('upper', 'upper-hit', 1),
  ('UPPER', 'must-not-be-found-folded', 1),
  ('mixed', '', 1), ('mixed', 'x@y.com', 1), ('mixed', NULL, 1), ('mixed', 'plain', 1),
  ('mixed', '@dom.org', 1), ('mixed', 'loc@', 1), ('mixed', 'a@b@c.d', 1),
  ('comma', 'a,b', 1), ('comma', 'c', 1),
  ('spaced', ' spaced ', 1),
  ('inactive', 'gone', 0),
  ('%', 'percent-key', 1),
  ('a_c', 'underscore-key', 1),
  ('abc', 'abc-value', 1),
  ('x''; DROP TABLE aliases; --', 'injection-key-row', 1),
  ('文字@例え.jp', 'utf8-hit', 1);
CREATE TABLE users (user TEXT, domain TEXT, result TEXT);
INSERT INTO users VALUES
  ('foo', 'example.com', 'u1'), ('bar', 'sub.example.com', 'u2'), ('foo', 'listed.org', 'u3'),
  ('foo', 'tabled.net', 'u4'), ('a@b', 'example.com', 'u5'), ('foo', 'bad.example.com', 'u6');
CREATE TABLE nums (id INTEGER, val TEXT);
INSERT INTO nums VALUES (5, 'five'), (7, 'seven');
