"""Template problems (RC301/RC302/RC304), placed at the YAML line and column the template position falls on."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator

from ..diagnostics import Diagnostic, Severity, Span
from ..ir import Policy
from ..templates import TemplateProblem, check
from ._sites import Site, sites


def yaml_span(span: Span, problem: TemplateProblem) -> Span:
    """Where a template position sits in the YAML: past the opening quote, or on a block scalar's line."""
    if problem.line > 1:
        # Block scalars keep template lines as YAML lines, indented by the block's indentation.
        column = span.column + max(problem.column, 1) - 1
        return replace(span, line=span.line + problem.line - 1, column=column, inset=0, end_line=0, end_column=0)
    if problem.column:
        return replace(span, column=span.column + span.inset + problem.column - 1, inset=0,
                       end_line=0, end_column=0)
    return span


def _checked(site: Site, secrets: frozenset[str]) -> tuple[TemplateProblem, ...]:
    return check(site.source, expression=site.expression, secrets=secrets, unavailable=site.unavailable)


Problems = Callable[[Site, frozenset[str]], tuple[TemplateProblem, ...]]
# The last policy and, per kind of problem, the sites that have some: three rules read `check`'s in a row.
_last: tuple[Policy | None, dict[Problems, list[tuple[Site, tuple[TemplateProblem, ...]]]]] = (None, {})


def _found(policy: Policy, problems: Problems) -> list[tuple[Site, tuple[TemplateProblem, ...]]]:
    global _last
    if _last[0] is not policy:
        _last = (policy, {})
    if problems not in _last[1]:
        secrets = frozenset(policy.secrets)
        _last[1][problems] = [(site, found) for site in sites(policy) if (found := problems(site, secrets))]
    return _last[1][problems]


def findings(policy: Policy, code: str, severity: Severity, problems: Problems = _checked) -> Iterator[Diagnostic]:
    """The template problems with this code, each at the YAML position of the template position."""
    for site, found in _found(policy, problems):
        for problem in found:
            if problem.code == code:
                yield Diagnostic(code, severity, problem.message, yaml_span(policy.span(site.path), problem), site.path)
