"""bench/results.replace_section: one section replaced, the others untouched."""

from __future__ import annotations

import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from results import replace_section  # noqa: E402


def test_replaces_its_section_and_keeps_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# roost benchmark results\n\n## A\n\nold a\n\n## B\n\nb\n### sub\nb2\n\n## C\n\nc\n")
    replace_section("## B\n\nnew b\n", str(path))
    assert path.read_text() == "# roost benchmark results\n\n## A\n\nold a\n\n## B\n\nnew b\n\n## C\n\nc\n"
    replace_section("## C\n\nnew c", str(path))
    assert path.read_text().endswith("## B\n\nnew b\n\n## C\n\nnew c\n")
    replace_section("## D\n\nd\n", str(path))
    assert path.read_text().endswith("## C\n\nnew c\n\n## D\n\nd\n")


def test_creates_the_file(tmp_path):
    path = tmp_path / "RESULTS.md"
    replace_section("## A\n\na\n", str(path))
    assert path.read_text() == "# roost benchmark results\n\n## A\n\na\n"
