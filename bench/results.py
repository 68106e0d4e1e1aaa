"""bench/RESULTS.md, one `## Title` section per benchmark: each script replaces its own.

Invariants: the other sections stay byte for byte; a section ends with one blank line before
the next `## ` heading (a `### ` subsection belongs to its section); a missing file or
section is created (appended at the end).
"""

from __future__ import annotations

import os
import re

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
HEAD = "# roost benchmark results\n"


def replace_section(section: str, path: str = RESULTS) -> None:
    """Put `section` (its first line is the `## Title` heading) in place of the section
    with that title, or at the end."""
    title = section.split("\n", 1)[0]
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else HEAD
    block = section.strip("\n") + "\n\n"
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _match: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text.rstrip("\n") + "\n")
