"""The path scanners of roost.proto.smtp.command take a shortcut when nothing is quoted or
escaped; on every input they must answer what their character-by-character rules answer
(RFC 5321 §4.1.2 Quoted-string, Postfix's minimal mailbox checks)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.smtp.command import (_scan_bracketed, _scan_bracketed_quoted, _valid_mailbox,
                                      _valid_mailbox_quoted)

ALPHABET = '<>a@b. \t"\\(),;:\x00\x1f\x7fé'


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=12))
def test_scanners_agree_with_the_character_rules(body):
    text = "<" + body
    assert _scan_bracketed(text) == _scan_bracketed_quoted(text)
    assert _valid_mailbox(body) == _valid_mailbox_quoted(body)


def test_common_paths():
    assert _scan_bracketed("<alice@example.test> SIZE=10") == 19
    assert _scan_bracketed("<a<b>") == -1
    assert _valid_mailbox("alice@example.test") and not _valid_mailbox("al ice@example.test")
    # the character rules themselves (RFC 5321 §4.1.2): quoted specials, escapes, balance
    assert _scan_bracketed_quoted('<"a>b"@x> rest') == 8 and _scan_bracketed_quoted("<a\\>b>") == 5
    assert _valid_mailbox_quoted('"a b"@x') and not _valid_mailbox_quoted('"a b@x')
    assert not _valid_mailbox_quoted("a\x01@x") and _valid_mailbox_quoted("a\\ b@x")
