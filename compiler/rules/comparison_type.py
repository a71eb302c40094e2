"""RC304 comparison-type: a condition compares a request value, which is always text, with a number.

`query.*` and `call.*` values arrive as text, so `call.digits == 1234` is never true and
`query.n in [1, 2]` never holds: the role or branch is silently dead. The same for `now`
read as the wrong kind: `now.hour == '09'` (a number), `now.time > 17` (text like '17:00'),
`now.weekday == 'Tuesday'` (it is one of mon..sun).

Failing::

    when: "call.digits == 1234"

Passing::

    when: "call.digits == '1234'"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import TemplateProblem, mismatched_comparisons
from ._sites import Site
from ._template_findings import findings

CODE = "RC304"
NAME = "comparison-type"
SEVERITY = Severity.ERROR


def _problems(site: Site, secrets: frozenset[str]) -> tuple[TemplateProblem, ...]:
    return mismatched_comparisons(site.source, site.expression)


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE, SEVERITY, _problems)
