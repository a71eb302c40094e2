"""Renderers for findings: text, json, github, sarif. All read the same Diagnostic list."""
from __future__ import annotations

import json
from typing import Callable

from .codes import CODES
from .diagnostics import Diagnostic, Severity
from .rules import RULES


def text(diagnostics: list[Diagnostic]) -> str:
    """`file:line:col: severity [CODE] message`, one a line, then a count."""
    lines = [f"{d.span.file}:{d.span.line}:{d.span.column}: {d.severity.value} [{d.code}] {d.message}"
             for d in diagnostics]
    if diagnostics:
        errors = sum(d.severity is Severity.ERROR for d in diagnostics)
        lines.append(f"{len(diagnostics)} problem(s): {errors} error(s), {len(diagnostics) - errors} warning(s)")
    return "\n".join(lines) + ("\n" if lines else "")


def as_json(diagnostics: list[Diagnostic]) -> str:
    """A JSON array of findings in the one shape shared with the HTTP layer."""
    return json.dumps([d.to_dict() for d in diagnostics], indent=2) + "\n"


def _escape(value: str, *, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github(diagnostics: list[Diagnostic]) -> str:
    """GitHub Actions workflow commands, which annotate the lines in a pull request."""
    kinds = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
    return "".join(
        f"::{kinds[d.severity]} file={_escape(d.span.file, property_value=True)},line={d.span.line},"
        f"col={d.span.column},title={d.code}::{_escape(d.message)}\n" for d in diagnostics)


def _rule_catalogue() -> dict[str, tuple[str, str]]:
    catalogue = dict(CODES)
    for rule in RULES:
        catalogue[rule.CODE] = (rule.NAME, (rule.__doc__ or "").strip().splitlines()[0])
    return catalogue


def sarif(diagnostics: list[Diagnostic]) -> str:
    """SARIF 2.1.0, the format GitHub code scanning and many CI systems read."""
    catalogue = _rule_catalogue()
    codes = sorted({d.code for d in diagnostics})
    levels = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "roomc",
                "informationUri": "https://github.com/roomc/roomc",
                "rules": [{"id": c, "name": catalogue.get(c, (c, ""))[0],
                           "shortDescription": {"text": catalogue.get(c, ("", c))[1]}} for c in codes],
            }},
            "results": [{
                "ruleId": d.code,
                "ruleIndex": codes.index(d.code),
                "level": levels[d.severity],
                "message": {"text": d.message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": d.span.file},
                    "region": {"startLine": d.span.line, "startColumn": d.span.column},
                }}],
            } for d in diagnostics],
        }],
    }
    return json.dumps(document, indent=2) + "\n"


REPORTERS: dict[str, Callable[[list[Diagnostic]], str]] = {
    "text": text, "json": as_json, "github": github, "sarif": sarif,
}
