"""Line classifier for a message body's MIME structure (RFC 2045 section 5, RFC 2046
sections 5.1 and 5.2), as cleanup(8) needs it for mime_header_checks, nested_header_checks
and body_checks (postconf(5)).

Fed the body one line at a time (without line ends), `MimeScanner.line` returns what each
piece is:
  ("body", line)        a body line of some part: body_checks apply
  ("boundary", line)    a `--boundary` or `--boundary--` delimiter line of an open multipart
  ("separator", line)   the empty line ending a header block
  ("mime", header)      a MIME part header (folded lines joined by "\\n"), complete
  ("nested", header)    a header of an attached message/rfc822, complete
A header is only returned when the next line shows it is complete, so callers can drop or
replace it whole. Multipart nesting is tracked with a boundary stack; a delimiter of an
outer multipart closes the inner ones (RFC 2046 section 5.1.2). `part_started` counts
parts, so body_checks_size_limit can be applied per part.

Invariants: pure and sans-IO; bounded: headers beyond `header_limit` bytes are cut, the
stack holds at most MAX_DEPTH boundaries (deeper nesting is treated as body text, as
Postfix's mime_nesting_limit does); garbage input gives "body" lines, never an exception.
Security: boundaries come from the message; they are only compared, never interpreted.
"""

from __future__ import annotations

import re

from roost.cleanup.headers import is_header_line

MAX_DEPTH = 100  # Postfix mime_nesting_limit default
_TYPE = re.compile(rb"^content-type[ \t]*:[ \t\n]*([!#-'*+.0-9A-Z^-~-]+)/([!#-'*+.0-9A-Z^-~-]+)", re.I)
_BOUNDARY = re.compile(rb'(?:^|;)[ \t\n]*boundary[ \t]*=[ \t]*(?:"([^"]*)"|([^ \t\n;]+))', re.I)


def content_type(header: bytes) -> tuple[bytes, bytes, bytes | None] | None:
    """(type, subtype, boundary) of a Content-Type header, lower-cased; None if not one."""
    match = _TYPE.match(header)
    if not match:
        return None
    params = header[match.end():]
    boundary = _BOUNDARY.search(params)
    value = None
    if boundary:
        value = boundary.group(1) if boundary.group(1) is not None else boundary.group(2)
    return match.group(1).lower(), match.group(2).lower(), value


class MimeScanner:
    def __init__(self, primary_type: tuple[bytes, bytes, bytes | None] | None, header_limit: int = 102400) -> None:
        self.boundaries: list[bytes] = []
        self.header_limit = header_limit
        self.mode = "body"
        self.kind = "mime"
        self.part_started = 0
        self._pending = bytearray()
        self._part_type: tuple | None = None
        self._enter(primary_type)

    def _enter(self, ctype: tuple | None) -> None:
        """What follows the end of a header block whose Content-Type was `ctype`."""
        if ctype is None:
            return
        major, minor, boundary = ctype
        if major == b"multipart" and boundary and len(self.boundaries) < MAX_DEPTH:
            self.boundaries.append(boundary)
        elif major == b"message" and minor == b"rfc822" and len(self.boundaries) < MAX_DEPTH:
            self.mode, self.kind = "headers", "nested"

    def _flush(self, out: list) -> None:
        if self._pending:
            header = bytes(self._pending)
            self._pending = bytearray()
            found = content_type(header)
            if found is not None:
                self._part_type = found
            out.append((self.kind, header))

    def line(self, line: bytes) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        if self.mode == "headers":
            if line[:1] in (b" ", b"\t") and self._pending:
                if len(self._pending) < self.header_limit:
                    self._pending += (b"\n" + line)[:self.header_limit - len(self._pending)]
                return out
            self._flush(out)
            if line == b"":
                self.mode = "body"
                ctype, self._part_type = self._part_type, None
                out.append(("separator", line))
                self._enter(ctype)
                return out
            if is_header_line(line):
                self._pending += line[:self.header_limit]
                return out
            self.mode = "body"  # a header block cut short by a non-header line
        if self.boundaries and line.startswith(b"--"):
            for depth in range(len(self.boundaries) - 1, -1, -1):
                boundary = self.boundaries[depth]
                if line.startswith(boundary, 2):  # RFC 2046 section 5.1.1: "--" boundary [ "--" ] LWSP
                    rest = line[2 + len(boundary):]
                    if rest.startswith(b"--"):
                        del self.boundaries[depth:]
                    elif rest.strip(b" \t") == b"":
                        del self.boundaries[depth + 1:]
                        self.mode, self.kind, self._part_type = "headers", "mime", None
                        self.part_started += 1
                    else:
                        continue
                    out.append(("boundary", line))
                    return out
        out.append(("body", line))
        return out

    def finish(self) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        self._flush(out)
        return out
