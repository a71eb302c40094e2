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
    """Where a node sits in its source: 1-based line and column."""

    file: str = ""
    line: int = 1
    column: int = 1


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
            "message": self.message,
            "path": self.json_path,
        }


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Findings in file/line/column order, duplicates removed."""
    return sorted(set(diagnostics), key=Diagnostic.sort_key)
