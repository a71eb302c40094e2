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


def findings(policy: Policy, code: str, severity: Severity,
             problems: Callable[[Site, frozenset[str]], tuple[TemplateProblem, ...]] = _checked) -> Iterator[Diagnostic]:
    """The template problems with this code, each at the YAML position of the template position."""
    secrets = frozenset(policy.secrets)
    for site in sites(policy):
        for problem in problems(site, secrets):
            if problem.code == code:
                yield Diagnostic(code, severity, problem.message, yaml_span(policy.span(site.path), problem), site.path)
