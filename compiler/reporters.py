"""Renderers for findings: text, json, github, sarif. All read the same Diagnostic list."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .diagnostics import Diagnostic, Severity
from .excerpt import end_of, excerpt, safe


@dataclass(frozen=True)
class Options:
    """What a reporter may use besides the findings: the text of each file, colour, the SARIF root."""

    sources: Mapping[str, str] = field(default_factory=dict)  # path as in Span.file -> its text
    color: bool = False
    root: str = ""  # folder SARIF paths are relative to (%SRCROOT%); "" is the current folder


NO_OPTIONS = Options()
_SEVERITY_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def _style(text: str, options: Options, **style: object) -> str:
    if not options.color:
        return text
    import click  # only when colouring: the compiler itself does not need click

    return click.style(text, **style)  # type: ignore[arg-type]


def _summary(diagnostics: list[Diagnostic]) -> str:
    errors = sum(d.severity is Severity.ERROR for d in diagnostics)
    return f"{len(diagnostics)} problem(s): {errors} error(s), {len(diagnostics) - errors} warning(s)"


def _source_lines(options: Options, cache: dict[str, list[str]], file: str) -> list[str] | None:
    if file not in options.sources:
        return None
    if file not in cache:
        cache[file] = options.sources[file].splitlines()
    return cache[file]


def _full(d: Diagnostic, lines: list[str] | None, options: Options) -> list[str]:
    """One finding as ruff shows it: the header, the source line with carets under the span, the help."""
    colour = _SEVERITY_COLOUR[d.severity]
    where = f"{_style(safe(d.span.file), options, bold=True)}:{d.span.line}:{d.span.column}:"
    label = _style(f"{d.severity.value} [{d.code}]", options, fg=colour, bold=True)
    # The line past the last is shown too: a parser reports an unclosed bracket where the text ends.
    has_line = lines is not None and any(lines) and 1 <= d.span.line <= len(lines) + 1
    out = [f"{where} {label} {safe(d.message if has_line else d.full_message)}"]
    if lines is None or not has_line:
        return out + [""]
    source_line = lines[d.span.line - 1] if d.span.line <= len(lines) else ""
    shown, marks = excerpt(source_line, d.span)
    gutter = " " * len(str(d.span.line))
    bar = _style(f"{gutter} |", options, fg="blue", bold=True)
    number = _style(f"{d.span.line} |", options, fg="blue", bold=True)
    carets = marks.lstrip(" ")
    under = " " * (len(marks) - len(carets)) + _style(f"{carets} {d.code}", options, fg=colour, bold=True)
    out += [bar, f"{number} {shown}".rstrip(), f"{bar} {under}", bar]
    if d.help:
        out.append(f"{gutter} = {_style('help', options, bold=True)}: {safe(d.help)}")
    out.append("")
    return out


def text(diagnostics: list[Diagnostic], options: Options = NO_OPTIONS) -> str:
    """`file:line:col: severity [CODE] message` per finding (with its source line when the text is known), a count."""
    lines: list[str] = []
    cache: dict[str, list[str]] = {}
    for d in diagnostics:
        source = _source_lines(options, cache, d.span.file)
        if source is None:
            label = _style(f"{d.severity.value} [{d.code}]", options, fg=_SEVERITY_COLOUR[d.severity], bold=True)
            lines.append(f"{_style(safe(d.span.file), options, bold=True)}:{d.span.line}:{d.span.column}: {label} "
                         f"{safe(d.full_message)}")
        else:
            lines += _full(d, source, options)
    if diagnostics:
        lines.append(_style(_summary(diagnostics), options, bold=True))
    return "\n".join(lines) + ("\n" if lines else "")


def _line(options: Options, cache: dict[str, list[str]], d: Diagnostic) -> str | None:
    lines = _source_lines(options, cache, d.span.file)
    return lines[d.span.line - 1] if lines and 0 < d.span.line <= len(lines) else None


def concise(diagnostics: list[Diagnostic], options: Options = NO_OPTIONS) -> str:
    """One line per finding and no source lines (for grep and editors' problem matchers), coloured like text."""
    return text(diagnostics, Options(color=options.color))


def as_json(diagnostics: list[Diagnostic], options: Options = NO_OPTIONS) -> str:
    """A JSON array of findings in the one shape shared with the HTTP layer (ends filled in from the source)."""
    out: list[dict] = []
    cache: dict[str, list[str]] = {}
    for d in diagnostics:
        end_line, end_column = end_of(_line(options, cache, d), d.span)
        out.append({**d.to_dict(), "end_line": end_line or None, "end_column": end_column or None})
    return json.dumps(out, indent=2) + "\n"


def _escape(value: str, *, property_value: bool = False) -> str:
    """GitHub's workflow-command escapes (actions/toolkit command.ts): %, CR and LF; in a property also : and ,."""
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github(diagnostics: list[Diagnostic], options: Options = NO_OPTIONS) -> str:
    """GitHub Actions workflow commands, which annotate the lines in a pull request."""
    kinds = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
    # No endColumn: GitHub does not say whether it is inclusive, and annotations mark whole lines anyway.
    return "".join(
        # A file name is escaped before safe(): safe() would turn a line break into a space, naming another file.
        f"::{kinds[d.severity]} file={safe(_escape(d.span.file, property_value=True))},line={d.span.line},"
        f"col={d.span.column},title={d.code}::{_escape(safe(d.full_message))}\n" for d in diagnostics)


def sarif(diagnostics: list[Diagnostic], options: Options = NO_OPTIONS) -> str:
    """SARIF 2.1.0 as GitHub code scanning reads it (see compiler/sarif.py)."""
    from .sarif import render  # the rule catalogue and hashing are only needed here

    return render(diagnostics, sources=options.sources, root=options.root)


Reporter = Callable[[list[Diagnostic], Options], str]
REPORTERS: dict[str, Reporter] = {"text": text, "concise": concise, "json": as_json, "github": github,
                                   "sarif": sarif}
