"""The one finding model every check produces and every reporter renders."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Iterable


class Severity(str, enum.Enum):
    """How bad a finding is; ordered so `--fail-on` can compare."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)


@dataclass(frozen=True, order=True)
class Span:
    """Where a node sits in its source: 1-based line and column, and where it ends when known.

    `end_line`/`end_column` (exclusive, 0 = unknown) let reporters underline the exact text; when
    unknown they underline the YAML token that starts at `column`.
    """

    file: str = ""
    line: int = 1
    column: int = 1
    end_line: int = 0
    end_column: int = 0
    # Columns from `column` to the value's first character (1 past a quote); not part of identity.
    inset: int = field(default=0, compare=False)


def nearest_span(spans: dict[tuple, Span], path: tuple, default: Span) -> Span:
    """The span recorded for `path`, or for its closest recorded ancestor."""
    path = tuple(path)
    while path:
        if path in spans:
            return spans[path]
        path = path[:-1]
    return spans.get((), default)


@dataclass(frozen=True)
class Diagnostic:
    """One finding: a rule code, its severity, where it is and what it means."""

    code: str
    severity: Severity
    message: str
    span: Span = field(default_factory=Span)
    path: tuple = ()
    help: str = ""  # what to do about it (e.g. "did you mean 'x'?"), shown on its own line

    @property
    def full_message(self) -> str:
        """The message with its help appended, for one-line formats."""
        return f"{self.message}; {self.help}" if self.help else self.message

    @property
    def json_path(self) -> str:
        """The finding's location in the document as `$.rooms.meeting.name`."""
        out = "$"
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else f".{part}"
        return out

    def sort_key(self) -> tuple:
        return (self.span.file, self.span.line, self.span.column, self.code, self.message)

    def to_dict(self) -> dict:
        """The JSON form shared by `--format json` and the HTTP layer."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line or None,
            "end_column": self.span.end_column or None,
            "message": self.message,
            "help": self.help or None,
            "path": self.json_path,
        }


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Findings in file/line/column order, duplicates removed."""
    return sorted(set(diagnostics), key=Diagnostic.sort_key)
