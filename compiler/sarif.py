"""SARIF 2.1.0 with everything GitHub code scanning reads: rule help, fingerprints, relative paths.

Each code found is listed as a rule, with its help taken from the rule module docstrings
that also generate docs/rules.md. Locations are
relative to `%SRCROOT%` (the folder linted from), which code scanning maps to the checkout.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

from .codes import CODES
from .diagnostics import Diagnostic, Severity
from .excerpt import end_of

SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/roomc/roomc"
RULES_PAGE = "https://github.com/roomc/roomc/blob/main/docs/rules.md"
ROOT_ID = "%SRCROOT%"
FAMILIES = {"0": "yaml", "1": "schema", "2": "meaning", "3": "templates", "4": "platform-security", "9": "suppressions"}
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


@dataclass(frozen=True)
class RuleDoc:
    """What the documentation says about one code."""

    code: str
    name: str
    severity: Severity
    summary: str
    why: str
    failing: str = ""
    passing: str = ""

    @property
    def anchor(self) -> str:
        """The heading anchor GitHub gives the code's section of docs/rules.md (the table for codes without one)."""
        return re.sub(r"[^a-z0-9 -]", "", f"{self.code} {self.name}".lower()).replace(" ", "-") if self.failing else ""


def catalogue() -> dict[str, RuleDoc]:
    """Every code roomc can report, documented from compiler/codes.py and the rule docstrings."""
    from .rules import RULES

    docs = {code: RuleDoc(code, name, Severity.WARNING if code == "RC901" else Severity.ERROR, why, why)
            for code, (name, why) in CODES.items()}
    for rule in RULES:
        doc = (rule.__doc__ or "").strip()
        head, _, rest = doc.partition("Failing::")
        failing, _, passing = rest.partition("Passing::")
        title, _, why = head.partition("\n")
        summary = title.split(": ", 1)[-1].strip()
        docs[rule.CODE] = RuleDoc(rule.CODE, rule.NAME, rule.SEVERITY, summary[:1].upper() + summary[1:],
                                  " ".join(why.split()), textwrap.dedent(failing).strip("\n"),
                                  textwrap.dedent(passing).strip("\n"))
    return dict(sorted(docs.items()))


def _help(doc: RuleDoc) -> dict[str, str]:
    if not doc.failing:
        return {"text": doc.why, "markdown": f"**{doc.code} {doc.name}**: {doc.why}"}
    text = f"{doc.summary}\n\n{doc.why}\n\nFailing:\n\n{doc.failing}\n\nPassing:\n\n{doc.passing}\n"
    markdown = (f"**{doc.code} {doc.name}**: {doc.summary}\n\n{doc.why}\n\nFailing:\n\n```yaml\n{doc.failing}\n```"
                f"\n\nPassing:\n\n```yaml\n{doc.passing}\n```\n")
    return {"text": text, "markdown": markdown}


def _rule(doc: RuleDoc) -> dict:
    return {
        "id": doc.code,
        "name": doc.name,
        "shortDescription": {"text": doc.summary},
        "fullDescription": {"text": doc.why},
        "help": _help(doc),
        "helpUri": f"{RULES_PAGE}#{doc.anchor}" if doc.anchor else RULES_PAGE,
        "defaultConfiguration": {"level": _LEVELS[doc.severity]},
        "properties": {"tags": [FAMILIES.get(doc.code[2:3], "other")]},
    }


def _artifact(file: str, base: str) -> dict[str, str]:
    """A path relative to %SRCROOT% when it lies under it, else an absolute file URI."""
    absolute = os.path.abspath(file)
    relative = os.path.relpath(absolute, base)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return {"uri": Path(absolute).as_uri()}
    return {"uri": quote(relative.replace(os.sep, "/")), "uriBaseId": ROOT_ID}


def _line_digest(line: str) -> str:
    """The finding's line with whitespace normalised, hashed (once per line: a huge line may carry many findings)."""
    return hashlib.sha256(" ".join(line.split()).encode()).hexdigest()


def _fingerprint(d: Diagnostic, uri: str, line_digest: str, seen: dict[str, int]) -> str:
    """Stable across unrelated edits: the code, the file and the finding's normalised line (else its message)."""
    anchor = line_digest or d.message
    digest = hashlib.sha256(f"{d.code}\0{uri}\0{anchor}".encode()).hexdigest()[:32]
    seen[digest] = seen.get(digest, 0) + 1
    return f"{digest}:{seen[digest]}"


def render(diagnostics: list[Diagnostic], *, sources: Mapping[str, str], root: str = "") -> str:
    """The SARIF log for these findings; `sources` gives region ends and fingerprints their line text."""
    from .pipeline import VERSION

    base = os.path.abspath(root or os.getcwd())
    known = catalogue()
    # The rules of the codes found, in code order (a code without documentation still gets a minimal rule).
    docs = {code: known.get(code) or RuleDoc(code, code.lower(), Severity.ERROR, code, code)
            for code in sorted({d.code for d in diagnostics})}
    index = {code: i for i, code in enumerate(docs)}
    found_in = {d.span.file for d in diagnostics}
    lines = {file: text.splitlines() for file, text in sources.items() if file in found_in}
    digests: dict[tuple[str, int], str] = {}
    seen: dict[str, int] = {}
    results = []
    for d in diagnostics:
        artifact = _artifact(d.span.file, base)
        file_lines = lines.get(d.span.file, [])
        line = file_lines[d.span.line - 1] if 0 < d.span.line <= len(file_lines) else ""
        where = (d.span.file, d.span.line)
        if where not in digests:
            digests[where] = _line_digest(line) if line.strip() else ""
        region = {"startLine": d.span.line, "startColumn": d.span.column}
        end_line, end_column = end_of(line, d.span)
        if end_line and (end_line, end_column) > (d.span.line, d.span.column):
            region.update(endLine=end_line, endColumn=end_column)
        result = {
            "ruleId": d.code,
            "ruleIndex": index[d.code],
            "level": _LEVELS[d.severity],
            "message": {"text": d.full_message},
            "locations": [{"physicalLocation": {"artifactLocation": artifact, "region": region}}],
            "partialFingerprints": {"primaryLocationLineHash": _fingerprint(d, artifact["uri"], digests[where], seen)},
        }
        if not d.span.file:  # a finding about no file (an internal one): no location to point at
            del result["locations"]
        results.append(result)
    document = {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "roomc",
                "version": VERSION,
                "semanticVersion": VERSION,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(doc) for doc in docs.values()],
            }},
            "originalUriBaseIds": {ROOT_ID: {"uri": Path(base).as_uri().rstrip("/") + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(document, indent=2) + "\n"
