"""Pass 5, lint: run every registered rule over the IR, then apply inline suppressions."""
from __future__ import annotations

from .diagnostics import Diagnostic, Severity
from .ir import Policy
from .load import SourceFile
from .rules import RULES


def lint(policy: Policy) -> list[Diagnostic]:
    """Every rule's findings for one policy."""
    return [finding for rule in RULES for finding in rule.check(policy)]


def apply_suppressions(diagnostics: list[Diagnostic], sources: list[SourceFile], *,
                       report_unused: bool = True) -> list[Diagnostic]:
    """Drop findings silenced by `# roomc: ignore[CODE]` on their line; report silencers that silence nothing."""
    table = {(s.path, line): (span, codes) for s in sources for line, (span, codes) in s.suppressions.items()}
    used: set[tuple[str, int, str]] = set()
    kept = []
    for finding in diagnostics:
        entry = table.get((finding.span.file, finding.span.line))
        if entry and finding.code in entry[1]:
            used.add((finding.span.file, finding.span.line, finding.code))
            continue
        kept.append(finding)
    if not report_unused:
        return kept
    for (file, line), (span, codes) in table.items():
        for code in sorted(codes):
            if (file, line, code) not in used:
                kept.append(Diagnostic("RC901", Severity.WARNING,
                                       f"suppression of {code} suppresses nothing on this line", span))
    return kept
