"""RC306 template-fails: a template construct that parses but fails on every render (include, import, `_` attributes, division by zero).

A policy's templates have no other templates to load, the sandbox refuses every attribute or
item whose name starts with `_`, and a division by zero is an error: each fails every call that
reaches it (the caller gets the fallback). Found on the parsed tree, at the construct's position.

Failing::

    say: "{% include 'greeting.html' %}"
    say: "{{ query.room.__class__ }}"
    say: "{{ 60 / 0 }}"

Passing::

    say: "Welcome to {{ room }}"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ..templates import TemplateProblem, failing
from ._sites import Site
from ._template_findings import findings

CODE = "RC306"
NAME = "template-fails"
SEVERITY = Severity.ERROR


def _problems(site: Site, secrets: frozenset[str]) -> tuple[TemplateProblem, ...]:
    return failing(site.source, site.expression)


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE, SEVERITY, _problems)
