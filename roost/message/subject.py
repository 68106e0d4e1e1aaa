"""RFC 5256 §2.1 base subject extraction (SORT SUBJECT, THREAD ORDEREDSUBJECT/REFERENCES).

Steps (RFC 5256 §2.1): (1) decode RFC 2047 words, turn tabs/folds into spaces and collapse
runs of spaces; (2) remove trailing "(fwd)" and white space, repeatedly; (3) remove leading
`*subj-blob subj-refwd` ("[list] Re:", "Fwd:", "RE [x]:") or white space; (4) remove a
leading "[blob]" when something remains; (5) repeat 3-4; (6) unwrap "[fwd: ... ]" and go back
to (2). Comparison form is case folded (i;unicode-casemap in spirit, RFC 5051).
`is_reply` is True when any re/fwd marker was removed (used by THREAD's subject merge).
Invariants: never raises; always terminates (each loop removes at least one character).
Security: linear passes with anchored regexes; no backtracking blow-up (blobs exclude brackets).
"""

from __future__ import annotations

import re

from roost.message.encoded_words import decode_header

_WSP_RUN = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:[ \t]*\(fwd\)|[ \t]+)\Z", re.I)
_LEADER = re.compile(r"\A(?:\[[^\[\]]*\][ \t]*)*(?:re|fwd?)[ \t]*(?:\[[^\[\]]*\][ \t]*)?:[ \t]*", re.I)
_BLOB = re.compile(r"\A\[[^\[\]]*\][ \t]*")
_FWD_WRAP = re.compile(r"\A\[fwd:(.*)\]\Z", re.I | re.S)


def base_subject(raw: bytes | str | None) -> tuple[str, bool]:
    """(base subject as written, whether it was a reply/forward)."""
    if raw is None:
        return "", False
    text = decode_header(raw) if isinstance(raw, bytes) else raw
    text = _WSP_RUN.sub(" ", text)
    reply = False
    while True:
        while True:  # step 2
            match = _TRAILER.search(text)
            if match is None or match.start() == len(text):
                break
            if "(fwd)" in match.group(0).lower():
                reply = True
            text = text[:match.start()]
        while True:  # steps 3-5
            if text.startswith(" "):
                text = text.lstrip(" ")
                continue
            match = _LEADER.match(text)
            if match:
                text = text[match.end():]
                reply = True
                continue
            match = _BLOB.match(text)
            if match and match.end() < len(text):
                text = text[match.end():]
                continue
            break
        match = _FWD_WRAP.match(text)  # step 6
        if match:
            text = match.group(1)
            reply = True
            continue
        return text, reply


def subject_key(raw: bytes | str | None) -> str:
    return base_subject(raw)[0].casefold()
