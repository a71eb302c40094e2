"""RC305 template-cost: a template construct that only makes rendering expensive (`**`, huge numbers, repeats, nested loops).

Policies come from pull requests; a template like `{{ 'a' * 10**9 }}` would take gigabytes
to render. Lint never evaluates templates (it parses them), and the runtime refuses the
same constructs when they run (the caller gets the fallback); this finding says so
before anyone calls.

Failing::

    say: "{{ 'a' * 10**9 }}"
    say: "{% for i in range(1000) %}{% for j in range(1000) %}.{% endfor %}{% endfor %}"

Passing::

    say: "Welcome to {{ room }}"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import TemplateProblem, costly
from ._sites import Site
from ._template_findings import findings

CODE = "RC305"
NAME = "template-cost"
SEVERITY = Severity.ERROR


def _problems(site: Site, secrets: frozenset[str]) -> tuple[TemplateProblem, ...]:
    return costly(site.source, site.expression)


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE, SEVERITY, _problems)
