"""Test helpers for the dovecot.conf tests: the real doveconf (the oracle) and roost's.

Both outputs are compared without doveconf's leading header comment lines (`# 2.3.19.1
(...)`, `# Pigeonhole ...`, `# OS: ...`, `# Hostname: ...`): version, OS and host name differ
by design between the two programs.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

from roost.cli import doveconf as roost_doveconf_cli
from roost.config.diagnostics import Diagnostics
from roost.config.dovecot_conf import DovecotConfig, parse_dovecot_conf
from tests.conftest import require_tool

DATA = Path(__file__).resolve().parent
FIXTURES = ("seed000", "seed002", "seed004", "debian", "full")


def fixture_conf(name: str) -> str:
    return str(DATA / name / "dovecot.conf")


def without_header(text: str) -> str:
    lines = text.split("\n")
    while lines and lines[0].startswith("# "):
        lines.pop(0)
    return "\n".join(lines)


def real_doveconf(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    tool = require_tool("doveconf")
    return subprocess.run([tool, *args], capture_output=True, text=True, cwd=cwd,
                          errors="surrogateescape", timeout=30)


def roost_doveconf(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run roost's doveconf in this process: (exit code, stdout, stderr)."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape")
    err = io.StringIO()
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.update(env)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = roost_doveconf_cli.main(["doveconf", *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out.flush()
    return code, out.buffer.getvalue().decode("utf-8", "surrogateescape"), err.getvalue()


def same_output(*args: str) -> tuple[str, str]:
    """(real doveconf stdout, roost doveconf stdout), headers removed; both must succeed."""
    real = real_doveconf(*args)
    assert real.returncode == 0, real.stderr
    code, mine, err = roost_doveconf(*args)
    assert code == 0, err
    return without_header(real.stdout), without_header(mine)


def write(directory: Path, text: str | bytes, name: str = "dovecot.conf") -> str:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def parse(path: str, expand: bool = True) -> tuple[DovecotConfig, Diagnostics]:
    diags = Diagnostics()
    return parse_dovecot_conf(path, diags, expand=expand), diags


NOT_YET = "(roost does not implement it yet)"


def messages(diags: Diagnostics) -> list[str]:
    """Every diagnostic except "not implemented yet" ones, which say what roost's running
    code acts on (tests/config/test_dovecot_errors.py checks those), not how a file parsed."""
    return [str(item) for item in diags.items if not item.message.endswith(NOT_YET)]
