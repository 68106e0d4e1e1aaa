"""The MIME line classifier behind mime_header_checks / nested_header_checks / body_checks."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.cleanup.mime import MAX_DEPTH, MimeScanner, content_type


def scan(primary: bytes, body: bytes):
    scanner = MimeScanner(content_type(primary))
    out = []
    for line in body.split(b"\n"):
        out += scanner.line(line)
    return out + scanner.finish(), scanner


def test_content_type_parameters():
    assert content_type(b'Content-Type: multipart/mixed; boundary="a b"') == (b"multipart", b"mixed", b"a b")
    assert content_type(b"content-type: Multipart/Alternative;\n\tcharset=x; BOUNDARY=xyz") == \
        (b"multipart", b"alternative", b"xyz")
    assert content_type(b"Content-Type: text/plain") == (b"text", b"plain", None)
    assert content_type(b"Subject: x") is None


def test_parts_nested_multipart_and_message():
    body = (b"pre\n--o\nContent-Type: multipart/alternative;\n boundary=i\n\n--i\nX-A: 1\n\nhello\n--i--\n"
            b"--o\nContent-Type: message/rfc822\n\nSubject: inner\n\nbody\n--o--\nepilogue")
    out, scanner = scan(b'Content-Type: multipart/mixed; boundary="o"', body)
    kinds = [(k, v) for k, v in out if k != "separator"]
    assert ("mime", b"Content-Type: multipart/alternative;\n boundary=i") in kinds
    assert ("mime", b"X-A: 1") in kinds
    assert ("nested", b"Subject: inner") in kinds
    assert ("body", b"hello") in kinds and ("body", b"epilogue") in kinds
    assert [v for k, v in kinds if k == "boundary"] == [b"--o", b"--i", b"--i--", b"--o", b"--o--"]
    assert scanner.boundaries == [] and scanner.part_started == 3


def test_outer_boundary_closes_inner_parts():
    out, scanner = scan(b"Content-Type: multipart/mixed; boundary=o",
                        b"--o\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\ntext\n--o--\nafter")
    assert ("body", b"after") in out and scanner.boundaries == []


def test_boundary_prefix_with_other_text_is_body():
    out, _ = scan(b"Content-Type: multipart/mixed; boundary=o", b"--o\n\n--other\n--o-ish")
    assert ("body", b"--other") in out and ("body", b"--o-ish") in out


def test_non_mime_message_is_all_body():
    out, _ = scan(b"Content-Type: text/plain", b"--o\nX: y\n\nz")
    assert all(kind == "body" for kind, _ in out)


def test_nesting_is_bounded():
    body = b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1) for i in range(MAX_DEPTH + 20))
    _, scanner = scan(b"Content-Type: multipart/mixed; boundary=b0", body)
    assert len(scanner.boundaries) <= MAX_DEPTH


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"--a", b"--a--", b"--b", b"Content-Type: multipart/x; boundary=b",
                                 b"Content-Type: message/rfc822", b"", b" folded", b"X: y", b"text", b"\xff\x00"]),
                max_size=40), st.binary(max_size=100))
def test_any_lines_never_raise(lines, noise):
    scanner = MimeScanner(content_type(b"Content-Type: multipart/mixed; boundary=a"), header_limit=50)
    for line in lines + noise.split(b"\n"):
        for kind, item in scanner.line(line):
            assert kind in ("body", "boundary", "separator", "mime", "nested")
            if kind in ("mime", "nested"):
                assert len(item) <= 50
    scanner.finish()
