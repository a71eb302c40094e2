"""RC301 template-syntax: a template or condition that Jinja cannot parse; the line is the YAML line.

A template that does not parse would fail on every call that reaches it.

Failing::

    name: "meeting-{{ query.room }"

Passing::

    name: "meeting-{{ query.room }}"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._template_findings import findings

CODE = "RC301"
NAME = "template-syntax"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE, SEVERITY)
