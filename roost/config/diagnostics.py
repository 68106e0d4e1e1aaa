"""Configuration diagnostics: one message per problem, with file and line.

Every configuration parser (main.cf, master.cf, dovecot.conf, lookup tables) reports into a
`Diagnostics` collector instead of raising, so one run lists every problem in every file.

Invariants: parsers never raise on bad input; they record a Diagnostic and carry on with
what they can recover. Only `Diagnostics.raise_if_fatal()` turns fatal ones into an error.
Security: messages quote at most a bounded, printable excerpt of the offending input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

EXCERPT_LIMIT = 80


class Severity(enum.Enum):
    WARNING = "warning"  # reported; the server still starts
    FATAL = "fatal"  # reported; the server refuses to start, `roost check` exits non-zero


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    """A short, printable rendering of untrusted input for a message."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return shown.encode("unicode_escape", "backslashreplace").decode("ascii")


@dataclass(frozen=True)
class Diagnostic:
    severity: Severity
    file: str
    line: int | None
    message: str

    def where(self) -> str:
        # Postfix writes "file, line N"; a problem with the whole file has no line.
        return f"{self.file}, line {self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.severity.value}: {self.where()}: {self.message}"


class ConfigError(Exception):
    """Raised by `Diagnostics.raise_if_fatal`; carries every fatal diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


@dataclass
class Diagnostics:
    items: list[Diagnostic] = field(default_factory=list)

    def warning(self, file: str, line: int | None, message: str) -> None:
        self.items.append(Diagnostic(Severity.WARNING, file, line, message))

    def fatal(self, file: str, line: int | None, message: str) -> None:
        self.items.append(Diagnostic(Severity.FATAL, file, line, message))

    @property
    def fatals(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity is Severity.FATAL]

    def has_fatal(self) -> bool:
        return any(d.severity is Severity.FATAL for d in self.items)

    def extend(self, other: "Diagnostics") -> None:
        self.items.extend(other.items)

    def raise_if_fatal(self) -> None:
        if self.has_fatal():
            raise ConfigError(self.fatals)
