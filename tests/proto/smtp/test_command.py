"""roost.proto.smtp.command: paths, ESMTP parameters, xtext (RFC 5321 §4.1.2, RFC 3461 §4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roost.proto.smtp.command import (Features, parse_bdat, parse_mail_params, parse_path,
                                      parse_rcpt_params, xtext_decode, xtext_encode)
from roost.proto.smtp.reply import Reply


@pytest.mark.parametrize("text, strict, expected", [
    ("<a@b>", False, ("a@b", [])),
    (" <a@b>  SIZE=1 BODY=7BIT", False, ("a@b", ["SIZE=1", "BODY=7BIT"])),
    ("<>", False, ("", [])),
    ("<@r1,@r2:u@d>", False, ("u@d", [])),
    ('<"a b"@c>', False, ('"a b"@c', [])),
    ('<"a>b"@c>', False, ('"a>b"@c', [])),
    ("root", False, ("root", [])),
    ("root", True, None),
    ("<a@b", False, None),
    ("<a@b>x", False, None),
    ("<a b@c>", False, None),
    ('<a"b@c>', False, None),
    ("<a\x01@b>", False, None),
    ("", False, None),
])
def test_parse_path(text, strict, expected):
    assert parse_path(text, strict) == expected


def test_xtext():
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"
    assert xtext_decode("a+2b") is None and xtext_decode("a=b") is None and xtext_decode("a b") is None
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=30))
def test_xtext_round_trip(value):
    assert xtext_decode(xtext_encode(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=5))
def test_parameter_parsers_are_total(words):
    for result in (parse_mail_params(words, Features()), parse_rcpt_params(words, Features())):
        assert result is not None
        if isinstance(result, Reply):
            assert result.code in (501, 552, 555)
    parse_bdat(" ".join(words))


def test_bdat_syntax():
    assert parse_bdat("10") == (10, False)
    assert parse_bdat("0 last") == (0, True)
    assert parse_bdat("") is None and parse_bdat("1 2") is None and parse_bdat("-1") is None
    assert parse_bdat("١٢") is None  # Unicode digits are not SMTP digits
