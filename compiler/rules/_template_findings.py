"""Template problems for RC301/RC302, placed on the YAML line the template line falls on."""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import check
from ._sites import sites


def findings(policy: Policy, code: str, severity: Severity) -> Iterator[Diagnostic]:
    """The template problems with this code, each at the YAML line of the template line."""
    secrets = frozenset(policy.secrets)
    for site in sites(policy):
        for problem in check(site.source, expression=site.expression, secrets=secrets, unavailable=site.unavailable):
            if problem.code != code:
                continue
            span = policy.span(site.path)
            if problem.line > 1:
                span = replace(span, line=span.line + problem.line - 1, column=1)
            yield Diagnostic(code, severity, problem.message, span, site.path)
