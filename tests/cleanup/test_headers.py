"""The streaming header splitter: any split of the input gives the same result; limits."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from roost.cleanup.headers import HeaderSplitter, header_name, is_header_line


def split_all(data: bytes, chunks: list[int] | None = None, limit: int = 102400):
    splitter = HeaderSplitter(limit)
    headers, body = [], b""
    position = 0
    sizes = chunks or [len(data) or 1]
    index = 0
    while position < len(data):
        size = sizes[index % len(sizes)] or 1
        index += 1
        got, rest = splitter.feed(data[position:position + size])
        position += size
        headers += got
        body += rest
    headers += splitter.finish()
    return headers, body + splitter.trailing_body, splitter


MESSAGE = (b"Received: from a\r\n\tby b; date\r\nSubject: hello\r\n world\r\nX-Empty:\r\n"
           b"\r\nbody line 1\r\n\r\nSubject: not a header\r\n")


def test_split_headers_and_body():
    headers, body, splitter = split_all(MESSAGE)
    assert headers == [b"Received: from a\n\tby b; date", b"Subject: hello\n world", b"X-Empty:"]
    assert body == b"body line 1\r\n\r\nSubject: not a header\r\n"
    assert splitter.separator


def test_byte_at_a_time_is_identical():
    assert split_all(MESSAGE, [1])[:2] == split_all(MESSAGE)[:2]


def test_non_header_line_starts_the_body_without_separator():
    headers, body, splitter = split_all(b"Subject: x\r\nnot a header line\r\nmore\r\n")
    assert headers == [b"Subject: x"]
    assert body == b"not a header line\r\nmore\r\n"
    assert not splitter.separator


def test_leading_continuation_is_body():
    headers, body, _ = split_all(b" indented first\r\nSubject: x\r\n")
    assert headers == [] and body.startswith(b" indented first")


def test_header_size_limit_truncates_one_header():
    long_header = b"Subject: " + b"a" * 5000 + b"\r\n\tcontinued " + b"b" * 5000 + b"\r\nX-Next: 1\r\n\r\nbody\r\n"
    headers, body, splitter = split_all(long_header, [333], limit=1000)
    assert len(headers[0]) == 1000 and headers[0].startswith(b"Subject: aaa")
    assert headers[1] == b"X-Next: 1"
    assert body == b"body\r\n"
    assert splitter.truncated == 1


def test_long_non_header_line_is_body_uncut():
    data = b"x" * 5000 + b"\r\nrest\r\n"
    headers, body, _ = split_all(data, [100], limit=1000)
    assert headers == [] and body == data


def test_header_without_final_newline():
    headers, body, _ = split_all(b"Subject: x\r\nX-Last: y")
    assert headers == [b"Subject: x", b"X-Last: y"] and body == b""


def test_header_names():
    assert header_name(b"Subject : x") == "Subject"
    assert is_header_line(b"X-A: 1") and is_header_line(b"X-A:")
    assert not is_header_line(b": no name") and not is_header_line(b"no colon") and not is_header_line(b"a b: c")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8),
       st.integers(min_value=1, max_value=200))
@example(b"\x00\x00\x00\x00\n", [1, 4], 1)  # a body line split across chunks was cut
def test_any_bytes_any_split_same_result_never_raises(data, chunks, limit):
    whole = split_all(data, None, limit)
    pieces = split_all(data, chunks, limit)
    assert whole[:2] == pieces[:2]
    for header in whole[0]:
        assert len(header) <= limit


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"Subject: a", b" cont", b"\tcont", b"", b"X: y", b"body", b"\r", b":x"]),
                max_size=20), st.sampled_from([b"\r\n", b"\n"]))
def test_structured_fuzz_keeps_every_body_byte(lines, newline):
    data = newline.join(lines) + newline
    headers, body, splitter = split_all(data, [3])
    if splitter.separator or body:
        assert data.endswith(body)


def test_a_colon_beyond_header_size_limit_does_not_make_a_header():
    # judged by the first limit + 1 bytes, whatever the chunks (found by hypothesis: b"! :"
    # fed whole was a header, fed byte by byte it was body)
    for chunks in (None, [1], [2]):
        assert split_all(b"! :", chunks, 1)[:2] == ([], b"! :")
        assert split_all(b"X: y\n", chunks, 2)[:2] == ([b"X:"], b"")
