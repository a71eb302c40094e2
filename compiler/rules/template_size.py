"""RC307 template-size: a template or condition longer than 10,000 characters; refused without parsing it.

No field renders more than 10,000 characters, and a policy comes from a pull request: a
megabyte of template is a cost, never a feature. The template is not parsed, so it gets no
other finding; the route table is not written.

Failing::

    say: "{{ query.room }} ...ten thousand more characters..."

Passing::

    say: "Welcome to {{ room }}"
"""
from __future__ import annotations

from typing import Iterator

from ..diagnostics import Diagnostic, Severity
from ..ir import Policy
from ._template_findings import findings

CODE = "RC307"
NAME = "template-size"
SEVERITY = Severity.ERROR


def check(policy: Policy) -> Iterator[Diagnostic]:
    yield from findings(policy, CODE, SEVERITY)
